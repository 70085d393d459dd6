#include <algorithm>
#include <vector>

#include "attention/fused_attention.h"
#include "kernels/row_kernels.h"
#include "kernels/vec_math_avx512.h"

namespace sieve::avx512 {

namespace {

constexpr int kQueryBlock = 4;  // query rows sharing each load of K and V

// head_dim = 16 * kVecs. K is transposed once per call (scaled) so that a 16-wide block of scores is
// a chain of broadcast-FMAs; V rows are read directly.
template <int kVecs>
void attend(const HeadView& head, int64_t n, float scale, HeadStatistics stats) {
  constexpr int64_t d = 16 * kVecs;
  const int64_t padded = (n + 15) / 16 * 16;
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(d * padded + kQueryBlock * padded));
  float* kt = scratch.data();
  float* probs = kt + d * padded;

  for (int64_t j = 0; j < padded; ++j) {
    const float* k = head.k + std::min(j, n - 1) * head.qkv_stride;
    for (int64_t c = 0; c < d; ++c) kt[c * padded + j] = j < n ? k[c] * scale : 0.0f;
  }

  __m512 magnitude = _mm512_setzero_ps();
  for (int64_t i0 = 0; i0 < n; i0 += kQueryBlock) {
    const int64_t rows = std::min<int64_t>(kQueryBlock, n - i0);
    const float* q[kQueryBlock];
    for (int r = 0; r < kQueryBlock; ++r) q[r] = head.q + (i0 + std::min<int64_t>(r, rows - 1)) * head.qkv_stride;

    for (int64_t jb = 0; jb < padded; jb += 16) {
      __m512 acc[kQueryBlock];
      for (auto& a : acc) a = _mm512_setzero_ps();
      for (int64_t c = 0; c < d; ++c) {
        const __m512 kv = _mm512_loadu_ps(kt + c * padded + jb);
        for (int r = 0; r < kQueryBlock; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][c]), kv, acc[r]);
      }
      for (int r = 0; r < kQueryBlock; ++r) _mm512_storeu_ps(probs + r * padded + jb, acc[r]);
    }
    for (int r = 0; r < rows; ++r) {
      kRowKernels.softmax(probs + r * padded, n);
      store_diagonal_block_row(stats.diagonal, i0 + r, probs + r * padded);
    }

    __m512 out[kQueryBlock][kVecs];
    for (auto& row : out)
      for (auto& o : row) o = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      const float* v = head.v + j * head.qkv_stride;
      __m512 vv[kVecs];
      for (int c = 0; c < kVecs; ++c) vv[c] = _mm512_loadu_ps(v + 16 * c);
      for (int r = 0; r < kQueryBlock; ++r) {
        const __m512 p = _mm512_set1_ps(probs[r * padded + j]);
        for (int c = 0; c < kVecs; ++c) out[r][c] = _mm512_fmadd_ps(p, vv[c], out[r][c]);
      }
    }
    for (int r = 0; r < rows; ++r) {
      float* dst = head.out + (i0 + r) * head.out_stride;
      for (int c = 0; c < kVecs; ++c) {
        _mm512_storeu_ps(dst + 16 * c, out[r][c]);
        magnitude = _mm512_add_ps(magnitude, _mm512_abs_ps(out[r][c]));
      }
    }
    if (stats.received) add_rows_to(stats.received, probs, rows, padded, n);
  }
  if (stats.output_magnitude) *stats.output_magnitude += reduce_add(magnitude);
}

}  // namespace

bool fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats) {
  return with_head_vectors(head_dim, [&]<int kVecs>() { attend<kVecs>(head, n, scale, stats); });
}

}  // namespace sieve::avx512
