#include "policies/layer_policy.h"

#include "util/error.h"

#include <algorithm>

namespace sieve {

DiagonalBlocks make_diagonal_blocks(const PackedSequence& seq, int32_t first_plain, int64_t size, int heads) {
  DiagonalBlocks blocks;
  const int64_t n = seq.length();
  blocks.row_block.assign(static_cast<size_t>(n), -1);
  for (int64_t r = 0; r < n; ++r) {
    if (seq.is_special[static_cast<size_t>(r)]) continue;
    const auto number = static_cast<int32_t>((seq.positions[static_cast<size_t>(r)] - first_plain) / size);
    // A new block where the number changes or a special token interrupts the run.
    const bool continues = r > 0 && blocks.row_block[static_cast<size_t>(r - 1)] >= 0 && blocks.number.back() == number;
    if (!continues) {
      blocks.number.push_back(number);
      blocks.first_row.push_back(static_cast<int32_t>(r));
      blocks.end_row.push_back(static_cast<int32_t>(r));
    }
    ++blocks.end_row.back();
    blocks.row_block[static_cast<size_t>(r)] = static_cast<int32_t>(blocks.number.size() - 1);
  }
  blocks.probs.assign(static_cast<size_t>(heads * blocks.blocks() * size * size), 0.0f);
  return blocks;
}

PruneDecision decide_pruning(LayerPolicy& policy, const AttentionLayerView& view, std::vector<PackedSequence>& seqs,
                             bool* any_dropped) {
  PruneDecision decision;
  for (const auto& s : seqs) {
    decision.keep_token.emplace_back(static_cast<size_t>(s.length()), 1);
    decision.keep_head.emplace_back(static_cast<size_t>(view.num_heads), 1);
  }
  policy.after_attention(view, decision);
  *any_dropped = false;
  for (size_t s = 0; s < seqs.size(); ++s) {
    std::vector<uint8_t>& keep = decision.keep_token[s];
    keep.resize(static_cast<size_t>(seqs[s].length()), 1);
    for (size_t i = 0; i < keep.size(); ++i) {
      // Special tokens are never pruned, whatever a policy says, and a sequence keeps >= 1 row.
      if (seqs[s].is_special[i]) keep[i] = 1;
      *any_dropped |= !keep[i];
    }
    if (std::none_of(keep.begin(), keep.end(), [](uint8_t v) { return v; })) keep[0] = 1;
    decision.keep_head[s].resize(static_cast<size_t>(view.num_heads), 1);
    std::erase_if(seqs[s].heads, [&](int32_t h) { return !decision.keep_head[s][static_cast<size_t>(h)]; });
  }
  return decision;
}

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
    if (n.diagonal_block_size > 0 && all.diagonal_block_size > 0 && n.diagonal_block_size != all.diagonal_block_size)
      throw Error("two policies ask for diagonal attention blocks of different sizes (" + std::to_string(all.diagonal_block_size) +
                  " and " + std::to_string(n.diagonal_block_size) + ")");
    if (n.diagonal_block_size > 0) {
      // The union of the layers asked for; a policy asking for every layer (empty list) gets every layer.
      if (all.diagonal_block_size == 0) {
        all.diagonal_block_layers = n.diagonal_block_layers;
      } else if (all.diagonal_block_layers.empty() || n.diagonal_block_layers.empty()) {
        all.diagonal_block_layers.clear();
      } else {
        all.diagonal_block_layers.resize(std::max(all.diagonal_block_layers.size(), n.diagonal_block_layers.size()), 0);
        for (size_t l = 0; l < n.diagonal_block_layers.size(); ++l) all.diagonal_block_layers[l] |= n.diagonal_block_layers[l];
      }
      all.diagonal_block_size = n.diagonal_block_size;
    }
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
