#pragma once
// E.T.'s tensor-tile sparsity on the CPU (issue 22): a weight whose fine-tuning zeroed whole tiles
// (tools/train_tile_pruning.py) is stored with only its non-zero tiles, and the GEMM skips the
// rest, so a weight with 80 % of its tiles pruned streams and multiplies a fifth of the bytes.
//
// Layout. Weights are kept transposed for gemm() (Wt [K = in, N = out]). A tile is tile_k rows x
// 16 columns of Wt (16 outputs, one AVX-512 register; tile_k inputs, a run-time parameter; 16 by
// default, E.T.'s 16 x 16). Columns are cut into blocks of 16; each block keeps the list of its
// non-zero tiles (their first row, and their values row-major [tile_k][16]), CSR-style. A tile is
// kept when any of its values is non-zero, so the product equals the dense one on the same weights
// up to summation order (skipped terms are exact zeros).
#include <cstdint>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/row_kernels.h"
#include "tensor/tensor.h"

namespace sieve {

struct TileSparseMatrix {
  static constexpr int64_t kTileCols = 16;  // outputs per tile: one 512-bit register of fp32
  int64_t rows = 0, cols = 0;               // K, N of the dense Wt
  int64_t tile_k = 16;                      // inputs per tile
  std::vector<int64_t> block_start;         // [column blocks + 1]: first tile of each column block
  std::vector<int32_t> tile_row;            // [tiles]: first row (input) of the tile
  std::vector<float> values;                // [tiles, tile_k, 16], zero-padded past rows/cols
  // The same tiles rounded to bf16 for --precision bf16, laid out for AVX-512 BF16's dot product
  // (each 32-bit lane holds two consecutive inputs of one output): [tiles, tile_k / 2, 16, 2].
  // Made by add_bf16_tiles, only where bf16 runs, and only for an even tile_k (so no input pair
  // straddles two tiles).
  std::vector<uint16_t> bf16_values;
  bool has_bf16 = false;
  // Where a tile's input k, output j sits among its tile_k * 16 bf16 values.
  static constexpr int64_t bf16_offset(int64_t k, int64_t j) { return (k / 2) * 2 * kTileCols + j * 2 + k % 2; }

  int64_t column_blocks() const { return static_cast<int64_t>(block_start.size()) - 1; }
  int64_t tiles() const { return static_cast<int64_t>(tile_row.size()); }
  int64_t total_tiles() const { return column_blocks() * ((rows + tile_k - 1) / tile_k); }  // zero or not
  // Fraction of the weight's tiles that are all zero (skipped).
  double sparsity() const;
};

// The non-zero tiles of Wt [K, N] (row-major, stride wt.dim(1)).
TileSparseMatrix to_tile_sparse(const Tensor& wt, int64_t tile_k = 16);
// Adds the bf16 copy of the tiles (rounded as gemm_bf16 rounds its weights); does nothing for an
// odd tile_k, an empty matrix, or one that has it already.
void add_bf16_tiles(TileSparseMatrix& s);
// Fraction of all-zero tiles of Wt, without building the sparse copy (what the loader checks).
double tile_sparsity(const Tensor& wt, int64_t tile_k = 16);
// The tile depth (16, 8 or 4 inputs) at which the kernel has least work on Wt: pruning on a finer
// grid (tools/train_tile_pruning.py --tile 16x4) leaves few all-zero 16-deep tiles, while on a
// 16 x 16 grid the deeper tile pays less per-tile overhead. Work model: kept tiles x (tile_k + a
// per-tile overhead in input rows, fitted to sieve_tile_sparse_bench; tile_sparse_gemm.cpp). Ties
// go to the deeper tile. Only depths at which at least `min_sparsity` of the tiles are zero compete
// (below it the sparse kernel loses to dense sgemm); 0 when none qualifies.
int64_t best_tile_k(const Tensor& wt, double min_sparsity = 0.0);

// A block of the weight: rows [row0, row1) (the inputs A holds, A's column 0 being row0) and
// columns from col0 (C's column 0). Pruned heads read such blocks: a run of live heads is a column
// block of the QKV weight and a row block of the attention output's.
struct TileBlock {
  int64_t row0 = 0, row1 = 0, col0 = 0, cols = 0;
};
// Whether gemm_tile_sparse can read this block: its edges on tile boundaries (or the weight's end).
bool tile_aligned(const TileSparseMatrix& b, const TileBlock& block);

// C[M, block cols] = epilogue(A[M, block rows] * B[block] (+ C when beta is 1)); the epilogue's
// bias is indexed from the block's first column. Throws Error for a block that is not tile_aligned.
void gemm_tile_sparse(int64_t m, MatrixRef a, const TileSparseMatrix& b, const TileBlock& block, float* c, int64_t ldc,
                      float beta = 0.0f, Epilogue epilogue = {});
// The whole weight.
void gemm_tile_sparse(int64_t m, MatrixRef a, const TileSparseMatrix& b, float* c, int64_t ldc, float beta = 0.0f,
                      Epilogue epilogue = {});

// The bf16 product of --precision bf16, matching gemm_bf16 (kernels/gemm.h): A rounded to bf16 on
// the way in, B's bf16 tiles, products accumulated in fp32. Throws Error without b.has_bf16.
void gemm_tile_sparse_bf16(int64_t m, MatrixRef a, const TileSparseMatrix& b, const TileBlock& block, float* c,
                           int64_t ldc, float beta = 0.0f, Epilogue epilogue = {});
void gemm_tile_sparse_bf16(int64_t m, MatrixRef a, const TileSparseMatrix& b, float* c, int64_t ldc,
                           float beta = 0.0f, Epilogue epilogue = {});

// Whether this CPU has AVX-512 BF16 (vdpbf16ps); without it the bf16 product runs the portable loop.
bool cpu_has_avx512_bf16();

// A, rounded to bf16 for the bf16 kernels: rows of `stride` values (the block's inputs rounded up to
// whole tiles, the padding zero, so an input pair or an AMX operand never reads past a row), and
// zero rows up to a multiple of 16 (AMX reads A 16 rows at a time).
struct Bf16Rows {
  const uint16_t* data;
  int64_t stride;
};

// Kernel sets, picked at run time (cpu_has_avx512); each computes column blocks [blk0, blk1) of
// the weight for rows [0, m), reading only tiles within the block's rows (the epilogue is
// gemm_tile_sparse's, right after, while the outputs are in cache).
namespace portable {
void tile_sparse_blocks(int64_t m, MatrixRef a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                        int64_t blk1, float* c, int64_t ldc, bool accumulate);
}
namespace avx512 {
void tile_sparse_blocks(int64_t m, MatrixRef a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                        int64_t blk1, float* c, int64_t ldc, bool accumulate);
}
// The bf16 kernels (cpu_has_avx512_bf16 picks): the same loops over bf16_values.
namespace portable {
void tile_sparse_blocks_bf16(int64_t m, Bf16Rows a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                             int64_t blk1, float* c, int64_t ldc, bool accumulate);
}
// AMX (tile_k even and <= 32): one tile multiply per kept weight tile and 16 rows of A.
namespace amx {
bool available();  // AMX-BF16 on this CPU and granted by Linux
void tile_sparse_blocks_bf16(int64_t m, Bf16Rows a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                             int64_t blk1, float* c, int64_t ldc, bool accumulate);
}
namespace avx512bf16 {
void tile_sparse_blocks_bf16(int64_t m, Bf16Rows a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                             int64_t blk1, float* c, int64_t ldc, bool accumulate);
}

}  // namespace sieve
