#include "policies/generation_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "policies/top_k.h"

namespace sieve {

void GenerationPolicyChain::reset() {
  for (auto& p : policies_) p->reset();
}

std::optional<SplitQuantization> GenerationPolicyChain::kv_quantization() const {
  for (const auto& p : policies_)
    if (auto q = p->kv_quantization()) return q;  // the parser admits one quantizing policy
  return std::nullopt;
}

bool GenerationPolicyChain::needs_key_lsbs(std::span<const float> msb_probabilities) const {
  return std::any_of(policies_.begin(), policies_.end(), [&](const auto& p) { return p->needs_key_lsbs(msb_probabilities); });
}

void GenerationPolicyChain::select_values(std::span<float> probabilities, std::vector<int32_t>& rows) const {
  for (const auto& p : policies_) p->select_values(probabilities, rows);
}

void GenerationPolicyChain::observe_attention(std::span<const float> probabilities) {
  for (auto& p : policies_) p->observe_attention(probabilities);
}

bool GenerationPolicyChain::observes_attention() const {
  return std::any_of(policies_.begin(), policies_.end(), [](const auto& p) { return p->observes_attention(); });
}

void GenerationPolicyChain::choose_cached(const KvCache& cache, std::vector<int32_t>& keep) {
  for (auto& p : policies_) p->choose_cached(cache, keep);
}

std::string GenerationPolicyChain::describe() const {
  if (policies_.empty()) return "dense";
  std::string s;
  for (const auto& p : policies_) {
    if (!s.empty()) s += '+';
    s += p->describe();
  }
  return s;
}

void KvCachePruner::observe_attention(std::span<const float> probabilities) {
  // Slots appended since the last call start with no importance.
  if (importance_.size() < probabilities.size()) importance_.resize(probabilities.size(), 0.0f);
  for (size_t j = 0; j < probabilities.size(); ++j) importance_[j] += probabilities[j];
}

void KvCachePruner::choose_cached(const KvCache& cache, std::vector<int32_t>& keep) {
  importance_.resize(static_cast<size_t>(cache.size()), 0.0f);
  const auto target = static_cast<size_t>(std::ceil(keep_ratio_ * static_cast<double>(cache.tokens_seen()) - 1e-9));
  if (keep.size() > target) {
    // The `recent_` newest slots stay; the rest compete on accumulated importance.
    const size_t protected_count = std::min(keep.size(), static_cast<size_t>(recent_));
    std::vector<int32_t> candidates(keep.begin(), keep.end() - static_cast<std::ptrdiff_t>(protected_count));
    const size_t slots_left = target > protected_count ? target - protected_count : 0;
    std::vector<int32_t> kept = top_k_indices(importance_, std::move(candidates), slots_left);
    kept.insert(kept.end(), keep.end() - static_cast<std::ptrdiff_t>(protected_count), keep.end());
    keep = std::move(kept);
  }
  // The cache is about to keep exactly these slots: keep the scores aligned with it.
  std::vector<float> compacted;
  compacted.reserve(keep.size());
  for (int32_t slot : keep) compacted.push_back(importance_[static_cast<size_t>(slot)]);
  importance_ = std::move(compacted);
}

std::string KvCachePruner::describe() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "kv_prune:keep=%g,recent=%d", keep_ratio_, recent_);
  return buf;
}

void LocalValuePruner::select_values(std::span<float> probabilities, std::vector<int32_t>& rows) const {
  if (rows.size() <= static_cast<size_t>(k_)) return;
  rows = top_k_indices(probabilities, std::move(rows), static_cast<size_t>(k_));
  if (!renormalize_) return;
  float kept = 0.0f;
  for (int32_t r : rows) kept += probabilities[static_cast<size_t>(r)];
  if (kept > 0.0f)
    for (int32_t r : rows) probabilities[static_cast<size_t>(r)] /= kept;
}

std::string LocalValuePruner::describe() const {
  return "value_prune:k=" + std::to_string(k_) + (renormalize_ ? ",renorm=1" : "");
}

bool ProgressiveQuantization::needs_key_lsbs(std::span<const float> msb_probabilities) const {
  // SpAtten: a large max probability means a small attention error, so the MSBs suffice.
  const float max_probability = msb_probabilities.empty() ? 1.0f : *std::max_element(msb_probabilities.begin(), msb_probabilities.end());
  return static_cast<double>(max_probability) < threshold_;
}

std::string ProgressiveQuantization::describe() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "progressive:msb=%d,lsb=%d,threshold=%g", format_.msb_bits, format_.lsb_bits, threshold_);
  std::string text = buf;
  if (format_.rotate) text += ",rotate=1";
  if (format_.group > 0) text += ",group=" + std::to_string(format_.group);
  if (format_.full_range) text += ",fullrange=1";
  if (format_.normal_levels) text += ",levels=normal";
  if (format_.sink_tokens > 0) text += ",sinks=" + std::to_string(format_.sink_tokens);
  std::string wider;
  for (size_t l = 0; l < format_.wider_layers.size(); ++l)
    if (format_.wider_layers[l]) wider += (wider.empty() ? "" : "/") + std::to_string(l);
  if (!wider.empty()) text += ",wider=" + wider;
  return text;
}

}  // namespace sieve
