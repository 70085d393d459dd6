#include "kernels/quantized_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu_features.h"
#include "util/error.h"
#include "util/half.h"

namespace sieve {

bool cpu_has_avx512_vnni() {
  static const bool has = [] {
#if defined(__x86_64__) || defined(__i386__)
    return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
  }();
  return has;
}

Int8Activations Int8Activations::quantize(GgmlType weight_type, int64_t m, const float* x, int64_t ldx, int64_t cols) {
  if (cols % 64 != 0) throw Error("internal: int8 activations need whole pairs of blocks (64 values)");
  Int8Activations a;
  a.rows = m, a.cols = cols;
  a.nibble_order = weight_type == GgmlType::Q4_0 || weight_type == GgmlType::Q4_1;
  const int64_t blocks = cols / 32;
  a.q.resize(static_cast<size_t>(m * cols));
  a.scale_lanes.resize(static_cast<size_t>(m * cols / 2));
  a.offset_lanes.resize(a.scale_lanes.size());
  a.minimum_sums.assign(static_cast<size_t>(m * blocks * 2), 0.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t b = 0; b < blocks; ++b) {
      const float* xb = x + i * ldx + b * 32;
      float amax = 0.0f;
      for (int k = 0; k < 32; ++k) amax = std::max(amax, std::abs(xb[k]));
      const float scale = amax / 127.0f, inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t qsum = 0;
      for (int k = 0; k < 32; ++k) {
        const auto q = static_cast<int8_t>(std::nearbyint(xb[k] * inverse));
        a.q[static_cast<size_t>(a.q_index(i, b, k))] = q;
        qsum += q;
      }
      const int32_t offset = weight_type == GgmlType::Q4_0 ? -qsum : weight_type == GgmlType::Q8_0 ? -16 * qsum : 0;
      // A block's 8 lanes: contiguous (Q8_0), or two runs of 4, 8 lanes apart (Q4).
      const int64_t first = a.lane_index(i, b);
      for (int64_t lane = 0; lane < 8; ++lane) {
        const auto at = static_cast<size_t>(a.nibble_order ? first + (lane / 4) * 8 + lane % 4 : first + lane);
        a.scale_lanes[at] = scale;
        a.offset_lanes[at] = offset;
      }
      a.minimum_sums[static_cast<size_t>((i * blocks + b) * 2 + 1)] = scale * static_cast<float>(qsum);
    }
  return a;
}

bool quantized_gemm_supports(GgmlType type) {
  return type == GgmlType::Q4_0 || type == GgmlType::Q4_1 || type == GgmlType::Q8_0;
}

QuantizedMatrix QuantizedMatrix::from_blocks(GgmlType type, int64_t rows, int64_t cols, std::span<const std::byte> bytes) {
  if (!quantized_gemm_supports(type))
    throw Error("quantized weights of type " + std::string(ggml_type_traits(type).name) + " are not supported (Q4_0, Q4_1, Q8_0)");
  QuantizedMatrix m;
  m.type = type, m.rows = rows, m.cols = cols;
  const GgmlTypeTraits& traits = ggml_type_traits(type);
  m.row_bytes_ = cols / traits.block_elements * traits.block_bytes;
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

namespace {
float half_at(const std::byte* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return f16_to_f32(bits);
}
}  // namespace

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

void quantized_rows_int8(const QuantizedMatrix& w, int64_t first_row, int64_t last_row, const Int8Activations& x,
                         float* y, int64_t ldy, bool accumulate) {
  const int64_t blocks = w.cols / 32, block_bytes = w.row_bytes() / blocks;
  for (int64_t r = first_row; r < last_row; ++r)
    for (int64_t i = 0; i < x.rows; ++i) {
      float total = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        const std::byte* block = w.row(r) + b * block_bytes;
        const float d = half_at(block);
        int32_t dot = 0;
        if (w.type == GgmlType::Q8_0) {
          for (int k = 0; k < 32; ++k) dot += static_cast<int8_t>(block[2 + k]) * x.q[static_cast<size_t>(x.q_index(i, b, k))];
        } else {
          const std::byte* nibbles = block + (w.type == GgmlType::Q4_1 ? 4 : 2);
          const int zero = w.type == GgmlType::Q4_0 ? 8 : 0;
          for (int k = 0; k < 16; ++k) {
            const int byte = std::to_integer<int>(nibbles[k]);
            dot += ((byte & 0x0F) - zero) * x.q[static_cast<size_t>(x.q_index(i, b, k))] +
                   ((byte >> 4) - zero) * x.q[static_cast<size_t>(x.q_index(i, b, k + 16))];
          }
        }
        total += d * x.scale(i, b) * static_cast<float>(dot);
        if (w.type == GgmlType::Q4_1)
          total += half_at(block + 2) * x.block_sum(i, b);
      }
      float& out = y[i * ldy + r];
      out = accumulate ? out + total : total;
    }
}

}  // namespace portable

void quantized_gemm(const QuantizedMatrix& w, int64_t m, const float* x, int64_t ldx, float* y, int64_t ldy,
                    bool accumulate, QuantizedActivations activations) {
  if (m <= 0 || w.rows == 0) return;
  constexpr int64_t kChunk = 16;
  if (activations == QuantizedActivations::Int8 && w.cols % 64 == 0) {
    // Activations quantized once per call, then every thread's rows read them.
    const Int8Activations q = Int8Activations::quantize(w.type, m, x, ldx, w.cols);
    const auto int8_kernel = cpu_has_avx512_vnni() ? avx512vnni::quantized_rows_int8 : portable::quantized_rows_int8;
    const int64_t chunks = (w.rows + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (w.rows * w.cols >= (1 << 16))
    for (int64_t c = 0; c < chunks; ++c) int8_kernel(w, c * kChunk, std::min(w.rows, (c + 1) * kChunk), q, y, ldy, accumulate);
    return;
  }
  const auto rows_kernel = cpu_has_avx512() ? avx512::quantized_rows : portable::quantized_rows;
  // Rows in chunks of 16 so that each thread streams a contiguous stretch of weight bytes.
  const int64_t chunks = (w.rows + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (w.rows * w.cols >= (1 << 16))
  for (int64_t c = 0; c < chunks; ++c)
    rows_kernel(w, c * kChunk, std::min(w.rows, (c + 1) * kChunk), m, x, ldx, y, ldy, accumulate);
}

}  // namespace sieve
