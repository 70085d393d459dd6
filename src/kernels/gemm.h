#pragma once
// The one GEMM the engine needs: C = A * B (+ beta * C), row-major, where B is a weight stored
// transposed at load time (Wt [in, out], the transpose of Hugging Face's nn.Linear [out, in]).
// oneDNN's sgemm is fastest in that NN layout on this class of machine; see bench/gemm/GEMM-CHOICE.md.
// Strides let callers address one attention head's slice of a weight without copying.
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/row_kernels.h"
#include "tensor/tensor.h"

namespace sieve {

struct PackedWeights;  // gemm.cpp

struct MatrixRef {
  const float* data;
  int64_t stride;  // elements between consecutive rows
  // Where B is a whole weight: its copy in oneDNN's layout (pack_fp32), or null.
  const PackedWeights* packed = nullptr;
};

// C[M, N] = A[M, K] * B[K, N] + beta * C[M, N], then the epilogue (bias, bias + GELU) if any.
// Threads follow OpenMP (omp_set_num_threads). With B packed, up to kPackedFp32MaxRows dense rows
// and beta 0 or 1, the product is a fixed-shape matmul on the packed copy, else oneDNN's sgemm.
void gemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc, float beta = 0.0f,
          Epilogue epilogue = {});

// C[M, N] = A[M, K] * B[N, K]^T: attention scores against cached keys, stored one key per row.
void gemm_nt(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc);

// C[M, N] = A[K, M]^T * B[K, N]: A stored one column of the product per row (CTA's column-layout
// attention weights).
void gemm_tn(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc);

// [rows, cols] -> [cols, rows]: how nn.Linear weights are stored for gemm().
Tensor transposed(const Tensor& w);

// fp32 weights packed once at load into oneDNN's blocked layout (null where that fails): sgemm
// re-packs B on every call, which at a few dozen rows costs about as much as the product
// (packed / sgemm on this VM: 1.1-1.4x at 32-512 rows, 0.92-1.10x from 1,024; bench/gemm/GEMM-CHOICE.md).
// SIEVE_FP32_PACKED=0 leaves every fp32 GEMM to sgemm.
std::shared_ptr<const PackedWeights> pack_fp32(const Tensor& w);
constexpr int64_t kPackedFp32MaxRows = 512;

// Low-precision copies of a weight keep, besides their plain row-major codes (which any column or
// row block of the weight can be read from, for pruned heads), oneDNN's blocked layout of the
// whole weight, packed once at load: whole-weight GEMMs then run a fixed-shape matmul on it, made
// once per row count and cached. That removes the run-time-shape path's per-call cost, which
// dominated short inputs (bench/gemm/GEMM-CHOICE.md, "Packed weights").

// The bf16 option (--precision bf16): weights rounded to bfloat16 once at load, activations rounded
// on the way into each GEMM, products accumulated in fp32 by oneDNN's bf16 matmul. Half the weight
// bytes to stream per token (the floor of batch-1 latency on short inputs) and twice the
// multiply-add rate on CPUs with AVX-512 BF16.
struct Bf16Matrix {
  std::vector<uint16_t> bits;  // row-major [rows, cols]
  int64_t rows = 0, cols = 0;
  std::shared_ptr<const PackedWeights> packed;  // null where oneDNN has no bf16 matmul
  const uint16_t* row(int64_t r) const { return bits.data() + r * cols; }
};
Bf16Matrix to_bf16(const Tensor& w);

// A block of a bf16 weight; `packed` only when the block is the whole weight (then a whole-weight
// GEMM with dense A and C takes the packed path).
struct Bf16Ref {
  const uint16_t* data;
  int64_t stride;
  const PackedWeights* packed = nullptr;
};

// Many rows (at least 2 x kGemmBlockRows, more than one thread, not called inside a parallel
// region): the bf16 and int8 GEMMs run in blocks of kGemmBlockRows rows, each block on one thread
// through every step (rounding or quantizing A, the product, the epilogue), so what one step writes
// is read by the next while it is still in the core's cache; in one pass per step over all rows it
// went out to memory and back (int8: 11 % of a forward pass at 1,024 tokens).
constexpr int64_t kGemmBlockRows = 64;

// gemm() with B in bf16; beta is 0 or 1. Throws Error where oneDNN has no bf16 matmul for this CPU.
void gemm_bf16(int64_t m, int64_t n, int64_t k, MatrixRef a, Bf16Ref b, float* c, int64_t ldc, float beta = 0.0f,
               Epilogue epilogue = {});
// Whether this CPU runs gemm_bf16 (oneDNN finds a bf16 matmul implementation).
bool bf16_gemm_available();

// The int8 option (--precision int8): weights quantized once at load, symmetric per output channel
// (column of the transposed weight); activations quantized per token at run time (dynamic,
// symmetric); int8 x int8 products summed exactly in int32 by oneDNN's VNNI matmul; each output
// scaled back by its token's and its column's scales. A quarter of fp32's weight bytes and four
// times the multiply-add rate.
struct Int8Matrix {
  std::vector<int8_t> codes;  // row-major [rows, cols]: round(w / scales[col])
  std::vector<float> scales;  // [cols]: max |w[:, col]| / 127
  int64_t rows = 0, cols = 0;
  std::shared_ptr<const PackedWeights> packed;
  std::vector<int8_t> amx;  // the codes in AMX's int8 tile layout (to_int8's amx_copy), or empty
  const int8_t* row(int64_t r) const { return codes.data() + r * cols; }
};
// amx_copy: also keep the codes in AMX's tile layout, for Sieve's own AMX kernel
// (kernels/int8_gemm_amx.h), which the blocked path then uses for this weight; taken only for
// weights of at most 1 MiB of codes. Given to the FFN's first weight only: with bias + GELU to
// apply, dequantizing in the kernel while the products are in L1 beat oneDNN's matmul plus a
// separate pass (MiniLM-L6, 384 x 1536: 1.03-1.05x end to end at 128-384 tokens); with the lighter
// epilogues of the other weights, and for the BERT-base-sized 768 x 3072 (2.25 MiB, past a core's
// L2), oneDNN's better-blocked matmul won or tied.
Int8Matrix to_int8(const Tensor& w, bool amx_copy = false);

struct Int8Ref {
  const int8_t* data;
  int64_t stride;
  const float* scales;  // the block's first column's scale
  const PackedWeights* packed = nullptr;
  const int8_t* amx = nullptr;  // where B is a whole weight: Int8Matrix::amx, or null
};

// C[M, N] = A[M, K] * B (+ C when beta is 1) with A quantized per row on the way in; the epilogue
// (bias, GELU) is applied in the dequantizing pass. From 2 x kGemmBlockRows rows the result is the
// same bit for bit as in one pass (the int32 products are exact).
void gemm_int8(int64_t m, int64_t n, int64_t k, MatrixRef a, Int8Ref b, float* c, int64_t ldc, float beta = 0.0f,
               Epilogue epilogue = {});
// The integer core: C[M, N] = A[M, K] * B[K, N] in int32, exact (|sum| < 2^31 for K < 133,000).
void gemm_s8s8s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, Int8Ref b, int32_t* c, int64_t ldc);
// Whether this CPU runs gemm_int8 (AVX-512 VNNI, and oneDNN finds its int8 matmul).
bool int8_gemm_available();

}  // namespace sieve
