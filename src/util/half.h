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

// bf16 is the top half of an fp32, so widening is a shift.
inline float bf16_to_f32(uint16_t bf16) { return std::bit_cast<float>(static_cast<uint32_t>(bf16) << 16); }

}  // namespace sieve
