#pragma once
// What both bf16-products attention kernels (fused_attention_avx512bf16.cpp and
// fused_attention_amx.cpp) share: V's operand layout and the step between their two products.
// Include only from files compiled with -mavx512bf16 (CMake: *_avx512bf16.cpp, *_amx.cpp).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "attention/fused_attention.h"
#include "kernels/row_kernels.h"

namespace sieve::avx512 {

// Columns c .. c + 15 of two V rows a and b (rows 2 j2 and 2 j2 + 1), rounded to bf16 (nearest
// even) and interleaved value by value: 16 pairs (a[c], b[c]), a in the low half, the operand
// layout of P.V in both kernels.
inline __m512i bf16_value_pairs(__m512 a, __m512 b) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                              21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512((__m256i)_mm512_cvtneps_pbh(a)),
                                          (__m256i)_mm512_cvtneps_pbh(b), 1);
  return _mm512_permutexvar_epi16(interleave, both);
}

// A block of `block_rows` score rows (row r at scores + r * padded, keys [0, n) real, the rest
// padding) whose first `rows` rows are queries first_row, first_row + 1, ...: each real row
// becomes its fp32 softmax (kept in place for the statistics) and hands its diagonal-block part
// to `diagonal`; padding keys and rows past `rows` become 0; every row is rounded to bf16 (nearest
// even) into probs16 + r * padded, the A operand of P.V.
inline void probabilities_to_bf16(float* scores, int64_t block_rows, int64_t rows, int64_t n, int64_t padded,
                                  int64_t first_row, const DiagonalBlocksOut& diagonal, uint16_t* probs16) {
  for (int64_t r = 0; r < block_rows; ++r) {
    float* row = scores + r * padded;
    if (r < rows) {
      kRowKernels.softmax(row, n);
      store_diagonal_block_row(diagonal, first_row + r, row);
    }
    std::fill(row + (r < rows ? n : 0), row + padded, 0.0f);
    for (int64_t j = 0; j < padded; j += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(probs16 + r * padded + j),
                          (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(row + j)));
  }
}

}  // namespace sieve::avx512
