#pragma once
// Fidelity and cost of pruning policies for sentence embeddings, each against dense in the same run
// (settings interleaved batch by batch, as in evaluator.h):
//   similarity data (STS-B: pairs with a gold score): Spearman and Pearson of cos(e1, e2) vs gold
//   retrieval pairs (no score): sentence1 i must find sentence2 i among all sentence2: recall@1, MRR
//   always: the mean and lowest cosine between each text's embedding and its dense embedding
// with GFLOPs and wall-clock per text.
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "model/text_embedder.h"

namespace sieve {

struct EmbeddingEvalOptions {
  int batch_size = 32;    // texts per embed call
  size_t max_length = 0;  // 0 = the model's
  size_t limit = 0;       // 0 = all pairs
  std::string progress_label = "evaluating";
  bool record_work = false;  // fill EmbeddingEvalResult::work
};

// One setting: a policy spec, the pooling of pruned tokens and how long inputs are handled.
struct EmbeddingEvalSetting {
  std::string spec = "dense";
  PrunedPooling pooling = PrunedPooling::Frozen;
  LongInputMode long_inputs = LongInputMode::Truncate;
  Precision precision = Precision::Fp32;  // the layers' GEMMs (bf16 needs the model's bf16 copies)
  std::string label() const;  // "spec", plus " pool=survivors" / " long=chunk" / " bf16" when not the defaults
};

struct EmbeddingEvalResult {
  EmbeddingEvalSetting setting;
  std::string description;
  size_t pairs = 0, texts = 0;
  bool scored = false;                        // similarity data: spearman/pearson are set
  double spearman = 0.0, pearson = 0.0;       // of cos(e1, e2) against the gold scores
  std::vector<double> pair_cosines;           // cos(e1, e2) of each pair
  bool retrieval = false;                     // retrieval pairs: recall_at_1/mrr are set
  double recall_at_1 = 0.0, mrr = 0.0;
  double mean_cosine_to_dense = 1.0, min_cosine_to_dense = 1.0;
  double gflops_per_text = 0.0, flops_reduction = 1.0;
  double latency_ms_per_text = 0.0, total_seconds = 0.0, speedup = 1.0;
  double sequences_per_text = 1.0;            // > 1 when chunking
  double layers_per_sequence = 0.0;           // layers run, averaged (early stops lower it)
  std::vector<double> tokens_kept;            // per layer: tokens entering the FFN / dense tokens
  size_t truncated_texts = 0;
  std::vector<std::vector<LayerWork>> work;   // [forward sequence][layer] with EmbeddingEvalOptions::record_work
};

// results[0] is the dense anchor (truncation); then one per setting in order.
std::vector<EmbeddingEvalResult> evaluate_embeddings(const TextModel& model, const std::vector<ScoredPair>& data,
                                                     const std::vector<EmbeddingEvalSetting>& settings,
                                                     const EmbeddingEvalOptions& options);

// Spearman's rank correlation (ties get their average rank) and Pearson's correlation.
double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y);
double pearson_correlation(const std::vector<double>& x, const std::vector<double>& y);
double cosine(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace sieve
