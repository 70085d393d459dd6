#include "policies/pruning_trace.h"

#include <algorithm>

namespace sieve {

PolicyNeeds PruningTrace::needs() const {
  PolicyNeeds n = inner_ ? inner_->needs() : PolicyNeeds{};
  n.attention_received = true;
  return n;
}

void PruningTrace::begin(std::span<const PackedSequence> sequences, int num_layers, int num_heads) {
  int inputs = 0;
  for (const auto& s : sequences) inputs = std::max(inputs, s.input_index + 1);
  layers_.assign(static_cast<size_t>(inputs), std::vector<LayerTrace>(static_cast<size_t>(num_layers)));
  if (inner_) inner_->begin(sequences, num_layers, num_heads);
}

void PruningTrace::after_attention(const AttentionLayerView& view, PruneDecision& decision) {
  if (inner_) inner_->after_attention(view, decision);
  for (size_t s = 0; s < view.sequences.size(); ++s) {
    const PackedSequence& seq = view.sequences[s];
    LayerTrace& t = layers_[static_cast<size_t>(seq.input_index)][static_cast<size_t>(view.layer)];
    t.positions = seq.positions;
    t.heads = seq.heads;
    const int64_t n = seq.length();
    t.importance.assign(static_cast<size_t>(n), 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (int h : seq.heads) sum += view.received[s][static_cast<size_t>(h * n + j)];
      t.importance[static_cast<size_t>(j)] = seq.heads.empty() ? 0.0f : sum / static_cast<float>(seq.heads.size() * n);
      // Special tokens survive whatever the decision says (the encoder enforces it).
      if (decision.keep_token[s][static_cast<size_t>(j)] || seq.is_special[static_cast<size_t>(j)])
        t.kept.push_back(seq.positions[static_cast<size_t>(j)]);
    }
  }
}

void PruningTrace::after_layer(const LayerOutputView& view, ExitDecision& decision) {
  if (inner_) inner_->after_layer(view, decision);
}

}  // namespace sieve
