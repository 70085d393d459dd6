#include "kernels/tile_sparse_gemm.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu_features.h"
#include "util/error.h"
#include "util/half.h"

namespace sieve {

namespace {

constexpr int64_t kCols = TileSparseMatrix::kTileCols;

void check_tile_k(int64_t tile_k) {
  if (tile_k < 1 || tile_k > 256) throw Error("tile depth must be 1..256 inputs, got " + std::to_string(tile_k));
}

bool tile_is_zero(const Tensor& wt, int64_t k0, int64_t j0, int64_t tile_k) {
  const int64_t k1 = std::min(wt.dim(0), k0 + tile_k), j1 = std::min(wt.dim(1), j0 + kCols);
  for (int64_t k = k0; k < k1; ++k) {
    const float* row = wt.row(k);
    for (int64_t j = j0; j < j1; ++j)
      if (row[j] != 0.0f) return false;
  }
  return true;
}

// The epilogue on columns [j0, j0 + width) of rows [0, m) of C, with the same row kernels the dense
// path runs after its GEMM (so sparse and dense agree element by element).
void apply_epilogue(int64_t m, float* c, int64_t ldc, int64_t j0, int64_t width, Epilogue epilogue) {
  if (!epilogue.bias) return;
  const RowKernels& kernels = row_kernels();
  for (int64_t r = 0; r < m; ++r) {
    float* row = c + r * ldc + j0;
    epilogue.gelu ? kernels.bias_gelu(row, epilogue.bias + j0, width) : kernels.bias_add(row, epilogue.bias + j0, width);
  }
}

}  // namespace

double TileSparseMatrix::sparsity() const {
  const int64_t total = total_tiles();
  return total == 0 ? 0.0 : 1.0 - static_cast<double>(tiles()) / static_cast<double>(total);
}

double tile_sparsity(const Tensor& wt, int64_t tile_k) {
  check_tile_k(tile_k);
  if (wt.rank() != 2) throw Error("tile sparsity needs a 2-D weight, got " + wt.shape_string());
  int64_t zero = 0, total = 0;
  for (int64_t j0 = 0; j0 < wt.dim(1); j0 += kCols)
    for (int64_t k0 = 0; k0 < wt.dim(0); k0 += tile_k, ++total) zero += tile_is_zero(wt, k0, j0, tile_k);
  return total == 0 ? 0.0 : static_cast<double>(zero) / static_cast<double>(total);
}

// A kept tile costs as much as this many more input rows of it (loop and index overhead, the
// output block's accumulators reloaded). Fitted to sieve_tile_sparse_bench at tile_k 4 vs 16, equal
// random sparsity 50-90 %, MiniLM's shapes (2026-12-04, 2-vCPU AMD EPYC: t4 took 1.41x t16's time
// in the median, i.e. 2.5 rows; 1.2 at 800 rows of A, 6.6 at one row;
// docs/results/tile-sparse/gemm-microbench-amd-t*.txt).
constexpr double kTileOverheadRows = 2.5;

int64_t best_tile_k(const Tensor& wt, double min_sparsity) {
  int64_t best = 0;
  double best_work = 0.0;
  for (const int64_t tile_k : {16, 8, 4}) {
    const double sparsity = tile_sparsity(wt, tile_k);
    if (sparsity < min_sparsity) continue;
    const double tiles = static_cast<double>((wt.dim(0) + tile_k - 1) / tile_k);
    const double work = (1.0 - sparsity) * tiles * (static_cast<double>(tile_k) + kTileOverheadRows);
    if (best == 0 || work < best_work) best = tile_k, best_work = work;
  }
  return best;
}

TileSparseMatrix to_tile_sparse(const Tensor& wt, int64_t tile_k) {
  check_tile_k(tile_k);
  if (wt.rank() != 2) throw Error("tile-sparse weight must be 2-D, got " + wt.shape_string());
  TileSparseMatrix s;
  s.rows = wt.dim(0), s.cols = wt.dim(1), s.tile_k = tile_k;
  const int64_t blocks = (s.cols + kCols - 1) / kCols;
  s.block_start.assign(1, 0);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kCols, width = std::min(kCols, s.cols - j0);
    for (int64_t k0 = 0; k0 < s.rows; k0 += tile_k) {
      if (tile_is_zero(wt, k0, j0, tile_k)) continue;
      s.tile_row.push_back(static_cast<int32_t>(k0));
      const size_t at = s.values.size();
      s.values.resize(at + static_cast<size_t>(tile_k * kCols), 0.0f);
      for (int64_t k = k0; k < std::min(s.rows, k0 + tile_k); ++k)
        std::memcpy(s.values.data() + at + (k - k0) * kCols, wt.row(k) + j0, sizeof(float) * width);
    }
    s.block_start.push_back(s.tiles());
  }
  return s;
}

