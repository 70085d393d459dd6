#pragma once
// LTP threshold token pruning (Kim et al., "Learned Token Pruning"; Magic Pyramid eq. 7 and 10):
//   s_l(x_i) = 1/(N_h n) * sum_h sum_j A_l^h(x_j, x_i)   (attention token i receives, averaged)
//   token i is pruned at layer l when s_l(x_i) < threshold_l.
// n is the sequence's real current length (never a padded one: PRIOR-ART pitfall 2) and N_h the
// heads actually computed, so a threshold means the same in a batch of 1 or 64. The score is per
// layer, not accumulated (that is SpAtten's choice, see CascadePruner). Because the mean of s over
// tokens is 1/n, the same threshold prunes more of a long input than of a short one: LTP's "adaptive".
#include <vector>

#include "policies/layer_policy.h"

namespace sieve {

class ThresholdPruner : public LayerPolicy {
 public:
  ThresholdPruner(std::vector<double> thresholds, PrunePoint point);
  // LTP's schedule: threshold_l = final * (l + 1) / L.
  static std::vector<double> linear_thresholds(double final_threshold, int num_layers);

  std::string describe() const override;
  PolicyNeeds needs() const override { return {true, false}; }
  void after_attention(const AttentionLayerView& view, PruneDecision& decision) override;

  const std::vector<double>& thresholds() const { return thresholds_; }

 private:
  std::vector<double> thresholds_;
  PrunePoint point_;
};

}  // namespace sieve
