// The bf16-products attention of fused_attention_avx512bf16.cpp on the CPU's matrix unit (AMX).
// Same definition: Q, K * scale, the probabilities and V rounded to bf16 (nearest even), products
// summed in fp32, softmax and every statistic in fp32. What changes is who multiplies: one
// TDPBF16PS multiplies a 16 x 32 bf16 tile by a 32 x 16 one (8,192 multiply-adds), where
// vdpbf16ps does 32, so at 128+ tokens the two products cost little next to the softmax and the
// layout work. It takes 16 query rows at a time:
//   S (16 x keys) = Q rows . (K * scale)^T   tile by tile, into an fp32 row buffer
//   softmax of each row, the statistics, the rows rounded to bf16
//   O (16 x d)    = P rows . V
// Layouts (AMX's B operand holds pairs of consecutive K-dimension values in one 32-bit lane):
//   q16[i][c]     Q rows in bf16, head_dim padded with zeros to a multiple of 32 (one A tile row)
//   kt[c2][j]     (K[j][2 c2], K[j][2 c2 + 1]) * scale: B tiles of 16 pair-rows x 16 keys
//   v2[j2][c]     (V[2 j2][c], V[2 j2 + 1][c]): B tiles of 16 key pairs x 16 columns
//   p16[r][j]     probabilities in bf16: A tiles of 16 rows x 32 keys
// Keys are padded to a multiple of 32 with zero K and V and probability 0.
// Compiled with -mamx-tile -mamx-bf16 (CMake: *_amx.cpp), called only after amx::available().
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "attention/bf16_probabilities.h"
#include "attention/fused_attention.h"
#include "kernels/amx_tiles.h"
#include "kernels/row_kernels.h"
#include "kernels/vec_math_avx512.h"
#include "util/scratch.h"

