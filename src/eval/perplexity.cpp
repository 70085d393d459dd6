#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

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

// One window: tokens [begin, end) of which those from begin + context on are scored.
struct Window {
  int64_t begin, context, end;
};

std::vector<Window> plan_windows(int64_t n, const PerplexitySetup& s) {
  std::vector<Window> windows;
  if (s.protocol == PerplexityProtocol::Chunks) {
    for (int64_t begin = 0; begin + s.window <= n; begin += s.window) windows.push_back({begin, s.window / 2 + 1, begin + s.window});
    if (windows.empty())
      throw Error("chunks of " + std::to_string(s.window) + " tokens need at least that many tokens, got " + std::to_string(n));
  } else {
    int64_t scored_until = 1;  // targets before this position are scored (position 0 has no context)
    for (int64_t begin = 0;; begin += s.stride) {
      const int64_t end = std::min(begin + s.window, n);
      windows.push_back({begin, std::max<int64_t>(scored_until - begin, 1), end});
      scored_until = end;
      if (end == n) break;
    }
  }
  if (s.first_window >= static_cast<int64_t>(windows.size()))
    throw Error("first window " + std::to_string(s.first_window) + " is beyond the text's " + std::to_string(windows.size()) + " windows");
  windows.erase(windows.begin(), windows.begin() + s.first_window);
  if (s.max_windows > 0 && static_cast<int64_t>(windows.size()) > s.max_windows) windows.resize(static_cast<size_t>(s.max_windows));
  return windows;
}

}  // namespace

PerplexityResult evaluate_perplexity(const Decoder& model, std::span<const int32_t> ids, GenerationPolicy& policy,
                                     const PerplexitySetup& setup) {
  const int64_t n = static_cast<int64_t>(ids.size()), positions = model.shape().max_positions;
  if (setup.window < 2 || setup.window > positions)
    throw Error("window must be in [2, " + std::to_string(positions) + "], got " + std::to_string(setup.window));
  if (setup.protocol == PerplexityProtocol::Sliding && (setup.stride < 1 || setup.stride > setup.window))
    throw Error("stride must be in [1, window], got " + std::to_string(setup.stride));
  if (n < 2) throw Error("need at least 2 tokens to measure perplexity, got " + std::to_string(n));
  if (setup.max_windows < 0 || setup.first_window < 0) throw Error("max_windows and first_window must be >= 0");

  PerplexityResult r;
  r.policy = policy.describe();
  KvTraffic traffic;
  double nll = 0.0, cached = 0.0;
  const auto started = std::chrono::steady_clock::now();
  const DecoderShape shape = model.shape();
  for (const Window& w : plan_windows(n, setup)) {
    if (w.begin + w.context >= w.end) continue;  // a last window holding only context: nothing to score
    DecodingSession session(model, policy, w.end - w.begin);
    const double nll_before = nll;
    const int64_t scored_before = r.tokens_scored;
    const auto token = [&](int64_t t) { return ids[static_cast<size_t>(t)]; };
    if (setup.scoring == PerplexityScoring::Prefill) {
      // Row t - 1 - begin of the window's logits predicts token t.
      Tensor logits;
      session.prefill(ids.subspan(static_cast<size_t>(w.begin), static_cast<size_t>(w.end - 1 - w.begin)), &logits);
      const int64_t vocab = logits.dim(1);
      for (int64_t t = w.begin + w.context; t < w.end; ++t) {
        nll += negative_log_likelihood({logits.row(t - 1 - w.begin), static_cast<size_t>(vocab)}, token(t));
        ++r.tokens_scored;
      }
      // What the same window scored by steps would have read from a dense fp32 cache: the step
      // feeding token u attends over u + 1 - begin slots in every layer and KV head.
      const double reads = static_cast<double>(shape.layers) * shape.kv_heads;
      for (int64_t u = w.begin + w.context; u + 1 < w.end; ++u) {
        const double visible = static_cast<double>(u + 1 - w.begin), elements = visible * static_cast<double>(shape.head_dim) * reads;
        traffic.key_bytes += elements * sizeof(float);
        traffic.value_bytes += elements * sizeof(float);
        traffic.key_elements += elements;
        traffic.key_bits += elements * 32.0;
        traffic.value_elements += elements;
        traffic.head_reads += static_cast<int64_t>(reads);
        cached += visible;
        ++r.steps;
      }
    } else {
      const int64_t prompt = setup.context_steps ? 1 : w.context;
      std::vector<float> logits = session.prefill(ids.subspan(static_cast<size_t>(w.begin), static_cast<size_t>(prompt)));
      for (int64_t t = w.begin + prompt; t < w.begin + w.context; ++t) {  // the rest of the context, unscored
        logits = session.step(token(t));
        cached += static_cast<double>(session.cache().size());
      }
      for (int64_t t = w.begin + w.context; t < w.end; ++t) {
        nll += negative_log_likelihood(logits, token(t));
        ++r.tokens_scored;
        if (t + 1 < w.end) {
          logits = session.step(token(t));
          cached += static_cast<double>(session.cache().size());
        }
      }
    }
    r.window_mean_nll.push_back((nll - nll_before) / static_cast<double>(r.tokens_scored - scored_before));
    traffic.add(session.traffic());
    r.steps += session.steps();
    ++r.windows;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (r.tokens_scored == 0) throw Error("no token was scored: the text is shorter than one window's context");
  r.mean_nll = nll / static_cast<double>(r.tokens_scored);
  r.perplexity = std::exp(r.mean_nll);
  const double steps = static_cast<double>(std::max<int64_t>(r.steps, 1));
  r.kv_bytes_per_token = traffic.bytes() / steps;
  r.traffic = traffic;
  r.mean_key_bits = traffic.key_elements > 0 ? traffic.key_bits / traffic.key_elements : 0.0;
  r.lsb_refetch_rate = traffic.head_reads > 0 ? static_cast<double>(traffic.lsb_refetches) / static_cast<double>(traffic.head_reads) : 0.0;
  r.mean_cached_tokens = cached / steps;
  r.tokens_per_second = seconds > 0 ? static_cast<double>(r.tokens_scored) / seconds : 0.0;
  return r;
}

PerplexityResult evaluate_perplexity(const Decoder& model, std::span<const int32_t> ids, GenerationPolicy& policy,
                                     int64_t window, int64_t stride) {
  PerplexitySetup setup;
  setup.window = window;
  setup.stride = stride;
  return evaluate_perplexity(model, ids, policy, setup);
}

}  // namespace sieve
