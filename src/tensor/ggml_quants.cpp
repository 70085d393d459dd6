#include "tensor/ggml_quants.h"

#include <array>
#include <cstring>

#include "util/error.h"
#include "util/half.h"

namespace sieve {

namespace {

constexpr std::array<GgmlTypeTraits, 15> kTypes = {{
    {GgmlType::F32, "F32", 1, 4, true},      {GgmlType::F16, "F16", 1, 2, true},
    {GgmlType::BF16, "BF16", 1, 2, true},    {GgmlType::Q4_0, "Q4_0", 32, 18, true},
    {GgmlType::Q4_1, "Q4_1", 32, 20, true},  {GgmlType::Q5_0, "Q5_0", 32, 22, true},
    {GgmlType::Q5_1, "Q5_1", 32, 24, true},  {GgmlType::Q8_0, "Q8_0", 32, 34, true},
    {GgmlType::Q8_1, "Q8_1", 32, 36, false}, {GgmlType::Q2_K, "Q2_K", 256, 84, false},
    {GgmlType::Q3_K, "Q3_K", 256, 110, false}, {GgmlType::Q4_K, "Q4_K", 256, 144, false},
    {GgmlType::Q5_K, "Q5_K", 256, 176, false}, {GgmlType::Q6_K, "Q6_K", 256, 210, false},
    {GgmlType::Q8_K, "Q8_K", 256, 292, false},
}};

// Blocks need not be aligned in the file: every multi-byte field is read through memcpy.
uint16_t read_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

float read_f16(const std::byte* p) { return f16_to_f32(read_u16(p)); }

uint8_t byte_at(const std::byte* p, int64_t i) { return static_cast<uint8_t>(p[i]); }

// Q4_0 / Q4_1: 32 weights from 16 bytes of nibbles, x = d * (q - zero) + m, rounded as ggml does.
void dequantize_q4(const std::byte* block, int64_t header, float d, int zero, float m, float* out) {
  for (int j = 0; j < 16; ++j) {
    const int q = byte_at(block, header + j);
    out[j] = d * static_cast<float>((q & 0x0F) - zero) + m;
    out[j + 16] = d * static_cast<float>((q >> 4) - zero) + m;
  }
}

// Q5_0 / Q5_1: nibbles plus a fifth bit each from a 32-bit mask.
void dequantize_q5(const std::byte* block, int64_t header, float d, int zero, float m, float* out) {
  uint32_t high;
  std::memcpy(&high, block + header, sizeof high);
  for (int j = 0; j < 16; ++j) {
    const uint8_t q = byte_at(block, header + 4 + j);
    const uint32_t low_bit = ((high >> j) << 4) & 0x10u;
    const uint32_t high_bit = (high >> (j + 12)) & 0x10u;
    out[j] = d * static_cast<float>(static_cast<int>((q & 0x0Fu) | low_bit) - zero) + m;
    out[j + 16] = d * static_cast<float>(static_cast<int>((q >> 4) | high_bit) - zero) + m;
  }
}

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id) {
  for (const GgmlTypeTraits& t : kTypes)
    if (static_cast<uint32_t>(t.type) == type_id) return t;
  return std::nullopt;
}

const GgmlTypeTraits& ggml_type_traits(GgmlType type) {
  for (const GgmlTypeTraits& t : kTypes)
    if (t.type == type) return t;
  throw Error("internal: GGML type without traits");
}

std::string dequantizable_type_names() {
  std::string names;
  for (const GgmlTypeTraits& t : kTypes) {
    if (!t.dequantizable) continue;
    if (!names.empty()) names += ", ";
    names += t.name;
  }
  return names;
}

void dequantize_row(GgmlType type, const std::byte* blocks, float* out, int64_t n) {
  const GgmlTypeTraits& traits = ggml_type_traits(type);
  if (!traits.dequantizable)
    throw Error("GGML type " + std::string(traits.name) + " is not supported (supported: " + dequantizable_type_names() + ")");
  if (n % traits.block_elements != 0) throw Error("internal: row length is not a whole number of blocks");
  const int64_t block_count = n / traits.block_elements;
  for (int64_t b = 0; b < block_count; ++b) {
    const std::byte* block = blocks + b * traits.block_bytes;
    float* y = out + b * traits.block_elements;
    switch (type) {
      case GgmlType::F32: std::memcpy(y, block, sizeof(float)); break;
      case GgmlType::F16: *y = read_f16(block); break;
      case GgmlType::BF16: *y = bf16_to_f32(read_u16(block)); break;
      case GgmlType::Q4_0: dequantize_q4(block, 2, read_f16(block), 8, 0.0f, y); break;
      case GgmlType::Q4_1: dequantize_q4(block, 4, read_f16(block), 0, read_f16(block + 2), y); break;
      case GgmlType::Q5_0: dequantize_q5(block, 2, read_f16(block), 16, 0.0f, y); break;
      case GgmlType::Q5_1: dequantize_q5(block, 4, read_f16(block), 0, read_f16(block + 2), y); break;
      case GgmlType::Q8_0: {
        const float d = read_f16(block);
        for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(byte_at(block, 2 + j)));
        break;
      }
      default: throw Error("internal: dequantizable type without a decoder");
    }
  }
}

}  // namespace sieve
