#pragma once
// Accuracy / FLOPs / latency of pruning policies on a labelled data set, each measured against the
// dense model in the same run. Settings are interleaved batch by batch (dense, policy 1, policy 2,
// dense, ...), so machine noise hits all of them alike and the speedup ratio stays honest.
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "model/text_model.h"

namespace sieve {

struct EvalOptions {
  int batch_size = 1;
  size_t max_length = 0;  // 0 = the model's
  size_t limit = 0;       // 0 = all examples
};

struct EvalResult {
  std::string spec;
  std::string description;
  size_t examples = 0;
  double accuracy = 0.0;
  double gflops_per_example = 0.0;
  double flops_reduction = 1.0;     // dense FLOPs / these FLOPs
  double latency_ms_per_example = 0.0;
  double total_seconds = 0.0;
  double speedup = 1.0;             // dense wall-clock / this wall-clock
  std::vector<double> tokens_kept;  // per layer: tokens entering the FFN / dense tokens
  std::vector<double> heads_kept;   // per layer: average heads computed per example
  std::vector<int64_t> exit_layers; // histogram: examples whose output came from layer i+1
  double agreement_with_dense = 1.0;
};

// results[0] is always the dense anchor; then one result per spec in order.
std::vector<EvalResult> evaluate_policies(const TextModel& model, const std::vector<LabelledExample>& data,
                                          const std::vector<std::string>& specs, const EvalOptions& options);

}  // namespace sieve
