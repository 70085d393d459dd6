#pragma once
// Sliding-window perplexity of a decoder over a token stream, run through the same decoding loop
// as generation so generation-stage policies apply: each window's context (the tokens the previous
// window already scored) is the prompt, then every scored token is one generation step.
#include <cstdint>
#include <span>
#include <string>

#include "model/gpt2_decoder.h"

namespace sieve {

class GenerationPolicy;

struct PerplexityResult {
  std::string policy;
  double perplexity = 0;
  double mean_nll = 0;           // nats per scored token
  int64_t tokens_scored = 0;
  int64_t steps = 0;             // generation steps (the KV statistics are per step)
  double kv_bytes_per_token = 0; // KV-cache bytes read per generation step
  double mean_key_bits = 0;      // bits fetched per key element read
  double lsb_refetch_rate = 0;   // fraction of (step, layer, head) reads that fetched LSBs
  double mean_cached_tokens = 0; // cache size after each step
  double tokens_per_second = 0;  // scored tokens per second of wall time
};

// window <= n_positions tokens per window, windows `stride` apart (1 <= stride <= window).
PerplexityResult evaluate_perplexity(const Gpt2Decoder& model, std::span<const int32_t> ids, GenerationPolicy& policy,
                                     int64_t window, int64_t stride);

}  // namespace sieve
