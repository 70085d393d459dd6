#pragma once
// The one GEMM the engine needs: C = A * B (+ beta * C), row-major, where B is a weight stored
// transposed at load time (Wt [in, out], the transpose of Hugging Face's nn.Linear [out, in]).
// oneDNN's sgemm is fastest in that NN layout on this class of machine; see bench/gemm/GEMM-CHOICE.md.
// Strides let callers address one attention head's slice of a weight without copying.
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace sieve {

struct MatrixRef {
  const float* data;
  int64_t stride;  // elements between consecutive rows
};

// C[M, N] = A[M, K] * B[K, N] + beta * C[M, N]. Threads follow OpenMP (omp_set_num_threads).
void gemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc, float beta = 0.0f);

// C[M, N] = A[M, K] * B[N, K]^T: attention scores against cached keys, stored one key per row.
void gemm_nt(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc);

// [rows, cols] -> [cols, rows]: how nn.Linear weights are stored for gemm().
Tensor transposed(const Tensor& w);

// The bf16 option (--precision bf16): weights rounded to bfloat16 once at load, activations rounded
// on the way into each GEMM, products accumulated in fp32 by oneDNN's bf16 matmul. Half the weight
// bytes to stream per token (the floor of batch-1 latency on short inputs) and twice the
// multiply-add rate on CPUs with AVX-512 BF16.
struct Bf16Matrix {
  std::vector<uint16_t> bits;  // row-major [rows, cols]
  int64_t rows = 0, cols = 0;
  const uint16_t* row(int64_t r) const { return bits.data() + r * cols; }
};
Bf16Matrix to_bf16(const Tensor& w);

struct Bf16Ref {
  const uint16_t* data;
  int64_t stride;
};

// gemm() with B in bf16; beta is 0 or 1. Throws Error where oneDNN has no bf16 matmul for this CPU.
void gemm_bf16(int64_t m, int64_t n, int64_t k, MatrixRef a, Bf16Ref b, float* c, int64_t ldc, float beta = 0.0f);
// Whether this CPU runs gemm_bf16 (oneDNN finds a bf16 matmul implementation).
bool bf16_gemm_available();

}  // namespace sieve
