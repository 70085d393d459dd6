// The fused attention of fused_attention_avx512.cpp with its two products in bf16: Q.K^T and P.V
// multiply bf16 pairs with AVX-512 BF16's vdpbf16ps (32 products summed into 16 fp32 lanes per
// instruction, twice the FMA's rate), the sums, the softmax and every statistic stay in fp32.
// Operands are rounded to nearest even, as kernels/row_kernels rounds activations for bf16 GEMMs.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "attention/bf16_probabilities.h"
#include "attention/fused_attention.h"
#include "kernels/row_kernels.h"
#include "kernels/vec_math_avx512.h"
#include "util/half.h"

namespace sieve::avx512bf16 {

namespace {

constexpr int kQueryBlock = 4;  // query rows sharing each load of K and V

// Two bf16 in one 32-bit lane, `first` in the low half: the element order vdpbf16ps pairs.
uint32_t bf16_pair(float first, float second) {
  return static_cast<uint32_t>(f32_to_bf16(first)) | (static_cast<uint32_t>(f32_to_bf16(second)) << 16);
}

// head_dim = 16 * kVecs. Layouts, all in bf16 pairs (uint32):
//   kt[c2][j]      = (K[j][2 c2], K[j][2 c2 + 1]) * scale: a 16-wide block of scores is a chain of
//                    vdpbf16ps of one broadcast Q pair against 16 keys
//   v2[j2][c]      = (V[2 j2][c], V[2 j2 + 1][c]): a row of the output is a chain of vdpbf16ps of one
//                    broadcast probability pair against 16 columns
//   p2[r][j2]      = (P[r][2 j2], P[r][2 j2 + 1]), rounded after the fp32 softmax
// Keys past n (to a multiple of 16) are zero and get probability 0.
template <int kVecs>
void attend(const HeadView& head, int64_t n, float scale, HeadStatistics stats) {
  constexpr int64_t d = 16 * kVecs, d2 = d / 2;
  const int64_t padded = (n + 15) / 16 * 16, pairs = padded / 2;
  thread_local std::vector<uint32_t> pair_scratch;
  thread_local std::vector<float> prob_scratch;
  pair_scratch.resize(static_cast<size_t>(d2 * padded + pairs * d + kQueryBlock * pairs));
  prob_scratch.resize(static_cast<size_t>(kQueryBlock * padded));
  uint32_t* kt = pair_scratch.data();
  uint32_t* v2 = kt + d2 * padded;
  uint32_t* p2 = v2 + pairs * d;
  float* probs = prob_scratch.data();

  for (int64_t j = 0; j < padded; ++j) {
    const float* k = head.k + std::min(j, n - 1) * head.qkv_stride;
    for (int64_t c2 = 0; c2 < d2; ++c2) kt[c2 * padded + j] = j < n ? bf16_pair(k[2 * c2] * scale, k[2 * c2 + 1] * scale) : 0u;
  }
  for (int64_t j2 = 0; j2 < pairs; ++j2) {
    const int64_t j = 2 * j2;
    const float* va = head.v + std::min(j, n - 1) * head.qkv_stride;
    const float* vb = head.v + std::min(j + 1, n - 1) * head.qkv_stride;
    for (int64_t c = 0; c < d; ++c) v2[j2 * d + c] = bf16_pair(j < n ? va[c] : 0.0f, j + 1 < n ? vb[c] : 0.0f);
  }

  __m512 magnitude = _mm512_setzero_ps();
  uint32_t q2[kQueryBlock][d2];
  for (int64_t i0 = 0; i0 < n; i0 += kQueryBlock) {
    const int64_t rows = std::min<int64_t>(kQueryBlock, n - i0);
    for (int r = 0; r < kQueryBlock; ++r) {
      const float* q = head.q + (i0 + std::min<int64_t>(r, rows - 1)) * head.qkv_stride;
      for (int64_t c2 = 0; c2 < d2; ++c2) q2[r][c2] = bf16_pair(q[2 * c2], q[2 * c2 + 1]);
    }

    for (int64_t jb = 0; jb < padded; jb += 16) {
      __m512 acc[kQueryBlock];
      for (auto& a : acc) a = _mm512_setzero_ps();
      for (int64_t c2 = 0; c2 < d2; ++c2) {
        const __m512bh kv = (__m512bh)_mm512_loadu_si512(kt + c2 * padded + jb);
        for (int r = 0; r < kQueryBlock; ++r)
          acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_set1_epi32(static_cast<int>(q2[r][c2])), kv);
      }
      for (int r = 0; r < kQueryBlock; ++r) _mm512_storeu_ps(probs + r * padded + jb, acc[r]);
    }
    avx512::probabilities_to_bf16(probs, kQueryBlock, rows, n, padded, i0, stats.diagonal,
                                  reinterpret_cast<uint16_t*>(p2));

    __m512 out[kQueryBlock][kVecs];
    for (auto& row : out)
      for (auto& o : row) o = _mm512_setzero_ps();
    for (int64_t j2 = 0; j2 < pairs; ++j2) {
      __m512bh vv[kVecs];
      for (int c = 0; c < kVecs; ++c) vv[c] = (__m512bh)_mm512_loadu_si512(v2 + j2 * d + 16 * c);
      for (int r = 0; r < kQueryBlock; ++r) {
        const __m512bh p = (__m512bh)_mm512_set1_epi32(static_cast<int>(p2[r * pairs + j2]));
        for (int c = 0; c < kVecs; ++c) out[r][c] = _mm512_dpbf16_ps(out[r][c], p, vv[c]);
      }
    }
    for (int r = 0; r < rows; ++r) {
      float* dst = head.out + (i0 + r) * head.out_stride;
      for (int c = 0; c < kVecs; ++c) {
        _mm512_storeu_ps(dst + 16 * c, out[r][c]);
        magnitude = _mm512_add_ps(magnitude, _mm512_abs_ps(out[r][c]));
      }
    }
    if (stats.received) avx512::add_rows_to(stats.received, probs, rows, padded, n);
  }
  if (stats.output_magnitude) *stats.output_magnitude += avx512::reduce_add(magnitude);
}

}  // namespace

bool fused_attention(const HeadView& head, int64_t n, int64_t head_dim, float scale, HeadStatistics stats) {
  return with_head_vectors(head_dim, [&]<int kVecs>() { attend<kVecs>(head, n, scale, stats); });
}

}  // namespace sieve::avx512bf16
