#include "kernels/gemm.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <optional>
#include <string>

#include "kernels/row_kernels.h"
#include "util/error.h"

namespace sieve {

void gemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc, float beta) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status =
      dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data, a.stride, b.data, b.stride, beta, c, ldc);
  if (status != dnnl_success) throw Error("oneDNN sgemm failed with status " + std::to_string(status));
}

void gemm_nt(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status = dnnl_sgemm('N', 'T', m, n, k, 1.0f, a.data, a.stride, b.data, b.stride, 0.0f, c, ldc);
  if (status != dnnl_success) throw Error("oneDNN sgemm failed with status " + std::to_string(status));
}

Tensor transposed(const Tensor& w) {
  if (w.rank() != 2) throw Error("transposed() needs a matrix");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Tensor t({cols, rows});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t.data()[c * rows + r] = w.data()[r * cols + c];
  return t;
}

Bf16Matrix to_bf16(const Tensor& w) {
  if (w.rank() != 2) throw Error("to_bf16() needs a matrix");
  Bf16Matrix m;
  m.rows = w.dim(0), m.cols = w.dim(1);
  m.bits.resize(static_cast<size_t>(w.size()));
  row_kernels().to_bf16(w.data(), m.bits.data(), w.size());
  return m;
}

namespace {

constexpr auto kRuntime = DNNL_RUNTIME_DIM_VAL;

// One matmul primitive per beta, created once with every dimension and stride left to run time, so
// head slices (strided column blocks of a weight) and any row count reuse it.
struct Bf16Matmul {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::optional<dnnl::matmul> overwrite, accumulate;  // C = AB, C += AB

  Bf16Matmul() {
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc a({kRuntime, kRuntime}, dt::bf16, {kRuntime, 1});
    const dnnl::memory::desc b({kRuntime, kRuntime}, dt::bf16, {kRuntime, 1});
    const dnnl::memory::desc c({kRuntime, kRuntime}, dt::f32, {kRuntime, 1});
    try {
      overwrite.emplace(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), engine));
      dnnl::post_ops sum;
      sum.append_sum(1.0f);
      dnnl::primitive_attr attr;
      attr.set_post_ops(sum);
      accumulate.emplace(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, engine));
    } catch (const dnnl::error&) {
      overwrite.reset(), accumulate.reset();  // no bf16 matmul on this CPU
    }
  }
};

const Bf16Matmul& bf16_matmul() {
  static const Bf16Matmul instance;
  return instance;
}

}  // namespace

bool bf16_gemm_available() { return bf16_matmul().overwrite.has_value(); }

void gemm_bf16(int64_t m, int64_t n, int64_t k, MatrixRef a, Bf16Ref b, float* c, int64_t ldc, float beta) {
  if (m == 0 || n == 0) return;
  if (beta != 0.0f && beta != 1.0f) throw Error("gemm_bf16: beta must be 0 or 1");
  const Bf16Matmul& mm = bf16_matmul();
  if (!mm.overwrite) throw Error("this CPU has no bf16 matrix multiply in oneDNN (use --precision fp32)");
  // The activations, rounded to bf16 (a few % of the GEMM's time); one buffer per calling thread.
  thread_local std::vector<uint16_t> a16;
  a16.resize(static_cast<size_t>(m * k));
  uint16_t* a_bits = a16.data();  // (thread_local: the workers below must use the caller's buffer)
  const RowKernels& kernels = row_kernels();
#pragma omp parallel for schedule(static) if (m * k >= (1 << 16))
  for (int64_t r = 0; r < m; ++r) kernels.to_bf16(a.data + r * a.stride, a_bits + r * k, k);

  using dt = dnnl::memory::data_type;
  thread_local dnnl::stream stream(mm.engine);
  const dnnl::memory a_mem({{m, k}, dt::bf16, {k, 1}}, mm.engine, a_bits);
  const dnnl::memory b_mem({{k, n}, dt::bf16, {b.stride, 1}}, mm.engine, const_cast<uint16_t*>(b.data));
  const dnnl::memory c_mem({{m, n}, dt::f32, {ldc, 1}}, mm.engine, c);
  (beta == 0.0f ? *mm.overwrite : *mm.accumulate)
      .execute(stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
  stream.wait();
}

}  // namespace sieve