namespace sieve::amx {

namespace {

constexpr int64_t kRows = 16;     // query rows per tile
constexpr int64_t kKeys = 16;     // fp32 columns of a result tile
constexpr int64_t kChunk = 32;    // bf16 values along the product's inner dimension per tile
constexpr int kTileBytes = 64;    // every tile here is 16 rows of 64 bytes

// Tiles 0, 1: fp32 results; 2, 3: B operands; 4: the A operand.
void configure() {
  TileConfig config;
  for (int t = 0; t < 5; ++t) config.colsb[t] = kTileBytes, config.rows[t] = kRows;
  _tile_loadconfig(&config);
}

// 16 fp32 -> 16 bf16 (nearest even), as 8 pairs.
__m256i to_bf16(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }

struct Scratch {
  std::vector<uint16_t> q16, p16;
  std::vector<uint32_t> kt, v2, key_rows;
  std::vector<float> scores, out;
};

}  // namespace

bool fused_attention(const HeadView& head, int64_t n, int64_t d, float scale, HeadStatistics stats) {
  if (d % 16 != 0 || d > 128 || n <= 0) return false;
  const int64_t dp = (d + kChunk - 1) / kChunk * kChunk, d2 = dp / 2;  // head_dim padded for Q.K^T
  const int64_t np = (n + kChunk - 1) / kChunk * kChunk, pairs = np / 2;  // keys padded for P.V
  const int64_t nq = (n + kRows - 1) / kRows * kRows;
  thread_local Scratch s;  // grow-only (util/scratch.h): the kernel runs per head and per sequence
  uint16_t* q16 = scratch(s.q16, nq * dp);
  uint16_t* p16 = scratch(s.p16, kRows * np);
  uint32_t* kt = scratch(s.kt, d2 * np);
  uint32_t* v2 = scratch(s.v2, pairs * d);
  uint32_t* key_rows = scratch(s.key_rows, kKeys * d2);
  float* scores = scratch(s.scores, kRows * np);
  float* out = scratch(s.out, kRows * d);
  const __m512 scale_v = _mm512_set1_ps(scale);

  // Q rows in bf16, zero past d and past n.
  for (int64_t i = 0; i < nq; ++i) {
    uint16_t* dst = q16 + i * dp;
    for (int64_t c = 0; c < dp; c += 16) {
      const __m512 x = i < n && c < d ? _mm512_loadu_ps(head.q + i * head.qkv_stride + c) : _mm512_setzero_ps();
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), to_bf16(x));
    }
  }
  // K * scale: 16 keys at a time rounded row by row (a row's bf16 values are its pairs), then
  // transposed into kt so that a pair-row holds 16 keys.
  for (int64_t j0 = 0; j0 < np; j0 += kKeys) {
    for (int64_t jj = 0; jj < kKeys; ++jj) {
      const int64_t j = j0 + jj;
      for (int64_t c = 0; c < dp; c += 16) {
        const __m512 x = j < n && c < d ? _mm512_mul_ps(_mm512_loadu_ps(head.k + j * head.qkv_stride + c), scale_v)
                                        : _mm512_setzero_ps();
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(key_rows + jj * d2 + c / 2), to_bf16(x));
      }
    }
    for (int64_t c2 = 0; c2 < d2; ++c2)
      for (int64_t jj = 0; jj < kKeys; ++jj) kt[c2 * np + j0 + jj] = key_rows[jj * d2 + c2];
  }
  // V: rows 2 j2 and 2 j2 + 1 interleaved value by value.
  for (int64_t j2 = 0; j2 < pairs; ++j2) {
    const int64_t ja = 2 * j2, jb = ja + 1;
    for (int64_t c = 0; c < d; c += 16) {
      const __m512 a = ja < n ? _mm512_loadu_ps(head.v + ja * head.qkv_stride + c) : _mm512_setzero_ps();
      const __m512 b = jb < n ? _mm512_loadu_ps(head.v + jb * head.qkv_stride + c) : _mm512_setzero_ps();
      _mm512_storeu_si512(v2 + j2 * d + c, avx512::bf16_value_pairs(a, b));
    }
  }

  configure();
  __m512 magnitude = _mm512_setzero_ps();
  for (int64_t i0 = 0; i0 < n; i0 += kRows) {
    const int64_t rows = std::min(kRows, n - i0);
    // Scores, two 16-key blocks per pass over the head dimension (np is a multiple of 32).
    for (int64_t j0 = 0; j0 < np; j0 += 2 * kKeys) {
      _tile_zero(0);
      _tile_zero(1);
      for (int64_t c = 0; c < dp; c += kChunk) {
        _tile_loadd(4, q16 + i0 * dp + c, dp * 2);
        _tile_loadd(2, kt + c / 2 * np + j0, np * 4);
        _tile_loadd(3, kt + c / 2 * np + j0 + kKeys, np * 4);
        _tile_dpbf16ps(0, 4, 2);
        _tile_dpbf16ps(1, 4, 3);
      }
      _tile_stored(0, scores + j0, np * 4);
      _tile_stored(1, scores + j0 + kKeys, np * 4);
    }
    avx512::probabilities_to_bf16(scores, kRows, rows, n, np, i0, stats.diagonal, p16);
    if (stats.received) avx512::add_rows_to(stats.received, scores, rows, np, n);
    // Output, two 16-column blocks per pass over the keys (one when d / 16 is odd at the end).
    for (int64_t c0 = 0; c0 < d; c0 += 2 * kKeys) {
      const bool two = c0 + kKeys < d;
      _tile_zero(0);
      _tile_zero(1);
      for (int64_t j = 0; j < np; j += kChunk) {
        _tile_loadd(4, p16 + j, np * 2);
        _tile_loadd(2, v2 + j / 2 * d + c0, d * 4);
        _tile_dpbf16ps(0, 4, 2);
        if (two) {
          _tile_loadd(3, v2 + j / 2 * d + c0 + kKeys, d * 4);
          _tile_dpbf16ps(1, 4, 3);
        }
      }
      _tile_stored(0, out + c0, d * 4);
      if (two) _tile_stored(1, out + c0 + kKeys, d * 4);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* dst = head.out + (i0 + r) * head.out_stride;
      for (int64_t c = 0; c < d; c += 16) {
        const __m512 o = _mm512_loadu_ps(out + r * d + c);
        _mm512_storeu_ps(dst + c, o);
        magnitude = _mm512_add_ps(magnitude, _mm512_abs_ps(o));
      }
    }
  }
  _tile_release();
  if (stats.output_magnitude) *stats.output_magnitude += avx512::reduce_add(magnitude);
  return true;
}

}  // namespace sieve::amx
