// AVX-512 BF16 kernel of gemm_tile_sparse_bf16 (kernels/tile_sparse_gemm.h): the fp32 kernel's loop
// (tile_sparse_gemm_avx512.cpp) with vdpbf16ps, which multiplies a pair of bf16 inputs into each of
// 16 fp32 accumulators per instruction: half the weight bytes and half the instructions per tile.
// Compiled with -mavx512bf16 (CMake: *_avx512bf16.cpp) and only called after cpu_has_avx512_bf16().
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels/tile_sparse_gemm.h"
#include "kernels/vec_math_avx512.h"

namespace sieve::avx512bf16 {

namespace {

constexpr int kRows = 12;  // accumulators per pass, as in the fp32 kernel
constexpr int64_t kCols = TileSparseMatrix::kTileCols;

inline __m512i broadcast_pair(const uint16_t* x) {  // inputs x[0], x[1] into every 32-bit lane
  int32_t pair;
  std::memcpy(&pair, x, sizeof pair);
  return _mm512_set1_epi32(pair);
}

template <int R>
void block_rows(const uint16_t* x, int64_t lda, const TileSparseMatrix& b, const TileBlock& block, int64_t blk, float* c,
                int64_t ldc, bool accumulate) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const int64_t tile_values = b.tile_k * kCols;
  for (int64_t t = b.block_start[blk]; t < b.block_start[blk + 1]; ++t) {
    const int64_t k0 = b.tile_row[t], pairs = (std::min(b.tile_k, b.rows - k0) + 1) / 2;
    if (k0 < block.row0 || k0 >= block.row1) continue;
    const uint16_t* w = b.bf16_values.data() + t * tile_values;
    const uint16_t* xk = x + (k0 - block.row0);  // (an odd last input pairs with A's zero padding)
    for (int64_t p = 0; p < pairs; ++p) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + p * 2 * kCols);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)broadcast_pair(xk + r * lda + 2 * p), wv);
    }
  }
  const int64_t j0 = blk * kCols;
  const __mmask16 mask = avx512::tail_mask(std::min(kCols, block.col0 + block.cols - j0));
  for (int r = 0; r < R; ++r) {
    float* out = c + r * ldc + (j0 - block.col0);
    __m512 v = acc[r];
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
    _mm512_mask_storeu_ps(out, mask, v);
  }
}

using BlockRows = void (*)(const uint16_t*, int64_t, const TileSparseMatrix&, const TileBlock&, int64_t, float*, int64_t,
                           bool);

template <size_t... R>
constexpr std::array<BlockRows, sizeof...(R)> make_table(std::index_sequence<R...>) {
  return {block_rows<static_cast<int>(R) + 1>...};
}
constexpr auto kernels_by_rows = make_table(std::make_index_sequence<kRows>{});

}  // namespace

void tile_sparse_blocks_bf16(int64_t m, Bf16Rows a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                             int64_t blk1, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kPanel = 4 * kRows;  // as in the fp32 kernel: a panel of A and the tiles stay in L2
  for (int64_t p0 = 0; p0 < m; p0 += kPanel)
    for (int64_t blk = blk0; blk < blk1; ++blk)
      for (int64_t r0 = p0; r0 < std::min(m, p0 + kPanel); r0 += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, m - r0);
        kernels_by_rows[static_cast<size_t>(rows - 1)](a.data + r0 * a.stride, a.stride, b, block, blk, c + r0 * ldc,
                                                       ldc, accumulate);
      }
}

}  // namespace sieve::avx512bf16