void add_bf16_tiles(TileSparseMatrix& s) {
  if (s.has_bf16 || s.tile_k % 2 != 0 || s.block_start.empty()) return;
  std::vector<uint16_t> rounded(s.values.size());
  row_kernels().to_bf16(s.values.data(), rounded.data(), static_cast<int64_t>(s.values.size()));
  s.bf16_values.resize(rounded.size());
  const int64_t tile_values = s.tile_k * kCols;
  for (int64_t t = 0; t < s.tiles(); ++t)
    for (int64_t k = 0; k < s.tile_k; ++k)
      for (int64_t j = 0; j < kCols; ++j)
        s.bf16_values[t * tile_values + TileSparseMatrix::bf16_offset(k, j)] = rounded[t * tile_values + k * kCols + j];
  s.has_bf16 = true;
}

namespace portable {

namespace {

// The reference loop both precisions share: input(r, k) is row r's input k of the weight,
// weight(t, k, j) tile t's value at its input k, output j.
template <class Input, class Weight>
void blocks(int64_t m, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0, int64_t blk1, float* c,
            int64_t ldc, bool accumulate, Input input, Weight weight) {
  for (int64_t blk = blk0; blk < blk1; ++blk) {
    const int64_t j0 = blk * kCols, width = std::min(kCols, block.col0 + block.cols - j0);
    for (int64_t r = 0; r < m; ++r) {
      float acc[kCols] = {};
      for (int64_t t = b.block_start[blk]; t < b.block_start[blk + 1]; ++t) {
        const int64_t k0 = b.tile_row[t], depth = std::min(b.tile_k, b.rows - k0);
        if (k0 < block.row0 || k0 >= block.row1) continue;
        for (int64_t k = 0; k < depth; ++k)
          for (int64_t j = 0; j < kCols; ++j) acc[j] += input(r, k0 + k) * weight(t, k, j);
      }
      float* out = c + r * ldc + (j0 - block.col0);
      for (int64_t j = 0; j < width; ++j) out[j] = accumulate ? out[j] + acc[j] : acc[j];
    }
  }
}

}  // namespace

void tile_sparse_blocks(int64_t m, MatrixRef a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                        int64_t blk1, float* c, int64_t ldc, bool accumulate) {
  blocks(
      m, b, block, blk0, blk1, c, ldc, accumulate,
      [&](int64_t r, int64_t k) { return a.data[r * a.stride + k - block.row0]; },
      [&](int64_t t, int64_t k, int64_t j) { return b.values[(t * b.tile_k + k) * kCols + j]; });
}

void tile_sparse_blocks_bf16(int64_t m, Bf16Rows a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                             int64_t blk1, float* c, int64_t ldc, bool accumulate) {
  blocks(
      m, b, block, blk0, blk1, c, ldc, accumulate,
      [&](int64_t r, int64_t k) { return bf16_to_f32(a.data[r * a.stride + k - block.row0]); },
      [&](int64_t t, int64_t k, int64_t j) {
        return bf16_to_f32(b.bf16_values[t * b.tile_k * kCols + TileSparseMatrix::bf16_offset(k, j)]);
      });
}

}  // namespace portable

bool cpu_has_avx512_bf16() {
  static const bool has = [] {
#if defined(__x86_64__) || defined(__i386__)
    return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
  }();
  return has;
}

bool tile_aligned(const TileSparseMatrix& b, const TileBlock& block) {
  const int64_t row1 = block.row1, col1 = block.col0 + block.cols;
  return block.row0 >= 0 && block.row0 <= row1 && row1 <= b.rows && block.col0 >= 0 && block.cols >= 0 && col1 <= b.cols &&
         block.row0 % b.tile_k == 0 && (row1 % b.tile_k == 0 || row1 == b.rows) && block.col0 % kCols == 0 &&
         (col1 % kCols == 0 || col1 == b.cols);
}

