// AVX-512 kernel of gemm_tile_sparse (kernels/tile_sparse_gemm.h): for one column block (16
// outputs, one register) and a group of rows, each non-zero tile's rows are loaded once and
// multiplied into every row's accumulator (a broadcast multiply-add per input), so a tile read
// from cache serves kRows rows; zero tiles are never touched.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "kernels/tile_sparse_gemm.h"
#include "kernels/vec_math_avx512.h"

namespace sieve::avx512 {

namespace {

constexpr int kRows = 12;  // accumulators per pass: 12 of the 32 registers, leaving room for the tile row
constexpr int64_t kCols = TileSparseMatrix::kTileCols;

template <int R>
void block_rows(const float* x, int64_t lda, const TileSparseMatrix& b, const TileBlock& block, int64_t blk, float* c,
                int64_t ldc, bool accumulate) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const int64_t tile_floats = b.tile_k * kCols;
  for (int64_t t = b.block_start[blk]; t < b.block_start[blk + 1]; ++t) {
    const int64_t k0 = b.tile_row[t], depth = std::min(b.tile_k, b.rows - k0);
    if (k0 < block.row0 || k0 >= block.row1) continue;
    const float* w = b.values.data() + t * tile_floats;
    const float* xk = x + (k0 - block.row0);
    for (int64_t k = 0; k < depth; ++k) {
      const __m512 wv = _mm512_loadu_ps(w + k * kCols);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xk[r * lda + k]), wv, acc[r]);
    }
  }
  const int64_t j0 = blk * kCols;
  const __mmask16 mask = tail_mask(std::min(kCols, block.col0 + block.cols - j0));
  for (int r = 0; r < R; ++r) {
    float* out = c + r * ldc + (j0 - block.col0);
    __m512 v = acc[r];
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
    _mm512_mask_storeu_ps(out, mask, v);
  }
}

using BlockRows = void (*)(const float*, int64_t, const TileSparseMatrix&, const TileBlock&, int64_t, float*, int64_t, bool);

template <size_t... R>
constexpr std::array<BlockRows, sizeof...(R)> make_table(std::index_sequence<R...>) {
  return {block_rows<static_cast<int>(R) + 1>...};
}
// kernels_by_rows[r - 1] handles r rows at once, r = 1..kRows.
constexpr auto kernels_by_rows = make_table(std::make_index_sequence<kRows>{});

}  // namespace

void tile_sparse_blocks(int64_t m, MatrixRef a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                        int64_t blk1, float* c, int64_t ldc, bool accumulate) {
  // Panels of rows, so that a panel of A and the blocks' tiles both stay in L2 while every
  // (block, row group) pair of the panel is computed.
  constexpr int64_t kPanel = 4 * kRows;
  for (int64_t p0 = 0; p0 < m; p0 += kPanel)
    for (int64_t blk = blk0; blk < blk1; ++blk)
      for (int64_t r0 = p0; r0 < std::min(m, p0 + kPanel); r0 += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, m - r0);
        kernels_by_rows[static_cast<size_t>(rows - 1)](a.data + r0 * a.stride, a.stride, b, block, blk, c + r0 * ldc,
                                                       ldc, accumulate);
      }
}

}  // namespace sieve::avx512
