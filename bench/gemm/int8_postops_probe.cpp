// oneDNN's int8 matmul with the dequantizing epilogue as post-ops (issue 19): does it stay on the
// AMX kernel, and what does the epilogue cost inside it? What a static-scale int8 scheme would hand
// to oneDNN: a constant per-column scale (binary_mul), the bias (binary_add), GELU (gelu_erf), or the
// residual (sum). One 64-row block on one thread, as Sieve's blocked int8 path runs it.
// Not part of the build:
//   g++ -O2 -std=c++20 bench/gemm/int8_postops_probe.cpp -ldnnl -o build/int8_postops_probe && \
//   OMP_NUM_THREADS=1 build/int8_postops_probe 64 384 1536
#include <oneapi/dnnl/dnnl.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <unordered_map>
#include <vector>

using namespace dnnl;
using dt = memory::data_type;
using tag = memory::format_tag;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s M K N\n", argv[0]);
    return 2;
  }
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const int64_t m = std::atoi(argv[1]), k = std::atoi(argv[2]), n = std::atoi(argv[3]);
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> code(-127, 127);
  std::vector<int8_t> a(m * k), w(k * n);
  for (auto& x : a) x = static_cast<int8_t>(code(rng));
  for (auto& x : w) x = static_cast<int8_t>(code(rng));
  std::vector<float> bias(n), scale(n);
  for (int64_t i = 0; i < n; ++i) bias[i] = 0.01f * (i % 7), scale[i] = 1e-4f * (1 + i % 5);
  const memory::desc row({1, n}, dt::f32, tag::ab);
  const char* names[] = {"int32 products (what Sieve runs)", "f32: x scale + bias", "f32: x scale + bias, GELU",
                         "f32: x scale + bias, += C", "f32: run-time output scales, GELU"};
  for (int variant = 0; variant < 5; ++variant) {
    primitive_attr attr;
    post_ops ops;
    // Variant 4: the scales as oneDNN 2.x output scales given at run time (one primitive for every
    // weight), GELU after them; timed only.
    if (variant == 4) attr.set_output_scales(2, {DNNL_RUNTIME_F32_VAL}), ops.append_eltwise(1.0f, algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    if (variant >= 1 && variant <= 3) ops.append_binary(algorithm::binary_mul, row), ops.append_binary(algorithm::binary_add, row);
    if (variant == 2) ops.append_eltwise(1.0f, algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    if (variant == 3) ops.append_sum(1.0f);
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(scratchpad_mode::user);
    const memory::desc src({m, k}, dt::s8, tag::ab), dst({m, n}, variant == 0 ? dt::s32 : dt::f32, tag::ab);
    const matmul::primitive_desc pd(matmul::desc(src, memory::desc({k, n}, dt::s8, tag::any), dst), attr, eng);
    const matmul mm(pd);
    memory plain({{k, n}, dt::s8, tag::ab}, eng, w.data()), packed(pd.weights_desc(), eng);
    reorder(plain, packed).execute(s, plain, packed);
    memory a_mem({{m, k}, dt::s8, tag::ab}, eng, a.data()), c_mem(pd.dst_desc(), eng), pad(pd.scratchpad_desc(), eng);
    std::memset(c_mem.get_data_handle(), 0, dst.get_size());
    memory scale_mem(row, eng, scale.data()), bias_mem(row, eng, bias.data()), scales_1d({{n}, dt::f32, tag::a}, eng, scale.data());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, c_mem},
                                         {DNNL_ARG_SCRATCHPAD, pad}};
    if (variant == 4) args[DNNL_ARG_ATTR_OUTPUT_SCALES] = scales_1d;
    if (variant >= 1 && variant <= 3) {
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = scale_mem;
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1] = bias_mem;
    }
    mm.execute(s, args);
    s.wait();
    double worst = 0;  // against the definition, sampled
    if (variant == 1 || variant == 2) {
      const float* c = static_cast<const float*>(c_mem.get_data_handle());
      for (int64_t r = 0; r < m; r += 7)
        for (int64_t j = 0; j < n; j += 3) {
          long sum = 0;
          for (int64_t t = 0; t < k; ++t) sum += a[r * k + t] * w[t * n + j];
          double x = scale[j] * static_cast<double>(sum) + bias[j];
          if (variant == 2) x = 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
          worst = std::max(worst, std::abs(x - c[r * n + j]));
        }
    }
    for (int i = 0; i < 50; ++i) mm.execute(s, args);
    s.wait();
    const int reps = 2000;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) mm.execute(s, args);
    s.wait();
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / reps;
    if (variant == 1 || variant == 2)
      std::printf("%-36s %-28s %8.1f us   max |error| %.2e\n", names[variant], pd.impl_info_str(), us, worst);
    else
      std::printf("%-36s %-28s %8.1f us\n", names[variant], pd.impl_info_str(), us);
  }
}
