#pragma once
// The element types of GGML (llama.cpp's tensor library) as GGUF files store them, and their
// dequantization to fp32. A quantized row is a sequence of blocks; each block holds
// `block_elements` weights in `block_bytes` bytes: one or two fp16 constants (scale d, minimum m)
// and the packed integer codes. Layouts follow ggml-common.h:
//   Q4_0  d, 16 bytes of nibbles: x = d * (q - 8); low nibbles are elements 0..15, high 16..31
//   Q4_1  d, m, 16 bytes of nibbles: x = d * q + m
//   Q5_0  d, 32 high bits, 16 bytes of nibbles: x = d * (q - 16), q = nibble | high bit << 4
//   Q5_1  d, m, 32 high bits, 16 bytes of nibbles: x = d * q + m
//   Q8_0  d, 32 int8: x = d * q
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sieve {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;
  int64_t block_elements;
  int64_t block_bytes;
  bool dequantizable;  // whether dequantize_row() reads it (the others are sized, not read)
};

// Traits of a type id read from a file; nullopt for ids this build does not know.
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id);
const GgmlTypeTraits& ggml_type_traits(GgmlType type);
// "F32, F16, BF16, Q4_0, ...": the types dequantize_row() reads, for error messages.
std::string dequantizable_type_names();

// out[0..n) = the n weights stored in `blocks` (n a multiple of the type's block_elements; the
// caller has checked that n / block_elements blocks lie inside the buffer). Throws Error for a
// type that is not dequantizable.
void dequantize_row(GgmlType type, const std::byte* blocks, float* out, int64_t n);

}  // namespace sieve
