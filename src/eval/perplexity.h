#pragma once
// Perplexity of a decoder over a token stream, in windows, through the same decoding loop as
// generation so generation-stage policies apply. Two protocols:
//   sliding  windows of `window` tokens, `stride` apart; each window scores the tokens the previous
//            one did not (Hugging Face's perplexity guide);
//   chunks   llama.cpp's `perplexity`: non-overlapping chunks of `window` tokens (the incomplete
//            tail dropped), each from an empty cache, scoring only its second half: the logits at
//            positions window/2 .. window-2 predict tokens window/2+1 .. window-1.
// Two ways to score a window:
//   steps    the context is the prompt, then every scored token is one generation step: the
//            generation policies (KV pruning, value pruning, progressive quantization) act here;
//   prefill  the whole window in one causal pass (every logit from the prompt stage): the fast
//            way for dense, equal to steps up to floating-point order.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/decoder.h"

namespace sieve {

class GenerationPolicy;

enum class PerplexityProtocol { Sliding, Chunks };
enum class PerplexityScoring { Steps, Prefill };

struct PerplexitySetup {
  PerplexityProtocol protocol = PerplexityProtocol::Sliding;
  PerplexityScoring scoring = PerplexityScoring::Steps;
  int64_t window = 0;       // tokens per window, <= the model's positions
  int64_t stride = 0;       // sliding only: 1 <= stride <= window
  int64_t first_window = 0;  // windows before this one are skipped (a calibration / report split)
  int64_t max_windows = 0;   // 0: all (after first_window)
  // Steps scoring: the window's unscored context is fed as generation steps too (its first token
  // as the prompt), so every token attends over the policy's cache: what llama.cpp's perplexity
  // measures with a quantized KV cache, where the whole chunk reads the quantized cache. Default:
  // the context is the prompt, summarized at fp32 (SpAtten's stages).
  bool context_steps = false;
};

struct PerplexityResult {
  std::string policy;
  double perplexity = 0;
  double mean_nll = 0;           // nats per scored token
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  int64_t steps = 0;             // generation steps (the KV statistics are per step)
  double kv_bytes_per_token = 0; // KV-cache bytes read per generation step
  double mean_key_bits = 0;      // bits fetched per key element read
  double lsb_refetch_rate = 0;   // fraction of (step, layer, KV head) reads that fetched LSBs
  double mean_cached_tokens = 0; // cache size after each step
  double tokens_per_second = 0;  // scored tokens per second of wall time
  // Mean NLL of each window, in order: two settings run on the same windows are compared window by
  // window (a paired difference and its standard error), which tells a real gap from noise.
  std::vector<double> window_mean_nll;
  KvTraffic traffic;             // totals behind the KV statistics (what `sieve sim` replays)
};

PerplexityResult evaluate_perplexity(const Decoder& model, std::span<const int32_t> ids, GenerationPolicy& policy,
                                     const PerplexitySetup& setup);
// The sliding protocol scored by steps (what the GPT-2 tests and earlier tables use).
PerplexityResult evaluate_perplexity(const Decoder& model, std::span<const int32_t> ids, GenerationPolicy& policy,
                                     int64_t window, int64_t stride);

}  // namespace sieve
