#pragma once
// Block-Skim (Guan et al., AAAI 2022; ../shared/seeds/token-pruning-survey-slides.txt, "Method 1"):
// after a layer's attention, a small CNN reads the diagonal block of the attention map of each
// block of context tokens (every head a channel) and predicts whether the block can hold the
// answer; blocks it calls irrelevant are skimmed: they leave the packed batch and are never
// computed again. Question tokens, [CLS] and [SEP] are special and never skimmed.
//
// The predictors come from tools/train_qa.py, in <model>/blockskim/:
//   blockskim.json         {"format": "sieve-blockskim", "version": 1, "block_size": S, "layers": L,
//                           "heads": C, "bn_eps": e}
//   blockskim.safetensors  layer.<l>.conv1.{weight [C, C, 3, 3], bias}, bn1.{weight, bias,
//                          running_mean, running_var}, conv2..., bn2..., fc.{weight [2, C*S*S/16], bias}
// One predictor per layer: conv 3x3 (padding 1) + BatchNorm (inference: running statistics) + ReLU
// + 2x2 average pool, twice, then a linear layer to (skim, keep) logits. The released code's
// batch alignment (every sequence of a padded batch keeps as many blocks as the one keeping most)
// is not needed with packed rows: each sequence keeps exactly the blocks its predictor keeps.
#include <array>
#include <filesystem>
#include <utility>
#include <vector>

#include "model/model_config.h"
#include "policies/layer_policy.h"

namespace sieve {

class BlockSkimModules {
 public:
  // Reads dir/blockskim.json and dir/blockskim.safetensors, checking shapes against `config`.
  static BlockSkimModules load(const std::filesystem::path& dir, const ModelConfig& config);

  int64_t block_size() const { return size_; }
  int layers() const { return static_cast<int>(layers_.size()); }
  // (skim, keep) logits of one block from its tile, [heads][size][size] (zero-padded).
  std::array<float, 2> logits(int layer, const float* tile) const;
  // The same for `count` tiles at once, [count][heads][size][size]: one GEMM per convolution.
  std::vector<std::array<float, 2>> logits(int layer, const float* tiles, int64_t count) const;
  // Multiply-adds x 2 of one logits() call.
  double flops_per_block() const;

 private:
  struct Conv {  // conv 3x3 + BatchNorm folded to scale/shift at load
    std::vector<float> weight;        // [C][C][3][3]
    std::vector<float> scale, shift;  // per output channel: BN(conv + bias) = conv * scale + shift
  };
  struct Layer {
    Conv conv1, conv2;
    std::vector<float> fc_weight;  // [2][C * S/4 * S/4]
    std::array<float, 2> fc_bias{};
  };
  std::vector<Layer> layers_;
  int64_t size_ = 0, channels_ = 0;
};

// The policy: in the layers listed, a block is skimmed when its predictor's softmax probability
// of "keep" is below `threshold` (0.5 = the released code's argmax). Skimmed tokens leave from the
// next layer on (the released code truncates after the layer), or before this layer's FFN with
// at=ffn.
class BlockSkimPolicy : public LayerPolicy {
 public:
  BlockSkimPolicy(const BlockSkimModules& modules, double threshold, std::vector<uint8_t> layers, PrunePoint point);
  std::string describe() const override;
  PolicyNeeds needs() const override;
  void begin(std::span<const PackedSequence> sequences, int num_layers, int num_heads) override;
  void after_attention(const AttentionLayerView& view, PruneDecision& decision) override;
  double own_flops() const override { return flops_; }

 private:
  const BlockSkimModules& modules_;
  double threshold_;
  std::vector<uint8_t> layers_;
  PrunePoint point_;
  double flops_ = 0.0;
  std::vector<std::pair<size_t, int64_t>> blocks_;  // (sequence, block) of the layer being scored
  std::vector<float> tiles_;                        // a chunk of blocks' tiles
};

}  // namespace sieve
