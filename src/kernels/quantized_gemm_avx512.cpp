// AVX-512 kernels of quantized_gemm (kernels/quantized_gemm.h): one weight block of 32 is unpacked
// to two vectors of 16 fp32 and multiplied into up to kMaxInputs activation rows at once, so each
// weight byte is read and unpacked once per call.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/quantized_gemm.h"
#include "kernels/vec_math_avx512.h"

namespace sieve::avx512 {

namespace {

constexpr int64_t kMaxInputs = 4;
constexpr int64_t kPrefetchRows = 16;  // rows ahead

inline float half_at(const std::byte* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return _cvtsh_ss(bits);
}

// The 32 weights of one block as two fp32 vectors (elements 0-15, 16-31), before the scale d, and
// (Q4_1) the block minimum m: x = d * (lo|hi) + m.
template <GgmlType T>
inline void unpack(const std::byte* block, __m512& lo, __m512& hi, float& d, float& m) {
  if constexpr (T == GgmlType::Q8_0) {
    d = half_at(block), m = 0.0f;
    lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2))));
    hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 18))));
  } else {
    constexpr int header = T == GgmlType::Q4_1 ? 4 : 2;
    d = half_at(block), m = T == GgmlType::Q4_1 ? half_at(block + 2) : 0.0f;
    const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + header)));
    __m512i low = _mm512_and_si512(bytes, _mm512_set1_epi32(0x0F)), high = _mm512_srli_epi32(bytes, 4);
    if constexpr (T == GgmlType::Q4_0) {
      low = _mm512_sub_epi32(low, _mm512_set1_epi32(8));
      high = _mm512_sub_epi32(high, _mm512_set1_epi32(8));
    }
    lo = _mm512_cvtepi32_ps(low), hi = _mm512_cvtepi32_ps(high);
  }
}

// R weight rows against up to kMaxInputs activation rows: R * inputs independent accumulator chains
// (one chain is bound by the FMA latency, not its throughput), each activation load shared by R rows.
template <GgmlType T, int R>
void row_group(const QuantizedMatrix& w, int64_t r0, int64_t i0, int64_t inputs, const float* x, int64_t ldx,
               const float* block_sums, float* y, int64_t ldy, bool accumulate) {
  const int64_t blocks = w.cols / 32, block_bytes = w.row_bytes() / blocks;
  __m512 acc[R][kMaxInputs];
  float min_acc[R][kMaxInputs];
  for (int k = 0; k < R; ++k)
    for (int64_t i = 0; i < inputs; ++i) acc[k][i] = _mm512_setzero_ps(), min_acc[k][i] = 0.0f;
  const std::byte* rows[R];
  for (int k = 0; k < R; ++k) rows[k] = w.row(r0 + k);
  for (int64_t b = 0; b < blocks; ++b) {
    __m512 lo[R], hi[R], scale[R];
    float mn[R];
    for (int k = 0; k < R; ++k) {
      float d;
      // The hardware prefetcher alone leaves a large matrix (the LM head) at half the memory's speed.
      _mm_prefetch(reinterpret_cast<const char*>(rows[k] + kPrefetchRows * w.row_bytes() + b * block_bytes), _MM_HINT_T0);
      unpack<T>(rows[k] + b * block_bytes, lo[k], hi[k], d, mn[k]);
      scale[k] = _mm512_set1_ps(d);
    }
    for (int64_t i = 0; i < inputs; ++i) {
      const float* xi = x + (i0 + i) * ldx + b * 32;
      const __m512 xl = _mm512_loadu_ps(xi), xh = _mm512_loadu_ps(xi + 16);
      for (int k = 0; k < R; ++k) {
        acc[k][i] = _mm512_fmadd_ps(scale[k], _mm512_fmadd_ps(lo[k], xl, _mm512_mul_ps(hi[k], xh)), acc[k][i]);
        if constexpr (T == GgmlType::Q4_1) min_acc[k][i] += mn[k] * block_sums[(i0 + i) * blocks + b];
      }
    }
  }
  for (int k = 0; k < R; ++k)
    for (int64_t i = 0; i < inputs; ++i) {
      float& out = y[(i0 + i) * ldy + r0 + k];
      const float sum = reduce_add(acc[k][i]) + min_acc[k][i];
      out = accumulate ? out + sum : sum;
    }
}

template <GgmlType T>
void rows_of_type(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, int64_t m, const float* x, int64_t ldx,
                  float* y, int64_t ldy, bool accumulate) {
  const int64_t blocks = w.cols / 32;
  // Q4_1's minimum multiplies the sum of the block's activations: computed once per call.
  std::vector<float> block_sums;
  if constexpr (T == GgmlType::Q4_1) {
    block_sums.resize(static_cast<size_t>(m * blocks));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t b = 0; b < blocks; ++b)
        block_sums[static_cast<size_t>(i * blocks + b)] =
            reduce_add(_mm512_add_ps(_mm512_loadu_ps(x + i * ldx + b * 32), _mm512_loadu_ps(x + i * ldx + b * 32 + 16)));
  }
  constexpr int kRows = 4;
  for (int64_t i0 = 0; i0 < m; i0 += kMaxInputs) {
    const int64_t inputs = std::min(kMaxInputs, m - i0);
    int64_t r = first_row;
    for (; r + kRows <= last_row; r += kRows)
      row_group<T, kRows>(w, r, i0, inputs, x, ldx, block_sums.data(), y, ldy, accumulate);
    for (; r < last_row; ++r) row_group<T, 1>(w, r, i0, inputs, x, ldx, block_sums.data(), y, ldy, accumulate);
  }
}

}  // namespace

void quantized_rows(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, int64_t m, const float* x, int64_t ldx,
                    float* y, int64_t ldy, bool accumulate) {
  switch (w.type) {
    case GgmlType::Q4_0: return rows_of_type<GgmlType::Q4_0>(w, first_row, last_row, m, x, ldx, y, ldy, accumulate);
    case GgmlType::Q4_1: return rows_of_type<GgmlType::Q4_1>(w, first_row, last_row, m, x, ldx, y, ldy, accumulate);
    default: return rows_of_type<GgmlType::Q8_0>(w, first_row, last_row, m, x, ldx, y, ldy, accumulate);
  }
}

}  // namespace sieve::avx512
