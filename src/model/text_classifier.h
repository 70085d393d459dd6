#pragma once
// Labels and probabilities from a checkpoint with a sequence-classification head, through a pruning
// policy. `sieve classify` and the Python bindings classify through this class.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/text_embedder.h"
#include "model/text_model.h"
#include "policies/layer_policy.h"

namespace sieve {

struct ClassifierOptions {
  std::string policy = "dense";  // a policy spec (policies/policy_spec.h)
  size_t max_length = 0;         // tokens per input; 0 = the model's
  int batch_size = 32;           // sequences per forward call
  std::optional<Precision> precision = std::nullopt;  // the GEMMs'; empty = the model's
};

struct Classification {
  size_t label = 0;                 // the most probable class
  std::vector<float> probabilities;  // softmax over the head's logits, one per class
};

// Softmax of a head's logits (max-subtracted, in float, as the CLI has always printed them).
std::vector<float> softmax_probabilities(std::vector<float> logits);
// config.json's id2label[c], or LABEL_c when the config names no labels.
std::string label_name(const ModelConfig& config, size_t c);

// Not thread-safe: a policy keeps per-call state. Use one TextClassifier per thread.
class TextClassifier {
 public:
  // Throws Error when the model has no classification head, or for a bad policy spec or option.
  TextClassifier(const TextModel& model, ClassifierOptions options);

  size_t num_labels() const { return static_cast<size_t>(model_.encoder().num_labels()); }
  std::vector<std::string> labels() const;

  // One result per text, in order. Tokenizes every text before running any, so invalid UTF-8
  // anywhere throws Error with nothing computed. stats: the same counts as TextEmbedder's.
  std::vector<Classification> classify(const std::vector<std::string>& texts, EmbedStats* stats = nullptr);

 private:
  const TextModel& model_;
  ClassifierOptions options_;
  std::unique_ptr<PolicyChain> policy_;
};

}  // namespace sieve
