#pragma once
// Choosing the next token from logits: greedy (temperature 0, the default) or sampling with
// temperature, top-k and nucleus (top-p) filtering, from a seeded generator so runs repeat.
#include <cstdint>
#include <random>
#include <span>

namespace sieve {

struct SamplingOptions {
  double temperature = 0.0;  // 0 = greedy (argmax, the earliest id on a tie)
  int top_k = 0;             // 0 = no top-k filter
  double top_p = 1.0;        // 1 = no nucleus filter
  uint64_t seed = 0;
};

class TokenSampler {
 public:
  // Throws sieve::Error on a negative temperature or top_k, or top_p outside (0, 1].
  explicit TokenSampler(SamplingOptions options);
  int32_t next(std::span<const float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace sieve
