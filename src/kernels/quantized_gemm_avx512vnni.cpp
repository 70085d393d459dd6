// AVX-512 VNNI kernel of quantized_gemm's int8 path (kernels/quantized_gemm.h). Two weight blocks
// (64 weights) fill one 512-bit register as unsigned bytes, and one vpdpbusd multiplies them by the
// int8 activations, 4 products per int32 lane (which lanes hold which block: Int8Activations).
// Each lane's sum is then scaled by its block's d_weight * d_activation in fp32.
// The weights' zero point (Q4_0's 8, Q8_0 read as w + 128) is paid by starting each lane from
// Int8Activations::offset_lanes instead of zero, so no instruction is spent on it.
//
// Compiled with -mavx512vnni (CMake: *_avx512vnni.cpp) and only called after cpu_has_avx512_vnni().
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/quantized_gemm.h"
#include "kernels/vec_math_avx512.h"

namespace sieve::avx512vnni {

namespace {

constexpr int64_t kMaxInputs = 4;
constexpr int64_t kPrefetchRows = 16;  // rows ahead

inline int32_t load32(const std::byte* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Blocks 2p and 2p+1 of one weight row: the 64 weights as unsigned bytes in the activations'
// order, per lane the block's scale d, and the blocks' constants as they are, [d0, m0, d1, m1]
// (Q4_1's minimum m meets Int8Activations::minimum_sums there).
template <GgmlType T>
inline void unpack_pair(const std::byte* first, int64_t block_bytes, __m512i& weights, __m512& d, __m128& constants) {
  const std::byte* second = first + block_bytes;
  // Both blocks start with fp16 d (and Q4_1's fp16 m): one conversion.
  constants = _mm_cvtph_ps(_mm_set_epi32(0, 0, load32(second), load32(first)));
  if constexpr (T == GgmlType::Q8_0) {
    d = _mm512_permutexvar_ps(_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_castps128_ps512(constants));
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + 2));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second + 2));
    weights = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(static_cast<char>(0x80)));
  } else {
    constexpr int header = T == GgmlType::Q4_1 ? 4 : 2;
    // Byte k of a block holds weight k (low nibble) and weight k + 16 (high nibble).
    const __m256i packed = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(first + header))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(second + header)), 1);
    // [low nibbles of 2p, of 2p+1, high nibbles of 2p, of 2p+1]: the activations' nibble order.
    weights = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(packed), _mm256_srli_epi16(packed, 4), 1),
                               _mm512_set1_epi8(0x0F));
    d = _mm512_permutexvar_ps(_mm512_set_epi32(2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0), _mm512_castps128_ps512(constants));
  }
}

// R weight rows against up to kMaxInputs activation rows: R * inputs independent accumulators.
template <GgmlType T, int R>
void row_group(const QuantizedMatrix& w, int64_t r0, int64_t i0, int64_t inputs, const Int8Activations& x, float* y,
               int64_t ldy, bool accumulate) {
  const int64_t blocks = w.cols / 32, block_bytes = w.row_bytes() / blocks;
  __m512 acc[R][kMaxInputs];
  __m128 minimum_acc[R][kMaxInputs];  // Q4_1: m * sum(x) in lanes 1 and 3
  for (int k = 0; k < R; ++k)
    for (int64_t i = 0; i < inputs; ++i) acc[k][i] = _mm512_setzero_ps(), minimum_acc[k][i] = _mm_setzero_ps();
  const std::byte* rows[R];
  for (int k = 0; k < R; ++k) rows[k] = w.row(r0 + k);
  for (int64_t b = 0; b < blocks; b += 2) {
    __m512i weights[R];
    __m512 d[R];
    __m128 constants[R];
    for (int k = 0; k < R; ++k) {
      // The hardware prefetcher alone leaves a large matrix (the LM head) at half the memory's speed.
      _mm_prefetch(reinterpret_cast<const char*>(rows[k] + kPrefetchRows * w.row_bytes() + b * block_bytes), _MM_HINT_T0);
      unpack_pair<T>(rows[k] + b * block_bytes, block_bytes, weights[k], d[k], constants[k]);
    }
    for (int64_t i = 0; i < inputs; ++i) {
      const int64_t lane = (i0 + i) * w.cols / 2 + b * 8;  // the pair's 16 lanes
      const __m512i q = _mm512_loadu_si512(x.q.data() + (i0 + i) * w.cols + b * 32);
      const __m512 scale = _mm512_loadu_ps(x.scale_lanes.data() + lane);
      const __m512i offset = _mm512_loadu_si512(x.offset_lanes.data() + lane);
      for (int k = 0; k < R; ++k) {
        const __m512i dot = _mm512_dpbusd_epi32(offset, weights[k], q);
        acc[k][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(d[k], scale), acc[k][i]);
        if constexpr (T == GgmlType::Q4_1)
          minimum_acc[k][i] = _mm_fmadd_ps(constants[k], _mm_loadu_ps(x.minimum_sums.data() + (i0 + i) * blocks * 2 + b * 2), minimum_acc[k][i]);
      }
    }
  }
  for (int k = 0; k < R; ++k)
    for (int64_t i = 0; i < inputs; ++i) {
      float& out = y[(i0 + i) * ldy + r0 + k];
      __m128 minimum = minimum_acc[k][i];
      minimum = _mm_add_ps(minimum, _mm_movehl_ps(minimum, minimum));  // lanes 1 + 3
      const float sum = avx512::reduce_add(acc[k][i]) + _mm_cvtss_f32(_mm_shuffle_ps(minimum, minimum, 1));
      out = accumulate ? out + sum : sum;
    }
}

template <GgmlType T>
void rows_of_type(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, const Int8Activations& x, float* y,
                  int64_t ldy, bool accumulate) {
  constexpr int kRows = 4;
  for (int64_t i0 = 0; i0 < x.rows; i0 += kMaxInputs) {
    const int64_t inputs = std::min(kMaxInputs, x.rows - i0);
    int64_t r = first_row;
    for (; r + kRows <= last_row; r += kRows) row_group<T, kRows>(w, r, i0, inputs, x, y, ldy, accumulate);
    for (; r < last_row; ++r) row_group<T, 1>(w, r, i0, inputs, x, y, ldy, accumulate);
  }
}

}  // namespace

void quantized_rows_int8(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, const Int8Activations& x,
                         float* y, int64_t ldy, bool accumulate) {
  switch (w.type) {
    case GgmlType::Q4_0: return rows_of_type<GgmlType::Q4_0>(w, first_row, last_row, x, y, ldy, accumulate);
    case GgmlType::Q4_1: return rows_of_type<GgmlType::Q4_1>(w, first_row, last_row, x, y, ldy, accumulate);
    default: return rows_of_type<GgmlType::Q8_0>(w, first_row, last_row, x, y, ldy, accumulate);
  }
}

}  // namespace sieve::avx512vnni
