#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "policies/generation_policy.h"
#include "util/error.h"

namespace sieve {

namespace {

// -log softmax(logits)[target], in double for a stable sum over many tokens.
double negative_log_likelihood(std::span<const float> logits, int32_t target) {
  const float top = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - top));
  return std::log(sum) - static_cast<double>(logits[static_cast<size_t>(target)] - top);
}

}  // namespace

PerplexityResult evaluate_perplexity(const Gpt2Decoder& model, std::span<const int32_t> ids, GenerationPolicy& policy,
                                     int64_t window, int64_t stride) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (window < 2 || window > model.config().n_positions)
    throw Error("window must be in [2, " + std::to_string(model.config().n_positions) + "], got " + std::to_string(window));
  if (stride < 1 || stride > window) throw Error("stride must be in [1, window], got " + std::to_string(stride));
  if (n < 2) throw Error("need at least 2 tokens to measure perplexity, got " + std::to_string(n));

  PerplexityResult r;
  r.policy = policy.describe();
  KvTraffic traffic;
  double nll = 0.0, cached = 0.0;
  const auto started = std::chrono::steady_clock::now();
  int64_t scored_until = 1;  // targets before this position are scored (position 0 has no context)
  for (int64_t begin = 0;; begin += stride) {
    const int64_t end = std::min(begin + window, n);
    const int64_t context = std::max<int64_t>(scored_until - begin, 1);
    DecodingSession session(model, policy);
    std::vector<float> logits = session.prefill(ids.subspan(static_cast<size_t>(begin), static_cast<size_t>(context)));
    for (int64_t t = begin + context; t < end; ++t) {
      nll += negative_log_likelihood(logits, ids[static_cast<size_t>(t)]);
      ++r.tokens_scored;
      if (t + 1 < end) {
        logits = session.step(ids[static_cast<size_t>(t)]);
        cached += static_cast<double>(session.cache().size());
      }
    }
    traffic.add(session.traffic());
    r.steps += session.steps();
    scored_until = end;
    if (end == n) break;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  r.mean_nll = nll / static_cast<double>(r.tokens_scored);
  r.perplexity = std::exp(r.mean_nll);
  const double steps = static_cast<double>(std::max<int64_t>(r.steps, 1));
  r.kv_bytes_per_token = traffic.bytes() / steps;
  r.mean_key_bits = traffic.key_elements > 0 ? traffic.key_bits / traffic.key_elements : 0.0;
  r.lsb_refetch_rate = traffic.head_reads > 0 ? static_cast<double>(traffic.lsb_refetches) / static_cast<double>(traffic.head_reads) : 0.0;
  r.mean_cached_tokens = cached / steps;
  r.tokens_per_second = seconds > 0 ? static_cast<double>(r.tokens_scored) / seconds : 0.0;
  return r;
}

}  // namespace sieve
