#pragma once
// The ordering the GPU top-k sorts by, shared by host code (tests, reference) and device code so the
// two can never disagree. A (score, row, special) triple becomes one 64-bit key; a larger key ranks
// higher: special rows ([CLS]/[SEP]) above every score, then larger score, then the earlier row, which
// is exactly the tie rule of top_k_indices (policies/top_k.h).
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define SIEVE_HOST_DEVICE __host__ __device__
#else
#define SIEVE_HOST_DEVICE
#endif

namespace sieve::cuda {

// Maps a float to a uint32 whose unsigned order is the float order (-inf < ... < -0 = +0 < ... < +inf).
SIEVE_HOST_DEVICE inline uint32_t orderable_bits(float score) {
  uint32_t bits;
  std::memcpy(&bits, &score, sizeof bits);
  if (bits == 0x80000000u) bits = 0;  // -0 ranks as +0, as == does on the CPU
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Key 0 is below every real key; it pads the sort to a power of two.
SIEVE_HOST_DEVICE inline uint64_t top_k_key(float score, int32_t row, bool special) {
  const uint64_t hi = special ? 0xFFFFFFFFull : orderable_bits(score);
  return (hi << 32) | static_cast<uint32_t>(0x7FFFFFFF - row);  // earlier row = larger low word
}

SIEVE_HOST_DEVICE inline int32_t top_k_key_row(uint64_t key) {
  return 0x7FFFFFFF - static_cast<int32_t>(key & 0xFFFFFFFFull);
}

}  // namespace sieve::cuda
