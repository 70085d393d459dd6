#pragma once
// Fused on-the-fly attention for one sequence and one head: scores, softmax and P*V are computed a
// block of four query rows at a time, so the n x n probability matrix never exists in memory (E.T.'s
// idea on a CPU). The statistics pruning policies need are produced in the same pass:
//  - received[j] += sum_i P[i, j]   (how much attention token j receives from all queries)
//  - *output_magnitude += sum |O|   (the head's output magnitude, SpAtten's head importance)
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

struct HeadStatistics {
  float* received = nullptr;          // [n], accumulated into; null = not needed
  float* output_magnitude = nullptr;  // scalar, accumulated into; null = not needed
};

// Attention over n tokens with head dimension head_dim; scale is usually 1/sqrt(head_dim).
void fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats);

namespace portable {
void fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats);
}
namespace avx512 {
// Returns false when head_dim is not a supported multiple of 16 (caller falls back).
bool fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats);
}

}  // namespace sieve
