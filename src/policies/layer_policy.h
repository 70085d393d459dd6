#pragma once
// The one extension point of the forward pass. A pruning policy (SpAtten cascade, LTP thresholds,
// early exit, ...) is a small class that reads what a layer exposes and marks what to drop; the
// encoder does the dropping (compacting rows, skipping head slices), so no policy owns a copy of the
// forward pass and policies compose by chaining (PolicyChain).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/packed_batch.h"
#include "tensor/tensor.h"

namespace sieve {

struct CtaConfig;  // attention/cta.h

// What the forward pass should compute for the policies (each costs a little).
struct PolicyNeeds {
  bool attention_received = false;  // per sequence, head and token: sum over queries of P[q, token]
  bool head_magnitude = false;      // per sequence and head: sum of |head output|
  int64_t diagonal_block_size = 0;  // > 0: the diagonal blocks of the attention maps (Block-Skim)
  // [layer]: 1 where the diagonal blocks are read; empty = every layer. Writing them costs a copy of
  // each block's probabilities and its bookkeeping, so a policy skimming a few layers names them.
  std::vector<uint8_t> diagonal_block_layers{};
  bool diagonal_blocks_in(int layer) const {
    return diagonal_block_size > 0 &&
           (diagonal_block_layers.empty() ||
            (layer < static_cast<int>(diagonal_block_layers.size()) && diagonal_block_layers[static_cast<size_t>(layer)]));
  }
};

// Block-Skim's view of one sequence in one layer. Its non-special tokens are cut into blocks of
// `size` by original position, counted from the first non-special one (for a QA window: the
// context, block k = context tokens k*size .. (k+1)*size - 1); a block that lost tokens keeps its
// number, and a special token inside a block (a pair's middle [SEP]) splits it in two entries.
// For each head, the attention probabilities among the rows of each block present.
struct DiagonalBlocks {
  std::vector<int32_t> number;     // [blocks]: the block number k of each entry, ascending
  std::vector<int32_t> first_row;  // [blocks]: entry b is rows [first_row[b], end_row[b])
  std::vector<int32_t> end_row;    // [blocks]
  std::vector<int32_t> row_block;  // [rows]: the entry of each row, -1 for special rows
  // [heads][blocks][size][size]: P[i, j] for rows i, j of the block at [i - first][j - first],
  // zero beyond the block's rows and for heads no longer computed.
  std::vector<float> probs;
  int64_t blocks() const { return static_cast<int64_t>(number.size()); }
};

// What a layer exposes after its attention block (Add & LayerNorm done, FFN not yet run).
struct AttentionLayerView {
  int layer = 0;
  int num_layers = 0;
  int num_heads = 0;
  std::span<const PackedSequence> sequences;
  // received[s][h * length(s) + j]: attention token j of sequence s received from all queries of
  // head h in this layer (0 for heads no longer computed). Empty unless a policy asked for it.
  std::span<const std::vector<float>> received;
  // head_magnitude[s][h]: sum of |output| of head h of sequence s in this layer (0 if not computed).
  std::span<const std::vector<float>> head_magnitude;
  const Tensor* hidden = nullptr;  // [rows, hidden], the attention block's output
  // diagonal_blocks[s]: Block-Skim's blocks of sequence s (blocks of diagonal_block_size). Empty
  // unless a policy asked for them.
  std::span<const DiagonalBlocks> diagonal_blocks;
  int64_t diagonal_block_size = 0;
};

// What the policies decide; the forward pass starts it at "keep everything" and policies clear bits.
struct PruneDecision {
  std::vector<std::vector<uint8_t>> keep_token;  // [sequence][row]
  std::vector<std::vector<uint8_t>> keep_head;   // [sequence][head], applies to all later layers
  // Where dropped tokens leave: before this layer's FFN (saves the FFN on them), or after it, i.e.
  // from the next layer on, as SpAtten and LTP describe it. Any policy asking for "before" wins.
  bool drop_before_ffn = false;
};

// The two places a token decision can take effect (see PruneDecision::drop_before_ffn).
enum class PrunePoint { NextLayer, BeforeFfn };

// What a layer exposes after its FFN (the layer's final output).
struct LayerOutputView {
  int layer = 0;
  int num_layers = 0;
  std::span<const PackedSequence> sequences;
  const Tensor* hidden = nullptr;  // [rows, hidden]
};

struct ExitDecision {
  std::vector<uint8_t> exit_now;            // [sequence]: this sequence's output is final after this layer
  std::vector<std::vector<float>> logits;   // [sequence]: the exit classifier's logits (may be empty)
};

class LayerPolicy {
 public:
  virtual ~LayerPolicy() = default;
  virtual std::string describe() const = 0;
  virtual PolicyNeeds needs() const { return {}; }
  // Called once per forward call, before layer 0, with the sequences as they enter.
  virtual void begin(std::span<const PackedSequence> /*sequences*/, int /*num_layers*/, int /*num_heads*/) {}
  virtual void after_attention(const AttentionLayerView& /*view*/, PruneDecision& /*decision*/) {}
  virtual void after_layer(const LayerOutputView& /*view*/, ExitDecision& /*decision*/) {}
  // Extra FLOPs the policy itself spent in the last forward call (exit classifiers, say).
  virtual double own_flops() const { return 0.0; }
  // The attention backend of `layer`: null = dense fused attention; otherwise Compressed Token
  // Attention with these settings (attention/cta.h, the "cta:" spec).
  virtual const CtaConfig* attention_backend(int /*layer*/) const { return nullptr; }
};

// Runs several policies in order on the same views; their decisions combine (a token survives only
// if every policy keeps it).
class PolicyChain : public LayerPolicy {
 public:
  void add(std::unique_ptr<LayerPolicy> policy) { policies_.push_back(std::move(policy)); }
  bool empty() const { return policies_.empty(); }
  std::string describe() const override;
  PolicyNeeds needs() const override;
  void begin(std::span<const PackedSequence> sequences, int num_layers, int num_heads) override;
  void after_attention(const AttentionLayerView& view, PruneDecision& decision) override;
  void after_layer(const LayerOutputView& view, ExitDecision& decision) override;
  double own_flops() const override;
  const CtaConfig* attention_backend(int layer) const override;  // the first policy's that has one

 private:
  std::vector<std::unique_ptr<LayerPolicy>> policies_;
};

// The blocks of `seq` as DiagonalBlocks describes them, probabilities zeroed for `heads` heads;
// first_plain: the original position of the input's first non-special token.
DiagonalBlocks make_diagonal_blocks(const PackedSequence& seq, int32_t first_plain, int64_t size, int heads);

// One layer's pruning step, the same for every backend: starts the decision at "keep everything",
// asks `policy` (which sees `view`), then applies the encoder's rules (special tokens stay, a
// sequence keeps at least one row) and removes pruned heads from seqs[s].heads. Sets *any_dropped
// when some token goes. `view.sequences` must be `seqs`.
PruneDecision decide_pruning(LayerPolicy& policy, const AttentionLayerView& view, std::vector<PackedSequence>& seqs,
                             bool* any_dropped);

}  // namespace sieve
