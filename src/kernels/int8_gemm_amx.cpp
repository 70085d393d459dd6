// See int8_gemm_amx.h. Compiled with -mamx-int8 (CMake: *_amx.cpp); called only after
// int8_available().
//
// Blocking: tiles 0-3 hold a 32 x 32 int32 result (2 row tiles x 2 column tiles), 4-5 the two
// A row tiles (16 rows x 64 codes), 6-7 the two B column tiles (64 deep x 16 columns). For each
// panel of up to 128 columns and each 32 rows, the products go to a 32 x 128 int32 buffer (16 KB,
// L1) and are dequantized from there, row by row, before the next 32 rows.
#include "kernels/int8_gemm_amx.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>

#include "kernels/amx_tiles.h"
#include "kernels/tile_sparse_gemm.h"  // amx::available()

namespace sieve::amx {

namespace {

constexpr int64_t kTileRows = 16;   // rows of A and of the result per tile
constexpr int64_t kTileCols = 16;   // int32 columns of a result tile
constexpr int64_t kDepth = 64;      // int8 values along k per tile (16 rows x 64 bytes of B)
constexpr int64_t kTileBytes = kTileRows * kDepth;
constexpr int64_t kPanel = 128;     // result columns dequantized per pass over 32 rows

void configure() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.colsb[t] = 64, config.rows[t] = kTileRows;
  _tile_loadconfig(&config);
}

}  // namespace

bool int8_available() {
  static const bool ok = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    return (edx >> 25 & 1u) && available();  // CPUID.7.0:EDX bit 25 AMX-INT8; available() asks Linux
  }();
  return ok;
}

bool int8_shape_supported(int64_t k, int64_t n) { return k > 0 && n > 0 && k % kDepth == 0 && n % 32 == 0; }

std::vector<int8_t> pack_int8_weights(const int8_t* codes, int64_t k, int64_t n) {
  if (!int8_shape_supported(k, n) || !int8_available()) return {};
  std::vector<int8_t> packed(static_cast<size_t>(k * n));
  const int64_t chunks = k / kDepth;
  for (int64_t tile = 0; tile < n / kTileCols; ++tile)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      int8_t* dst = packed.data() + (tile * chunks + chunk) * kTileBytes;
      for (int64_t g = 0; g < kDepth / 4; ++g)
        for (int64_t col = 0; col < kTileCols; ++col)
          for (int64_t t = 0; t < 4; ++t)
            dst[g * 64 + col * 4 + t] = codes[(chunk * kDepth + 4 * g + t) * n + tile * kTileCols + col];
    }
  return packed;
}

void gemm_int8_dequantize(int64_t rows, int64_t n, int64_t k, const int8_t* a_codes, const float* a_scales,
                          const int8_t* packed_b, const float* b_scales, float* out, int64_t ldc, bool accumulate,
                          Epilogue epilogue) {
  if (rows <= 0) return;
  configure();  // per call: the calling thread's tile registers (oneDNN and the other kernels configure their own)
  const RowKernels& kernels = row_kernels();
  const int64_t chunks = k / kDepth;
  alignas(64) int32_t products[2 * kTileRows * kPanel];
  for (int64_t p0 = 0; p0 < n; p0 += kPanel) {
    const int64_t width = std::min(kPanel, n - p0);  // a multiple of 32
    for (int64_t r0 = 0; r0 < rows; r0 += 2 * kTileRows) {
      const bool two = rows - r0 > kTileRows;
      const int8_t* a0 = a_codes + r0 * k;
      const int8_t* a1 = a0 + kTileRows * k;
      for (int64_t c = p0; c < p0 + width; c += 2 * kTileCols) {
        const int8_t* b0 = packed_b + (c / kTileCols) * chunks * kTileBytes;
        const int8_t* b1 = b0 + chunks * kTileBytes;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t chunk = 0; chunk < chunks; ++chunk) {
          _tile_loadd(4, a0 + chunk * kDepth, k);
          _tile_loadd(6, b0 + chunk * kTileBytes, 64);
          _tile_loadd(7, b1 + chunk * kTileBytes, 64);
          _tile_dpbssd(0, 4, 6);
          _tile_dpbssd(1, 4, 7);
          if (two) {
            _tile_loadd(5, a1 + chunk * kDepth, k);
            _tile_dpbssd(2, 5, 6);
            _tile_dpbssd(3, 5, 7);
          }
        }
        int32_t* dst = products + (c - p0);
        _tile_stored(0, dst, kPanel * 4);
        _tile_stored(1, dst + kTileCols, kPanel * 4);
        if (two) {
          _tile_stored(2, dst + kTileRows * kPanel, kPanel * 4);
          _tile_stored(3, dst + kTileRows * kPanel + kTileCols, kPanel * 4);
        }
      }
      for (int64_t r = r0; r < std::min(rows, r0 + 2 * kTileRows); ++r)
        kernels.dequantize_int32(products + (r - r0) * kPanel, a_scales[r], b_scales + p0, out + r * ldc + p0, accumulate,
                                 {epilogue.bias ? epilogue.bias + p0 : nullptr, epilogue.gelu}, width);
    }
  }
  _tile_release();
}

}  // namespace sieve::amx
