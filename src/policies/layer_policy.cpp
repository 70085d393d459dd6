#include "policies/layer_policy.h"

namespace sieve {

std::string PolicyChain::describe() const {
  if (policies_.empty()) return "dense";
  std::string s;
  for (const auto& p : policies_) s += (s.empty() ? "" : " + ") + p->describe();
  return s;
}

PolicyNeeds PolicyChain::needs() const {
  PolicyNeeds all;
  for (const auto& p : policies_) {
    const PolicyNeeds n = p->needs();
    all.attention_received |= n.attention_received;
    all.head_magnitude |= n.head_magnitude;
  }
  return all;
}

void PolicyChain::begin(std::span<const PackedSequence> sequences, int num_layers, int num_heads) {
  for (auto& p : policies_) p->begin(sequences, num_layers, num_heads);
}

void PolicyChain::after_attention(const AttentionLayerView& view, PruneDecision& decision) {
  for (auto& p : policies_) p->after_attention(view, decision);
}

void PolicyChain::after_layer(const LayerOutputView& view, ExitDecision& decision) {
  for (auto& p : policies_) p->after_layer(view, decision);
}

double PolicyChain::own_flops() const {
  double f = 0.0;
  for (const auto& p : policies_) f += p->own_flops();
  return f;
}

const CtaConfig* PolicyChain::attention_backend(int layer) const {
  for (const auto& p : policies_)
    if (const CtaConfig* c = p->attention_backend(layer)) return c;
  return nullptr;
}

}  // namespace sieve
