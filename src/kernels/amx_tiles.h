#pragma once
// The tile configuration AMX's LDTILECFG reads (palette 1), shared by the AMX kernels
// (kernels/tile_sparse_gemm_amx.cpp, attention/fused_attention_amx.cpp); each fills in the rows
// and bytes per row of the tile registers it uses.
#include <cstdint>

namespace sieve::amx {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row, per tile register
  uint8_t rows[16] = {};
};

}  // namespace sieve::amx
