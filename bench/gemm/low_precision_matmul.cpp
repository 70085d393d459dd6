// The GEMM choice on packed weights (GEMM-CHOICE.md, "bf16 and int8: packed weights" and "fp32:
// packed weights too"): oneDNN's matmul at Sieve's layer shapes, fp32 sgemm as the anchor, fp32 on
// packed weights, bf16 and int8 (s8 and u8 activations) each with every shape given at run time
// (the gemm:jit path) and with fixed shapes on weights packed once (brgemm). Best of 5 batches of
// 20 calls, ms per call.
//   g++ -O2 -std=c++20 bench/gemm/low_precision_matmul.cpp -ldnnl -o build-gemm/low_precision_matmul
//   OMP_NUM_THREADS=2 build-gemm/low_precision_matmul
#include <oneapi/dnnl/dnnl.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <vector>

using namespace dnnl;
using dt = memory::data_type;
using tag = memory::format_tag;

namespace {

double best_ms(const std::function<void()>& call) {
  for (int i = 0; i < 3; ++i) call();
  double best = 1e9;
  for (int r = 0; r < 5; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) call();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / 20);
  }
  return best;
}

// ms per call with every dimension and stride given at run time; -1 where oneDNN has no such matmul.
double runtime_shape(engine& eng, stream& s, dt a_type, dt b_type, dt c_type, int64_t m, int64_t k, int64_t n, void* a,
                     void* b, void* c) {
  const auto R = DNNL_RUNTIME_DIM_VAL;
  try {
    matmul mm(matmul::primitive_desc(matmul::desc(memory::desc({R, R}, a_type, {R, 1}), memory::desc({R, R}, b_type, {R, 1}),
                                                  memory::desc({R, R}, c_type, {R, 1})),
                                     eng));
    memory am({{m, k}, a_type, {k, 1}}, eng, a), bm({{k, n}, b_type, {n, 1}}, eng, b), cm({{m, n}, c_type, {n, 1}}, eng, c);
    return best_ms([&] {
      mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
      s.wait();
    });
  } catch (const error&) {
    return -1;
  }
}

// ms per call with fixed shapes and the weights reordered once into the layout oneDNN picks.
double packed(engine& eng, stream& s, dt a_type, dt b_type, dt c_type, int64_t m, int64_t k, int64_t n, void* a, void* b,
              void* c) {
  try {
    const auto pd = matmul::primitive_desc(
        matmul::desc(memory::desc({m, k}, a_type, tag::ab), memory::desc({k, n}, b_type, tag::any), memory::desc({m, n}, c_type, tag::ab)), eng);
    memory plain({{k, n}, b_type, tag::ab}, eng, b), blocked(pd.weights_desc(), eng);
    reorder(plain, blocked).execute(s, plain, blocked);
    s.wait();
    matmul mm(pd);
    memory am(pd.src_desc(), eng, a), cm(pd.dst_desc(), eng, c);
    return best_ms([&] {
      mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, blocked}, {DNNL_ARG_DST, cm}});
      s.wait();
    });
  } catch (const error&) {
    return -1;
  }
}

}  // namespace

int main() {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const int64_t shapes[][2] = {{384, 1152}, {384, 384}, {384, 1536}, {1536, 384}, {768, 2304}, {768, 3072}, {3072, 768}};
  std::printf("| M | K | N | fp32 sgemm | fp32 packed | bf16 run-time | bf16 packed | s8 run-time | u8 run-time | s8 packed | u8 packed |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t m : {1, 8, 32, 128, 384, 1024})
    for (const auto& shape : shapes) {
      const int64_t k = shape[0], n = shape[1];
      std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
      std::vector<uint16_t> a16(m * k, 0x3f00), b16(k * n, 0x3e80);
      std::vector<int8_t> a8(m * k, 3), b8(k * n, 2);
      std::vector<uint8_t> au8(m * k, 3);
      std::vector<int32_t> c32(m * n);
      const double fp32 = best_ms([&] { dnnl_sgemm('N', 'N', m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n); });
      const double times[] = {
          packed(eng, s, dt::f32, dt::f32, dt::f32, m, k, n, a.data(), b.data(), c.data()),
          runtime_shape(eng, s, dt::bf16, dt::bf16, dt::f32, m, k, n, a16.data(), b16.data(), c.data()),
          packed(eng, s, dt::bf16, dt::bf16, dt::f32, m, k, n, a16.data(), b16.data(), c.data()),
          runtime_shape(eng, s, dt::s8, dt::s8, dt::s32, m, k, n, a8.data(), b8.data(), c32.data()),
          runtime_shape(eng, s, dt::u8, dt::s8, dt::s32, m, k, n, au8.data(), b8.data(), c32.data()),
          packed(eng, s, dt::s8, dt::s8, dt::s32, m, k, n, a8.data(), b8.data(), c32.data()),
          packed(eng, s, dt::u8, dt::s8, dt::s32, m, k, n, au8.data(), b8.data(), c32.data())};
      std::printf("| %lld | %lld | %lld | %.4f |", static_cast<long long>(m), static_cast<long long>(k), static_cast<long long>(n), fp32);
      for (double t : times) std::printf(" %.4f |", t);
      std::printf("\n");
    }
}
