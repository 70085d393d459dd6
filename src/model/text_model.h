#pragma once
// A model as a user has it on disk: tokenizer + encoder + (for sentence-transformers directories)
// the pooling and normalization they declare. The CLI, the evaluator and the bindings all go
// through this class, so "what an embedding is" is decided in one place.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/bert_encoder.h"
#include "model/exit_heads.h"
#include "policies/block_skim.h"
#include "tokenizers/wordpiece.h"

namespace sieve {

enum class Pooling { Mean, Cls };

struct TextPair {
  std::string first;
  std::string second;  // empty = single sentence
};

struct EncodedBatch {
  std::vector<EncoderInput> inputs;
  std::vector<bool> truncated;  // per input: the text was cut to max_length tokens
};

// Scales v to unit length in place (a zero vector stays zero): the L2 normalization of sentence
// embeddings, wherever they are made.
void l2_normalize(std::vector<float>& v);

class TextModel {
 public:
  // exits_dir: where the early-exit classifiers are (empty = <model>/exits if it exists).
  static TextModel load(const std::filesystem::path& model_dir, const std::filesystem::path& exits_dir = {});

  const BertEncoder& encoder() const { return encoder_; }
  void set_precision(Precision precision) { encoder_.set_precision(precision); }
  void set_tile_sparse(double min_sparsity) { encoder_.set_tile_sparse(min_sparsity); }
  const WordPieceTokenizer& tokenizer() const { return tokenizer_; }
  // sentence_bert_config.json's max_seq_length, else the model's position limit.
  size_t max_length() const { return max_length_; }
  Pooling pooling() const { return pooling_; }
  // Early-exit classifiers from <model>/exits/ (tools/train_exits.py), or null when there are none.
  const ExitHeads* exits() const { return exits_ ? &*exits_ : nullptr; }
  // Block-Skim's relevance predictors from <model>/blockskim/ (tools/train_qa.py), or null.
  const BlockSkimModules* block_skim() const { return block_skim_ ? &*block_skim_ : nullptr; }
  bool normalize() const { return normalize_; }

  // Tokenizes; texts longer than max_length are truncated and flagged. Throws Error on invalid UTF-8.
  EncodedBatch encode(const std::vector<TextPair>& texts, size_t max_length = 0) const;
  // The sentence embedding the model's directory declares (pooling, then L2 normalization if any).
  std::vector<float> embedding(const SequenceOutput& out) const;
  // The two halves of embedding(): the declared pooling alone, and the normalization (if declared).
  std::vector<float> pooled(const SequenceOutput& out) const;
  void normalize_if_declared(std::vector<float>& v) const;

 private:
  TextModel(BertEncoder encoder, WordPieceTokenizer tokenizer) : encoder_(std::move(encoder)), tokenizer_(std::move(tokenizer)) {}
  BertEncoder encoder_;
  WordPieceTokenizer tokenizer_;
  size_t max_length_ = 512;
  Pooling pooling_ = Pooling::Cls;
  bool normalize_ = false;
  std::optional<ExitHeads> exits_;
  std::optional<BlockSkimModules> block_skim_;
};

// Directory used when --model is not given: $SIEVE_MODEL, else the one setup.sh installs.
std::filesystem::path default_model_dir();

}  // namespace sieve
