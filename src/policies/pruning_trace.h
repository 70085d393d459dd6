#pragma once
// Wraps a policy and records what survived each layer: which tokens and heads entered the layer's
// attention, and how much attention each token received there. `sieve explain` draws it; tests use
// it to replay the engine's decisions on a masked reference.
#include <set>
#include <vector>

#include "policies/layer_policy.h"

namespace sieve {

struct LayerTrace {
  std::vector<int32_t> positions;  // tokens that entered this layer's attention
  std::vector<int32_t> heads;      // heads computed in this layer
  std::vector<float> importance;   // per entry of `positions`: mean attention received (LTP's s)
  std::vector<int32_t> kept;       // positions that survived this layer
};

class PruningTrace : public LayerPolicy {
 public:
  explicit PruningTrace(LayerPolicy* inner) : inner_(inner) {}
  std::string describe() const override { return inner_ ? inner_->describe() : "dense"; }
  PolicyNeeds needs() const override;
  void begin(std::span<const PackedSequence> sequences, int num_layers, int num_heads) override;
  void after_attention(const AttentionLayerView& view, PruneDecision& decision) override;
  void after_layer(const LayerOutputView& view, ExitDecision& decision) override;
  double own_flops() const override { return inner_ ? inner_->own_flops() : 0.0; }

  // [input][layer]; layers an input never reached (early exit) stay empty.
  const std::vector<std::vector<LayerTrace>>& layers() const { return layers_; }

 private:
  LayerPolicy* inner_;
  std::vector<std::vector<LayerTrace>> layers_;
};

}  // namespace sieve
