#pragma once
// Sieve's own int8 GEMM on AMX tiles, for the blocked int8 path of gemm_int8 (kernels/gemm.cpp):
// the int32 products of a block of rows are dequantized (+ bias, + GELU, + accumulate) panel by
// panel while they are still in L1, instead of going through a [rows, n] int32 buffer that
// oneDNN's matmul writes and a separate pass reads back. Same exact int32 sums, same dequantize
// kernel, so the result equals the oneDNN path bit for bit.
#include <cstdint>
#include <vector>

#include "kernels/row_kernels.h"

namespace sieve::amx {

// AMX-INT8 on this CPU, and the tile state granted by Linux.
bool int8_available();

// Whether pack_int8_weights() takes a [k, n] weight: k a multiple of 64, n a multiple of 32.
bool int8_shape_supported(int64_t k, int64_t n);

// [k, n] int8 codes (row-major) in TDPBSSD's B layout: for each 16-column tile and 64-deep
// chunk, 16 rows of 64 bytes, row g holding (B[4g + t][col]) at byte 4 col + t. Empty where the
// shape is not supported or AMX-INT8 is not available.
std::vector<int8_t> pack_int8_weights(const int8_t* codes, int64_t k, int64_t n);

// out[r, :] (+)= dequantize(A[r, :] . B) for r < rows, with A's codes row-major [rows, k] and
// readable up to the next multiple of 16 rows (those extra rows are not used), A's per-row scales,
// B packed by pack_int8_weights, B's per-column scales; the epilogue as in dequantize_int32.
// Runs on the calling thread.
void gemm_int8_dequantize(int64_t rows, int64_t n, int64_t k, const int8_t* a_codes, const float* a_scales,
                          const int8_t* packed_b, const float* b_scales, float* out, int64_t ldc, bool accumulate,
                          Epilogue epilogue);

}  // namespace sieve::amx
