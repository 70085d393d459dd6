#pragma once
// SpAtten cascade token and head pruning.
//  token importance: attention probability a token receives, summed over heads and queries, and
//                    accumulated over layers (the score persists and grows);
//  head importance:  magnitude (sum of |output|) of each head, accumulated over layers;
//  after each layer the top-k by the schedule's keep ratio survive (quick-select); [CLS]/[SEP] are
//  never candidates for pruning; what is pruned is never computed again ("cascade").
#include <vector>

#include "policies/keep_schedule.h"
#include "policies/layer_policy.h"

namespace sieve {

class CascadePruner : public LayerPolicy {
 public:
  struct Options {
    KeepSchedule tokens;
    KeepSchedule heads;
    PrunePoint point = PrunePoint::BeforeFfn;
  };
  explicit CascadePruner(Options options) : options_(std::move(options)) {}

  std::string describe() const override;
  PolicyNeeds needs() const override;
  void begin(std::span<const PackedSequence> sequences, int num_layers, int num_heads) override;
  void after_attention(const AttentionLayerView& view, PruneDecision& decision) override;

  // Accumulated scores of input i, by original token position / head index (for explain and tests).
  const std::vector<float>& token_scores(int input) const { return token_scores_.at(static_cast<size_t>(input)); }
  const std::vector<float>& head_scores(int input) const { return head_scores_.at(static_cast<size_t>(input)); }

 private:
  Options options_;
  std::vector<std::vector<float>> token_scores_;  // [input][original position]
  std::vector<std::vector<float>> head_scores_;   // [input][head]
  std::vector<int64_t> prunable_tokens_;          // [input]: non-special tokens at the start
};

}  // namespace sieve
