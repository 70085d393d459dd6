#pragma once
// The step both bf16-products attention kernels (fused_attention_avx512bf16.cpp and
// fused_attention_amx.cpp) take between their two products. Include only from files compiled with
// -mavx512bf16 (CMake: *_avx512bf16.cpp, *_amx.cpp).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "attention/fused_attention.h"
#include "kernels/row_kernels.h"

namespace sieve::avx512 {

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