namespace {

// From this many rows AMX beats AVX-512 BF16 on the tiles although it always multiplies 16 rows
// (bench/gemm/tile_sparse_bf16_kernels.cpp, 80 % pruned, one thread: 0.83-1.21x at 1 row,
// 1.23-1.49x at 2, 1.5-2.1x at 4, 2.9-5.8x from 8).
constexpr int64_t kAmxMinRows = 2;

void check_call(const char* name, const TileSparseMatrix& b, const TileBlock& block, float beta) {
  if (beta != 0.0f && beta != 1.0f) throw Error(std::string(name) + ": beta must be 0 or 1");
  if (!tile_aligned(b, block)) throw Error(std::string(name) + ": block is not on tile boundaries");
}

// Runs kernel(blk0, blk1) over the block's columns and the epilogue right after each part.
template <class Kernel>
void for_column_parts(int64_t m, const TileBlock& block, float* c, int64_t ldc, Epilogue epilogue, Kernel kernel) {
  const int64_t blk_begin = block.col0 / kCols, blk_end = (block.col0 + block.cols + kCols - 1) / kCols;
  // Threads split the columns: each streams its own tiles once for all rows (the weight bytes are
  // what a short input is bound by), and no two threads write the same output.
  const int64_t per_task = 2;
  const int64_t tasks = (blk_end - blk_begin + per_task - 1) / per_task;
#pragma omp parallel for schedule(dynamic, 1) if (m * (block.row1 - block.row0) * block.cols >= (1 << 17))
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t blk0 = blk_begin + t * per_task, blk1 = std::min(blk_end, blk0 + per_task);
    kernel(blk0, blk1);
    const int64_t j0 = blk0 * kCols - block.col0;
    apply_epilogue(m, c, ldc, j0, std::min(block.cols, blk1 * kCols - block.col0) - j0, epilogue);
  }
}

}  // namespace

void gemm_tile_sparse(int64_t m, MatrixRef a, const TileSparseMatrix& b, const TileBlock& block, float* c, int64_t ldc,
                      float beta, Epilogue epilogue) {
  check_call("gemm_tile_sparse", b, block, beta);
  if (m <= 0 || block.cols == 0) return;
  const auto kernel = cpu_has_avx512() ? avx512::tile_sparse_blocks : portable::tile_sparse_blocks;
  for_column_parts(m, block, c, ldc, epilogue,
                   [&](int64_t blk0, int64_t blk1) { kernel(m, a, b, block, blk0, blk1, c, ldc, beta == 1.0f); });
}

void gemm_tile_sparse_bf16(int64_t m, MatrixRef a, const TileSparseMatrix& b, const TileBlock& block, float* c,
                           int64_t ldc, float beta, Epilogue epilogue) {
  check_call("gemm_tile_sparse_bf16", b, block, beta);
  if (!b.has_bf16) throw Error("gemm_tile_sparse_bf16: the weight has no bf16 tiles (add_bf16_tiles; odd tile depths have none)");
  if (m <= 0 || block.cols == 0) return;
  // A rounded to bf16 as gemm_bf16 rounds it, padded as Bf16Rows says; one buffer per calling thread.
  const int64_t k = block.row1 - block.row0, stride = (k + b.tile_k - 1) / b.tile_k * b.tile_k;
  const int64_t padded_rows = (m + 15) / 16 * 16;
  thread_local std::vector<uint16_t> a16;
  a16.resize(static_cast<size_t>(padded_rows * stride));
  uint16_t* a_bits = a16.data();  // (thread_local: the workers below must use the caller's buffer)
  const RowKernels& kernels = row_kernels();
#pragma omp parallel for schedule(static) if (m * k >= (1 << 16))
  for (int64_t r = 0; r < padded_rows; ++r) {
    uint16_t* row = a_bits + r * stride;
    if (r < m) kernels.to_bf16(a.data + r * a.stride, row, k);
    std::fill(row + (r < m ? k : 0), row + stride, uint16_t{0});
  }
  const auto kernel = m >= kAmxMinRows && b.tile_k <= 32 && amx::available() ? amx::tile_sparse_blocks_bf16
                      : cpu_has_avx512_bf16()                                ? avx512bf16::tile_sparse_blocks_bf16
                                                                             : portable::tile_sparse_blocks_bf16;
  for_column_parts(m, block, c, ldc, epilogue, [&](int64_t blk0, int64_t blk1) {
    kernel(m, {a_bits, stride}, b, block, blk0, blk1, c, ldc, beta == 1.0f);
  });
}

void gemm_tile_sparse_bf16(int64_t m, MatrixRef a, const TileSparseMatrix& b, float* c, int64_t ldc, float beta,
                           Epilogue epilogue) {
  gemm_tile_sparse_bf16(m, a, b, {0, b.rows, 0, b.cols}, c, ldc, beta, epilogue);
}

void gemm_tile_sparse(int64_t m, MatrixRef a, const TileSparseMatrix& b, float* c, int64_t ldc, float beta,
                      Epilogue epilogue) {
  gemm_tile_sparse(m, a, b, {0, b.rows, 0, b.cols}, c, ldc, beta, epilogue);
}

}  // namespace sieve
