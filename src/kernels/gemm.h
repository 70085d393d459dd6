#pragma once
// The one GEMM the engine needs: C = A * B^T (+ beta * C), row-major, where B is a weight stored the
// way Hugging Face stores nn.Linear weights ([out, in]). Strides let callers address column blocks
// (one attention head's slice of a weight) without copying.
#include <cstdint>

namespace sieve {

struct MatrixRef {
  const float* data;
  int64_t stride;  // elements between consecutive rows
};

// C[M, N] = A[M, K] * B[N, K]^T + beta * C[M, N]
void gemm_a_bt(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc,
               float beta = 0.0f);

// Threads the BLAS library may use (the engine's own kernels use OpenMP with the same count).
void set_gemm_threads(int threads);

}  // namespace sieve
