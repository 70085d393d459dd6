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

namespace sieve::avx512bf16 {

namespace {

// Query rows sharing each load of K and V. Each row is one chain of dependent vdpbf16ps in the
// Q.K^T loop, and 4 chains cannot cover the instruction's latency; 8 rows fill the registers at
// head_dim 32 (8 x 2 output vectors in P.V) but would spill at 64 and above.
template <int kVecs>
constexpr int kQueryBlock = kVecs <= 2 ? 8 : 4;

// Rounds 16 x kVecs floats (times scale) to bf16, in order: element 2c of the row in the low half of
// pair c, element 2c + 1 in its high half, the pairs vdpbf16ps multiplies. Vector rounding (the
// same round-to-nearest-even as f32_to_bf16; the instruction reads denormal inputs as zero): the
// scalar rounding of every Q, K and V element cost this kernel 5-10 % at 384 tokens.
template <int kVecs>
void round_row_to_pairs(const float* row, float scale, uint32_t* pairs) {
  const __m512 s = _mm512_set1_ps(scale);
  int c = 0;
  for (; c + 2 <= kVecs; c += 2)
    _mm512_storeu_si512(pairs + 8 * c, (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_loadu_ps(row + 16 * c + 16), s),
                                                                    _mm512_mul_ps(_mm512_loadu_ps(row + 16 * c), s)));
  if (c < kVecs)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pairs + 8 * c),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(row + 16 * c), s)));
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
  constexpr int kRows = kQueryBlock<kVecs>;
  const int64_t padded = (n + 15) / 16 * 16, pairs = padded / 2;
  thread_local std::vector<uint32_t> pair_scratch;
  thread_local std::vector<float> prob_scratch;
  pair_scratch.resize(static_cast<size_t>(d2 * padded + pairs * d + kRows * pairs));
  prob_scratch.resize(static_cast<size_t>(kRows * padded));
  uint32_t* kt = pair_scratch.data();
  uint32_t* v2 = kt + d2 * padded;
  uint32_t* p2 = v2 + pairs * d;
  float* probs = prob_scratch.data();

  uint32_t key_pairs[d2];
  for (int64_t j = 0; j < padded; ++j) {
    if (j < n) {
      round_row_to_pairs<kVecs>(head.k + j * head.qkv_stride, scale, key_pairs);
      for (int64_t c2 = 0; c2 < d2; ++c2) kt[c2 * padded + j] = key_pairs[c2];
    } else {
      for (int64_t c2 = 0; c2 < d2; ++c2) kt[c2 * padded + j] = 0u;
    }
  }
  for (int64_t j2 = 0; j2 < pairs; ++j2) {
    const int64_t j = 2 * j2;
    const float* va = head.v + std::min(j, n - 1) * head.qkv_stride;
    const float* vb = head.v + std::min(j + 1, n - 1) * head.qkv_stride;
    for (int c = 0; c < kVecs; ++c) {
      const __m512 a = j < n ? _mm512_loadu_ps(va + 16 * c) : _mm512_setzero_ps();
      const __m512 b = j + 1 < n ? _mm512_loadu_ps(vb + 16 * c) : _mm512_setzero_ps();
      _mm512_storeu_si512(v2 + j2 * d + 16 * c, avx512::bf16_value_pairs(a, b));
    }
  }

  __m512 magnitude = _mm512_setzero_ps();
  uint32_t q2[kRows][d2];
  for (int64_t i0 = 0; i0 < n; i0 += kRows) {
    const int64_t rows = std::min<int64_t>(kRows, n - i0);
    for (int r = 0; r < kRows; ++r) {
      round_row_to_pairs<kVecs>(head.q + (i0 + std::min<int64_t>(r, rows - 1)) * head.qkv_stride, 1.0f, q2[r]);
    }

    for (int64_t jb = 0; jb < padded; jb += 16) {
      __m512 acc[kRows];
      for (auto& a : acc) a = _mm512_setzero_ps();
      for (int64_t c2 = 0; c2 < d2; ++c2) {
        const __m512bh kv = (__m512bh)_mm512_loadu_si512(kt + c2 * padded + jb);
        for (int r = 0; r < kRows; ++r)
          acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_set1_epi32(static_cast<int>(q2[r][c2])), kv);
      }
      for (int r = 0; r < kRows; ++r) _mm512_storeu_ps(probs + r * padded + jb, acc[r]);
    }
    avx512::probabilities_to_bf16(probs, kRows, rows, n, padded, i0, stats.diagonal,
                                  reinterpret_cast<uint16_t*>(p2));

    __m512 out[kRows][kVecs];
    for (auto& row : out)
      for (auto& o : row) o = _mm512_setzero_ps();
    for (int64_t j2 = 0; j2 < pairs; ++j2) {
      __m512bh vv[kVecs];
      for (int c = 0; c < kVecs; ++c) vv[c] = (__m512bh)_mm512_loadu_si512(v2 + j2 * d + 16 * c);
      for (int r = 0; r < kRows; ++r) {
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
