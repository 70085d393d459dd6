#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "policies/top_k.h"
#include "util/error.h"

namespace sieve {

TokenSampler::TokenSampler(SamplingOptions options) : options_(options), rng_(options.seed) {
  if (!(options.temperature >= 0.0) || !std::isfinite(options.temperature)) throw Error("temperature must be >= 0");
  if (options.top_k < 0) throw Error("top-k must be >= 0");
  if (!(options.top_p > 0.0 && options.top_p <= 1.0)) throw Error("top-p must be in (0, 1]");
}

int32_t TokenSampler::next(std::span<const float> logits) {
  if (logits.empty()) throw Error("no logits to sample from");
  if (options_.temperature == 0.0)
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> candidates(logits.size());
  std::iota(candidates.begin(), candidates.end(), 0);
  if (options_.top_k > 0) candidates = top_k_indices(logits, std::move(candidates), static_cast<size_t>(options_.top_k));
  // Most likely first, so the nucleus is a prefix.
  std::sort(candidates.begin(), candidates.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] || (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
  });
  const double top = logits[static_cast<size_t>(candidates.front())];
  std::vector<double> weights;
  double total = 0.0;
  for (int32_t id : candidates) {
    weights.push_back(std::exp((logits[static_cast<size_t>(id)] - top) / options_.temperature));
    total += weights.back();
  }
  if (options_.top_p < 1.0) {
    double cumulative = 0.0;
    size_t keep = 0;
    while (keep < weights.size() && cumulative < options_.top_p * total) cumulative += weights[keep++];
    weights.resize(std::max<size_t>(keep, 1));
  }
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  return candidates[pick(rng_)];
}

}  // namespace sieve
