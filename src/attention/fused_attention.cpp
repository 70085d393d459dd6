#include "attention/fused_attention.h"

#include <cmath>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/row_kernels.h"
#include "kernels/tile_sparse_gemm.h"  // cpu_has_avx512_bf16

namespace sieve {

namespace portable {

void fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats) {
  thread_local std::vector<float> scores;
  scores.resize(static_cast<size_t>(n));
  float magnitude = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float* q = head.q + i * head.qkv_stride;
    for (int64_t j = 0; j < n; ++j) {
      const float* k = head.k + j * head.qkv_stride;
      float dot = 0.0f;
      for (int64_t c = 0; c < head_dim; ++c) dot += q[c] * k[c];
      scores[j] = dot * scale;
    }
    portable::kRowKernels.softmax(scores.data(), n);
    store_diagonal_block_row(stats.diagonal, i, scores.data());
    float* out = head.out + i * head.out_stride;
    for (int64_t c = 0; c < head_dim; ++c) out[c] = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      const float p = scores[j];
      const float* v = head.v + j * head.qkv_stride;
      for (int64_t c = 0; c < head_dim; ++c) out[c] += p * v[c];
      if (stats.received) stats.received[j] += p;
    }
    for (int64_t c = 0; c < head_dim; ++c) magnitude += std::fabs(out[c]);
  }
  if (stats.output_magnitude) *stats.output_magnitude += magnitude;
}

}  // namespace portable

void fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats,
                     bool bf16_products) {
  if (n <= 0) return;
  if (bf16_products && amx::available() && amx::fused_attention(head, n, head_dim, scale, stats)) return;
  if (bf16_products && cpu_has_avx512() && cpu_has_avx512_bf16() && avx512bf16::fused_attention(head, n, head_dim, scale, stats))
    return;
  if (cpu_has_avx512() && avx512::fused_attention(head, n, head_dim, scale, stats)) return;
  portable::fused_attention(head, n, head_dim, scale, stats);
}

}  // namespace sieve
