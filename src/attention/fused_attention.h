#pragma once
// Fused on-the-fly attention for one sequence and one head: scores, softmax and P*V are computed a
// block of four query rows at a time, so the n x n probability matrix never exists in memory (E.T.'s
// idea on a CPU). The statistics pruning policies need are produced in the same pass:
//  - received[j] += sum_i P[i, j]   (how much attention token j receives from all queries)
//  - *output_magnitude += sum |O|   (the head's output magnitude, SpAtten's head importance)
//  - the diagonal blocks of P       (Block-Skim's input: P[i, j] with i and j in the same block)
#include <cstdint>

namespace sieve {

struct HeadView {
  const float* q;   // row i of Q at q + i * qkv_stride
  const float* k;
  const float* v;
  int64_t qkv_stride;
  float* out;       // row i of the output at out + i * out_stride
  int64_t out_stride;
};

// Rows [first_row[b], end_row[b]) form diagonal block b (at most size rows; rows outside every
// block have row_block -1). P[i, j] for i and j in block b is written to
// probs[(b * size + i - first_row[b]) * size + j - first_row[b]]; the rest of each size x size tile
// is left as it is (the caller zeroes it).
struct DiagonalBlocksOut {
  const int32_t* row_block = nullptr;  // [n]
  const int32_t* first_row = nullptr;  // [blocks]
  const int32_t* end_row = nullptr;    // [blocks]
  int64_t size = 0;
  float* probs = nullptr;              // [blocks][size][size]
};

struct HeadStatistics {
  float* received = nullptr;          // [n], accumulated into; null = not needed
  float* output_magnitude = nullptr;  // scalar, accumulated into; null = not needed
  DiagonalBlocksOut diagonal;         // probs null = not needed
};

// Copies the diagonal-block part of probability row i (P[i, 0..n)) where `out` asks for it.
inline void store_diagonal_block_row(const DiagonalBlocksOut& out, int64_t i, const float* row) {
  if (!out.probs || out.row_block[i] < 0) return;
  const int64_t b = out.row_block[i], first = out.first_row[b], last = out.end_row[b];
  float* dst = out.probs + (b * out.size + (i - first)) * out.size;
  for (int64_t j = first; j < last; ++j) dst[j - first] = row[j];
}

// Calls kernel.template operator()<head_dim / 16>() for the head dimensions the AVX-512 kernels
// are built for (16-96 in steps of 16, and 128); false for any other.
template <class Kernel>
bool with_head_vectors(int64_t head_dim, Kernel&& kernel) {
  switch (head_dim) {
    case 16: kernel.template operator()<1>(); return true;
    case 32: kernel.template operator()<2>(); return true;
    case 48: kernel.template operator()<3>(); return true;
    case 64: kernel.template operator()<4>(); return true;
    case 80: kernel.template operator()<5>(); return true;
    case 96: kernel.template operator()<6>(); return true;
    case 128: kernel.template operator()<8>(); return true;
    default: return false;
  }
}

// Attention over n tokens with head dimension head_dim; scale is usually 1/sqrt(head_dim).
// bf16_products: Q.K^T and P.V on operands rounded to bf16 (fp32 sums, softmax and statistics), at
// twice the fp32 multiply-add rate where the CPU has AVX-512 BF16 (--precision bf16 and int8, whose
// GEMMs already round or quantize the activations); elsewhere it runs in fp32.
void fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats,
                     bool bf16_products = false);

namespace portable {
void fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats);
}
namespace avx512 {
// Returns false when head_dim is not a supported multiple of 16 (caller falls back).
bool fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats);
}
namespace avx512bf16 {  // the bf16-products version; call only where cpu_has_avx512_bf16()
bool fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats);
}
namespace amx {  // the same on AMX tiles; call only where amx::available() (kernels/tile_sparse_gemm.h)
bool fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats);
}

}  // namespace sieve
