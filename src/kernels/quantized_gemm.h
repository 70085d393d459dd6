#pragma once
// Weights kept in their GGUF blocks (Q4_0, Q4_1, Q8_0; tensor/ggml_quants.h) and multiplied by
// fp32 activations directly: decoding one token is bound by the bytes of weight read, and a Q4_1
// weight is 0.625 bytes against fp32's 4. For the few rows of a decoding step (the prompt's many
// rows go through fp32 sgemm, where arithmetic, not bytes, is the limit).
//
// The AVX-512 kernel unpacks each block to fp32 and multiplies in fp32 (no activation
// quantization, unlike llama.cpp's Q8 activations), so its result equals the dequantized weights'
// product up to summation order.
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

  int64_t row_bytes() const;
  const std::byte* row(int64_t r) const { return blocks.data() + r * row_bytes(); }
  // A copy of a GGUF tensor's bytes [rows, cols]; throws Error for a type the kernel does not read.
  static QuantizedMatrix from_blocks(GgmlType type, int64_t rows, int64_t cols, std::span<const std::byte> bytes);
  // Stacks another matrix's rows below these (same type and cols): Wq, Wk, Wv as one matrix.
  void append_rows(const QuantizedMatrix& other);
};

bool quantized_gemm_supports(GgmlType type);  // Q4_0, Q4_1, Q8_0

// y[i, r] (+)= sum_k x[i, k] * W[r, k] for i < m: y = x W^T, W quantized. Threads follow OpenMP.
void quantized_gemm(const QuantizedMatrix& w, int64_t m, const float* x, int64_t ldx, float* y, int64_t ldy,
                    bool accumulate);

namespace portable {
void quantized_rows(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, int64_t m, const float* x, int64_t ldx,
                    float* y, int64_t ldy, bool accumulate);
}
namespace avx512 {
void quantized_rows(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, int64_t m, const float* x, int64_t ldx,
                    float* y, int64_t ldy, bool accumulate);
}

}  // namespace sieve
