#include <algorithm>
#include <vector>

#include "attention/fused_attention.h"
#include "kernels/row_kernels.h"
#include "kernels/vec_math_avx512.h"

namespace sieve::avx512 {

namespace {

// Query rows per block. The scores take 8 rows x 2 vectors of 16 keys = 16 accumulators, so each
// load of K feeds 8 multiply-adds and the two FMA ports have 16 independent chains (4 rows x 1
// vector, the first version, left them half idle: 13 % of a 213-token batch went here).
constexpr int kQueryBlock = 8;

// Rows per P.V pass: rows x head vectors accumulators, kept within the 32 registers.
template <int kVecs>
constexpr int kOutputRows = kVecs <= 3 ? 8 : kVecs <= 6 ? 4 : 2;

// probs[r][jb .. jb + 16 * kKeyVecs) = q[r] . kt[:, jb ..], for the block's kQueryBlock rows.
template <int kD, int kKeyVecs>
inline void score_block(const float* const* q, const float* kt, int64_t padded, int64_t jb, float* probs) {
  __m512 acc[kQueryBlock][kKeyVecs];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  for (int c = 0; c < kD; ++c) {
    __m512 keys[kKeyVecs];
    for (int v = 0; v < kKeyVecs; ++v) keys[v] = _mm512_loadu_ps(kt + c * padded + jb + 16 * v);
    for (int r = 0; r < kQueryBlock; ++r) {
      const __m512 qc = _mm512_set1_ps(q[r][c]);
      for (int v = 0; v < kKeyVecs; ++v) acc[r][v] = _mm512_fmadd_ps(qc, keys[v], acc[r][v]);
    }
  }
  for (int r = 0; r < kQueryBlock; ++r)
    for (int v = 0; v < kKeyVecs; ++v) _mm512_storeu_ps(probs + r * padded + jb + 16 * v, acc[r][v]);
}

// head_dim = 16 * kVecs. Q, K and V are copied once per call into contiguous scratch, K transposed
// and scaled so that a 16-wide block of scores is a chain of broadcast-FMAs. Why copy: the rows sit
// 3 * hidden floats apart in the packed QKV buffer, a stride that maps consecutive rows to a few L1
// sets and that the hardware prefetchers do not follow across pages; read in place, the P.V loop
// re-missed on V and the first touch of each row stalled (a third of this kernel's time at 213
// tokens). The copy prefetches a few rows ahead.
template <int kVecs>
void attend(const HeadView& head, int64_t n, float scale, HeadStatistics stats) {
  constexpr int64_t d = 16 * kVecs;
  constexpr int kRowsOut = kOutputRows<kVecs>;
  constexpr int64_t kPrefetchRows = 8;
  const int64_t padded = (n + 15) / 16 * 16;
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(d * padded + kQueryBlock * padded + 2 * n * d));
  float* kt = scratch.data();
  float* probs = kt + d * padded;
  float* q_rows = probs + kQueryBlock * padded;
  float* v_rows = q_rows + n * d;

  for (int64_t j = 0; j < padded; ++j) {
    if (j + kPrefetchRows < n) {
      const int64_t ahead = (j + kPrefetchRows) * head.qkv_stride;
      for (int64_t c = 0; c < d; c += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(head.q + ahead + c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(head.k + ahead + c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(head.v + ahead + c), _MM_HINT_T0);
      }
    }
    if (j < n) {
      const float* k = head.k + j * head.qkv_stride;
      for (int64_t c = 0; c < d; ++c) kt[c * padded + j] = k[c] * scale;
      for (int c = 0; c < kVecs; ++c) {
        _mm512_storeu_ps(q_rows + j * d + 16 * c, _mm512_loadu_ps(head.q + j * head.qkv_stride + 16 * c));
        _mm512_storeu_ps(v_rows + j * d + 16 * c, _mm512_loadu_ps(head.v + j * head.qkv_stride + 16 * c));
      }
    } else {
      for (int64_t c = 0; c < d; ++c) kt[c * padded + j] = 0.0f;
    }
  }

  __m512 magnitude = _mm512_setzero_ps();
  for (int64_t i0 = 0; i0 < n; i0 += kQueryBlock) {
    const int64_t rows = std::min<int64_t>(kQueryBlock, n - i0);
    const float* q[kQueryBlock];
    for (int r = 0; r < kQueryBlock; ++r) q[r] = q_rows + (i0 + std::min<int64_t>(r, rows - 1)) * d;

    int64_t jb = 0;
    for (; jb + 32 <= padded; jb += 32) score_block<d, 2>(q, kt, padded, jb, probs);
    if (jb < padded) score_block<d, 1>(q, kt, padded, jb, probs);
    for (int r = 0; r < rows; ++r) {
      kRowKernels.softmax(probs + r * padded, n);
      store_diagonal_block_row(stats.diagonal, i0 + r, probs + r * padded);
    }

    for (int r0 = 0; r0 < rows; r0 += kRowsOut) {
      __m512 out[kRowsOut][kVecs];
      for (auto& row : out)
        for (auto& o : row) o = _mm512_setzero_ps();
      const float* p = probs + r0 * padded;
      for (int64_t j = 0; j < n; ++j) {
        const float* v = v_rows + j * d;
        __m512 vv[kVecs];
        for (int c = 0; c < kVecs; ++c) vv[c] = _mm512_loadu_ps(v + 16 * c);
        for (int r = 0; r < kRowsOut; ++r) {
          const __m512 pj = _mm512_set1_ps(p[r * padded + j]);
          for (int c = 0; c < kVecs; ++c) out[r][c] = _mm512_fmadd_ps(pj, vv[c], out[r][c]);
        }
      }
      for (int r = 0; r < std::min<int64_t>(kRowsOut, rows - r0); ++r) {
        float* dst = head.out + (i0 + r0 + r) * head.out_stride;
        for (int c = 0; c < kVecs; ++c) {
          _mm512_storeu_ps(dst + 16 * c, out[r][c]);
          magnitude = _mm512_add_ps(magnitude, _mm512_abs_ps(out[r][c]));
        }
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
