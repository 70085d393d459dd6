#pragma once
// The one GEMM the engine needs: C = A * B (+ beta * C), row-major, where B is a weight stored
// transposed at load time (Wt [in, out], the transpose of Hugging Face's nn.Linear [out, in]).
// oneDNN's sgemm is fastest in that NN layout on this class of machine; see bench/gemm/GEMM-CHOICE.md.
// Strides let callers address one attention head's slice of a weight without copying.
#include <cstdint>

#include "tensor/tensor.h"

namespace sieve {

struct MatrixRef {
  const float* data;
  int64_t stride;  // elements between consecutive rows
};

// C[M, N] = A[M, K] * B[K, N] + beta * C[M, N]. Threads follow OpenMP (omp_set_num_threads).
void gemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc, float beta = 0.0f);

// [rows, cols] -> [cols, rows]: how nn.Linear weights are stored for gemm().
Tensor transposed(const Tensor& w);

}  // namespace sieve
