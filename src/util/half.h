#pragma once
// 16-bit floats as weight files store them (IEEE fp16, bfloat16), widened to fp32.
#include <bit>
#include <cmath>
#include <cstdint>

namespace sieve {

// Exact: every fp16 value, subnormals included, is representable in fp32.
inline float f16_to_f32(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  const uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  const uint32_t fp32_exponent = exponent == 0x1F ? 0xFFu : exponent + (127 - 15);  // inf/NaN stay so
  return std::bit_cast<float>(sign | (fp32_exponent << 23) | (mantissa << 13));
}

// fp32 to IEEE fp16 bits, rounded to nearest even (subnormals kept, overflow to infinity, NaN
// stays NaN). Plain integer code: _Float16 is not available on every compiler and target.
inline uint16_t f32_to_f16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude >= 0x7F800000u) return sign | (magnitude > 0x7F800000u ? 0x7E00u : 0x7C00u);  // NaN, infinity
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds past fp16's largest (65504)
  if (magnitude < 0x38800000u) {                       // below 2^-14: a subnormal, in units of 2^-24
    const float units = std::bit_cast<float>(magnitude) * 16777216.0f;  // exact: a power-of-two scale
    return sign | static_cast<uint16_t>(std::nearbyint(units));         // nearest even (default rounding)
  }
  // Normal: exponent rebiased (127 -> 15), 23 mantissa bits rounded to 10, ties to even.
  const uint32_t rounded = magnitude + 0xFFFu + ((magnitude >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

// A float rounded to the nearest fp16 value (what storing it in fp16 keeps).
inline float round_to_f16(float value) { return f16_to_f32(f32_to_f16(value)); }

// bf16 is the top half of an fp32, so widening is a shift.
inline float bf16_to_f32(uint16_t bf16) { return std::bit_cast<float>(static_cast<uint32_t>(bf16) << 16); }

// fp32 to bf16 bits, rounded to nearest even; a NaN stays a (quiet) NaN instead of rounding into
// infinity. The rounding the bf16 GEMMs and attention apply to their operands.
inline uint16_t f32_to_bf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace sieve
