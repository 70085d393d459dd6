#pragma once
// Early exit (FastBERT, Magic Pyramid eq. 5): after each layer that has an exit classifier, a
// sequence leaves the forward pass when its exit's normalized entropy
//   u = sum_i p_i log p_i / log(1 / N)
// is at most tau; its prediction is that exit's. The encoder removes exited sequences from the batch,
// so the rest go on without them. tau = 0 never exits (and computes no exits): exactly dense.
#include <span>
#include <vector>

#include "model/exit_heads.h"
#include "policies/layer_policy.h"

namespace sieve {

// Normalized entropy in [0, 1] of softmax(logits): 0 = certain, 1 = uniform.
double normalized_entropy(std::span<const float> logits);

class EarlyExitPolicy : public LayerPolicy {
 public:
  EarlyExitPolicy(const ExitHeads& heads, double tau);
  std::string describe() const override;
  void begin(std::span<const PackedSequence> sequences, int num_layers, int num_heads) override;
  void after_layer(const LayerOutputView& view, ExitDecision& decision) override;
  double own_flops() const override { return flops_; }

 private:
  const ExitHeads& heads_;
  double tau_;
  double flops_ = 0.0;
};

}  // namespace sieve
