#include "kernels/quantized_gemm.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu_features.h"
#include "util/error.h"

namespace sieve {

int64_t QuantizedMatrix::row_bytes() const {
  const GgmlTypeTraits& t = ggml_type_traits(type);
  return cols / t.block_elements * t.block_bytes;
}

bool quantized_gemm_supports(GgmlType type) {
  return type == GgmlType::Q4_0 || type == GgmlType::Q4_1 || type == GgmlType::Q8_0;
}

QuantizedMatrix QuantizedMatrix::from_blocks(GgmlType type, int64_t rows, int64_t cols, std::span<const std::byte> bytes) {
  if (!quantized_gemm_supports(type))
    throw Error("quantized weights of type " + std::string(ggml_type_traits(type).name) + " are not supported (Q4_0, Q4_1, Q8_0)");
  QuantizedMatrix m;
  m.type = type, m.rows = rows, m.cols = cols;
  if (cols % 32 != 0 || static_cast<int64_t>(bytes.size()) != rows * m.row_bytes())
    throw Error("internal: quantized matrix bytes do not match its shape");
  m.blocks.assign(bytes.begin(), bytes.end());
  return m;
}

void QuantizedMatrix::append_rows(const QuantizedMatrix& other) {
  if (other.type != type || other.cols != cols) throw Error("internal: stacked quantized matrices differ in type or width");
  blocks.insert(blocks.end(), other.blocks.begin(), other.blocks.end());
  rows += other.rows;
}

namespace portable {

void quantized_rows(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, int64_t m, const float* x, int64_t ldx,
                    float* y, int64_t ldy, bool accumulate) {
  std::vector<float> dequantized(static_cast<size_t>(w.cols));
  for (int64_t r = first_row; r < last_row; ++r) {
    dequantize_row(w.type, w.row(r), dequantized.data(), w.cols);
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * ldx;
      float sum = 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) sum += dequantized[static_cast<size_t>(k)] * xi[k];
      y[i * ldy + r] = accumulate ? y[i * ldy + r] + sum : sum;
    }
  }
}

}  // namespace portable

void quantized_gemm(const QuantizedMatrix& w, int64_t m, const float* x, int64_t ldx, float* y, int64_t ldy,
                    bool accumulate) {
  if (m <= 0 || w.rows == 0) return;
  const auto rows_kernel = cpu_has_avx512() ? avx512::quantized_rows : portable::quantized_rows;
  // Rows in chunks of 16 so that each thread streams a contiguous stretch of weight bytes.
  constexpr int64_t kChunk = 16;
  const int64_t chunks = (w.rows + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (w.rows * w.cols >= (1 << 16))
  for (int64_t c = 0; c < chunks; ++c)
    rows_kernel(w, c * kChunk, std::min(w.rows, (c + 1) * kChunk), m, x, ldx, y, ldy, accumulate);
}

}  // namespace sieve
