#pragma once
// Sentence embeddings with the savings: texts in, one vector per text out, through a pruning policy
// and a defined pooling of pruned tokens. `sieve embed`, `sieve eval` on similarity data, the server
// and the bindings all embed through this class, so "what an embedding under pruning is" is decided
// here once.
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/text_model.h"
#include "policies/layer_policy.h"

namespace sieve {

// How mean pooling treats a token a policy pruned (BertEncoder::forward, freeze_pruned_tokens):
//   Frozen     it keeps the hidden state it had when pruned and still enters the mean ("token
//              freezing"; the default: on the calibration data it scored higher in 10 of 12
//              settings on STS-B, +1.5 Spearman points on average, and in 8 of 11 on long-document
//              retrieval, README issue 14)
//   Survivors  the mean runs over the tokens that reached the last layer only (closer to the dense
//              vector by cosine, since an early layer's state points elsewhere than the last
//              layer's, but it ranks worse: frozen rows shift every text alike)
enum class PrunedPooling { Frozen, Survivors };
PrunedPooling parse_pruned_pooling(const std::string& name);  // "frozen" | "survivors"; throws Error
const char* pruned_pooling_name(PrunedPooling pooling);

// Texts longer than the model's limit:
//   Truncate  cut at max_length tokens (what every embedding engine does by default)
//   Chunk     split into windows of max_length tokens overlapping by `chunk_overlap` tokens, embed
//             each, and average the windows' pooled vectors weighted by their token counts (then
//             normalize as the model declares)
enum class LongInputMode { Truncate, Chunk };
LongInputMode parse_long_input_mode(const std::string& name);  // "truncate" | "chunk"; throws Error

// The forward options an embedding under `pooling` needs (what TextEmbedder runs with), for callers
// that batch EncoderInputs themselves (the server): token freezing must be on for Frozen.
inline ForwardOptions embedding_forward_options(LayerPolicy* policy, PrunedPooling pooling = PrunedPooling::Frozen) {
  ForwardOptions options{policy};
  options.freeze_pruned_tokens = pooling == PrunedPooling::Frozen;
  return options;
}

struct EmbedderOptions {
  std::string policy = "dense";  // a policy spec (policies/policy_spec.h)
  PrunedPooling pruned_pooling = PrunedPooling::Frozen;
  LongInputMode long_inputs = LongInputMode::Truncate;
  size_t max_length = 0;      // tokens per input (per window when chunking); 0 = the model's
  size_t chunk_overlap = 32;  // tokens two neighbouring windows share
  int batch_size = 32;        // sequences (windows) per forward call
  std::optional<Precision> precision = std::nullopt;  // the GEMMs'; empty = the model's
  bool record_work = false;   // EmbedStats::forward.work, per forward sequence (for `sieve sim`)
};

// What one embed() call computed: the forward passes' statistics (FLOPs, tokens per layer), the
// windows run and which inputs were cut.
struct EmbedStats {
  ForwardStats forward;
  size_t sequences = 0;                  // forward sequences: one per text, more when chunking
  int64_t tokens_in = 0;                 // tokens entering layer 0, summed over sequences
  int64_t layers_run = 0;                // layers run, summed over sequences (early stops lower it)
  std::vector<size_t> truncated_inputs;  // indices (into the call's texts) of inputs cut to max_length
  void add(const EmbedStats& other, size_t index_offset);
};

// Not thread-safe: a policy keeps per-call state. Use one TextEmbedder per thread.
class TextEmbedder {
 public:
  // Parses options.policy against the model (throws Error for a bad spec or option).
  TextEmbedder(const TextModel& model, EmbedderOptions options);

  const EmbedderOptions& options() const { return options_; }
  std::string describe() const { return policy_->describe(); }
  size_t dimension() const { return static_cast<size_t>(model_.encoder().config().hidden_size); }

  // One embedding per text, in order (normalized when the model declares it). Tokenizes every text
  // before running any, so invalid UTF-8 anywhere throws Error with nothing computed.
  // on_progress(n) is called after each forward call with the number of sequences it ran.
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts, EmbedStats* stats = nullptr,
                                        const std::function<void(size_t)>& on_progress = {});

 private:
  const TextModel& model_;
  EmbedderOptions options_;
  std::unique_ptr<PolicyChain> policy_;
};

}  // namespace sieve
