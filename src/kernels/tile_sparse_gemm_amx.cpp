// AMX kernel of gemm_tile_sparse_bf16 (kernels/tile_sparse_gemm.h): E.T.'s tiles on the CPU's
// matrix unit. One non-zero 16 x 16 weight tile is exactly one AMX B operand (tile_k / 2 rows of 16
// input pairs, the bf16_values layout), and 16 rows of A at the tile's inputs are one A operand read
// in place from the rounded activations, so each kept tile costs one TDPBF16PS per 16 rows and a
// pruned tile costs nothing. oneDNN's dense bf16 GEMM uses the same unit, so without this the
// sparse path loses to dense at batch 32.
// Compiled with -mamx-tile -mamx-bf16 (CMake: *_amx.cpp), called only after amx::available().
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "kernels/amx_tiles.h"
#include "kernels/tile_sparse_gemm.h"
#include "kernels/vec_math_avx512.h"

namespace sieve::amx {

namespace {

constexpr int64_t kCols = TileSparseMatrix::kTileCols;
constexpr int64_t kGroup = 16;  // rows of A per AMX operand

// Tile registers: 0, 1 accumulate two groups of 16 rows; 2, 3 hold their A; 4 holds the weight tile.
void configure(int64_t tile_k) {
  TileConfig config;
  for (int t : {0, 1}) config.colsb[t] = kCols * sizeof(float), config.rows[t] = kGroup;
  for (int t : {2, 3}) config.colsb[t] = static_cast<uint16_t>(tile_k * 2), config.rows[t] = kGroup;
  config.colsb[4] = kCols * 2 * sizeof(uint16_t), config.rows[4] = static_cast<uint8_t>(tile_k / 2);
  _tile_loadconfig(&config);
}

// C rows [r0, r0 + 16 * groups) of column block blk; A holds zero rows past m (Bf16Rows' padding).
template <int Groups>
void block_rows(int64_t m, Bf16Rows a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk, int64_t r0,
                float* c, int64_t ldc, bool accumulate) {
  _tile_zero(0);
  if constexpr (Groups == 2) _tile_zero(1);
  const int64_t tile_values = b.tile_k * kCols, a_stride_bytes = a.stride * 2;
  const uint16_t* a_rows = a.data + r0 * a.stride - block.row0;
  for (int64_t t = b.block_start[blk]; t < b.block_start[blk + 1]; ++t) {
    const int64_t k0 = b.tile_row[t];
    if (k0 < block.row0 || k0 >= block.row1) continue;
    _tile_loadd(4, b.bf16_values.data() + t * tile_values, kCols * 2 * sizeof(uint16_t));
    _tile_loadd(2, a_rows + k0, a_stride_bytes);
    _tile_dpbf16ps(0, 2, 4);
    if constexpr (Groups == 2) {
      _tile_loadd(3, a_rows + kGroup * a.stride + k0, a_stride_bytes);
      _tile_dpbf16ps(1, 3, 4);
    }
  }
  alignas(64) float out[2][kGroup][kCols];
  _tile_stored(0, out[0], kCols * sizeof(float));
  if constexpr (Groups == 2) _tile_stored(1, out[1], kCols * sizeof(float));
  const int64_t j0 = blk * kCols, width = std::min(kCols, block.col0 + block.cols - j0);
  const __mmask16 mask = avx512::tail_mask(width);
  for (int64_t r = 0; r < std::min<int64_t>(Groups * kGroup, m - r0); ++r) {
    float* dst = c + (r0 + r) * ldc + (j0 - block.col0);
    __m512 v = _mm512_load_ps(out[r / kGroup][r % kGroup]);
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst), v);
    _mm512_mask_storeu_ps(dst, mask, v);
  }
}

bool request_permission() {
  // Linux hands out the AMX register state only on request (ARCH_REQ_XCOMP_PERM, XTILEDATA).
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

}  // namespace

bool available() {
  static const bool ok = [] {
#if defined(__x86_64__)
    // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE (clang 14's __builtin_cpu_supports lacks them).
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool amx = (edx >> 22 & 1u) && (edx >> 24 & 1u);
    return cpu_has_avx512_bf16() && amx && request_permission();
#else
    return false;
#endif
  }();
  return ok;
}

void tile_sparse_blocks_bf16(int64_t m, Bf16Rows a, const TileSparseMatrix& b, const TileBlock& block, int64_t blk0,
                             int64_t blk1, float* c, int64_t ldc, bool accumulate) {
  configure(b.tile_k);  // per call: the calling thread's tile registers (oneDNN configures its own)
  for (int64_t blk = blk0; blk < blk1; ++blk)
    for (int64_t r0 = 0; r0 < m; r0 += 2 * kGroup) {
      if (m - r0 > kGroup) block_rows<2>(m, a, b, block, blk, r0, c, ldc, accumulate);
      else block_rows<1>(m, a, b, block, blk, r0, c, ldc, accumulate);
    }
  _tile_release();
}

}  // namespace sieve::amx
