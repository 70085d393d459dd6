#pragma once
// Weights kept in their GGUF blocks (Q4_0, Q4_1, Q8_0; tensor/ggml_quants.h) and multiplied by
// fp32 activations directly: decoding one token is bound by the bytes of weight read, and a Q4_1
// weight is 0.625 bytes against fp32's 4. For the few rows of a decoding step (the prompt's many
// rows go through fp32 sgemm, where arithmetic, not bytes, is the limit).
//
// Two ways to meet the activations (QuantizedActivations):
//  - fp32: each block is unpacked to fp32 and multiplied in fp32, so the result equals the
//    dequantized weights' product up to summation order (the parity path);
//  - int8: the activations are quantized per block of 32 to int8 (scale max|x| / 127, as
//    llama.cpp's Q8 activations) and multiplied as integers (AVX-512 VNNI's u8 x s8 dot products,
//    4 per instruction), each block's integer sum then scaled by d_weight * d_activation. Fewer
//    instructions per weight byte: this is what makes a decoding step bound by memory, not by
//    unpacking. The error is the activations' rounding (about 0.4 % of a block's largest value).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "tensor/ggml_quants.h"

namespace sieve {

struct QuantizedMatrix {
  GgmlType type = GgmlType::Q8_0;
  int64_t rows = 0, cols = 0;   // [rows (outputs), cols (inputs)], each row cols / 32 blocks
  std::vector<std::byte> blocks;

  int64_t row_bytes() const { return row_bytes_; }
  const std::byte* row(int64_t r) const { return blocks.data() + r * row_bytes_; }
  // A copy of a GGUF tensor's bytes [rows, cols]; throws Error for a type the kernel does not read.
  static QuantizedMatrix from_blocks(GgmlType type, int64_t rows, int64_t cols, std::span<const std::byte> bytes);
  // Stacks another matrix's rows below these (same type and cols): Wq, Wk, Wv as one matrix.
  void append_rows(const QuantizedMatrix& other);

 private:
  int64_t row_bytes_ = 0;  // kept, not recomputed: the kernels ask per row
};

bool quantized_gemm_supports(GgmlType type);  // Q4_0, Q4_1, Q8_0

enum class QuantizedActivations { Fp32, Int8 };

// Activations quantized for one weight type's int8 kernel: x[i, block b] ~ scale(i, b) * q. Laid
// out for the kernel, which reads two blocks (64 values) per 512-bit register:
//  - Q8_0 weights: blocks in order; int32 lanes 0-7 of a pair's dot product belong to block 2p,
//    lanes 8-15 to block 2p + 1.
//  - Q4_0/Q4_1 weights, whose byte k holds weights k and k + 16 as nibbles: a pair of blocks is
//    stored [2p: 0-15, 2p+1: 0-15, 2p: 16-31, 2p+1: 16-31], the order the nibbles unpack in, so
//    lanes 0-3 and 8-11 belong to block 2p, lanes 4-7 and 12-15 to block 2p + 1.
// Per-block constants are stored repeated over their lanes, so a pair is one 16-lane load.
struct Int8Activations {
  int64_t rows = 0, cols = 0;
  bool nibble_order = false;         // Q4 layout above
  std::vector<int8_t> q;             // [rows, cols] round(x / scale), in [-127, 127]
  std::vector<float> scale_lanes;    // [rows, cols / 2]: max|x| / 127 of the lane's block
  std::vector<int32_t> offset_lanes; // [rows, cols / 2]: the weights' zero point times sum(q), per lane:
                                     // Q4_0 (q - 8): -sum(q); Q8_0 read as unsigned (w + 128): -16 sum(q); Q4_1: 0
  std::vector<float> minimum_sums;   // [rows, cols / 16]: (0, scale * sum(q)) per block, laid out like a
                                     // Q4_1 block's constants (d, m), so one multiply-add of the two gives
                                     // m * sum of the rounded x. (Not the exact sum(x): then the result is
                                     // no longer the product with the rounded x, and the rounding errors,
                                     // weighted by d*q >= 0 instead of by w, add up: 4x the error on real
                                     // activations.)

  static Int8Activations quantize(GgmlType weight_type, int64_t m, const float* x, int64_t ldx, int64_t cols);

  int64_t blocks() const { return cols / 32; }
  // Where element k of block b of row i is stored (the layouts above).
  int64_t q_index(int64_t i, int64_t b, int64_t k) const {
    if (!nibble_order) return i * cols + b * 32 + k;
    return i * cols + (b / 2) * 64 + (k < 16 ? 0 : 32) + (b % 2) * 16 + k % 16;
  }
  // First of a block's 8 lanes (Q8_0), or of its first 4 (Q4: the other 4 are 8 lanes on).
  int64_t lane_index(int64_t i, int64_t b) const {
    const int64_t row = i * cols / 2;
    return nibble_order ? row + (b / 2) * 16 + (b % 2) * 4 : row + b * 8;
  }
  float scale(int64_t i, int64_t b) const { return scale_lanes[static_cast<size_t>(lane_index(i, b))]; }
  float block_sum(int64_t i, int64_t b) const { return minimum_sums[static_cast<size_t>((i * blocks() + b) * 2 + 1)]; }
};

// y[i, r] (+)= sum_k x[i, k] * W[r, k] for i < m: y = x W^T, W quantized. Threads follow OpenMP.
// Int8 needs cols a multiple of 64 (block pairs; every Llama width is) and otherwise runs as fp32.
void quantized_gemm(const QuantizedMatrix& w, int64_t m, const float* x, int64_t ldx, float* y, int64_t ldy,
                    bool accumulate, QuantizedActivations activations = QuantizedActivations::Fp32);
bool cpu_has_avx512_vnni();

namespace portable {
void quantized_rows(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, int64_t m, const float* x, int64_t ldx,
                    float* y, int64_t ldy, bool accumulate);
// The int8 kernel's arithmetic written plainly (integer block sums, then the scales): its reference.
void quantized_rows_int8(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, const Int8Activations& x,
                         float* y, int64_t ldy, bool accumulate);
}
namespace avx512vnni {
void quantized_rows_int8(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, const Int8Activations& x,
                         float* y, int64_t ldy, bool accumulate);
}
namespace avx512 {
void quantized_rows(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, int64_t m, const float* x, int64_t ldx,
                    float* y, int64_t ldy, bool accumulate);
}

}  // namespace sieve
