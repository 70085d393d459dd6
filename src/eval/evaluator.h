#pragma once
// Accuracy / FLOPs / latency of pruning policies on a labelled data set, each measured against the
// dense model in the same run. Settings are interleaved batch by batch (dense, policy 1, policy 2,
// dense, ...), so machine noise hits all of them alike and the speedup ratio stays honest.
#include <optional>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "model/text_model.h"

namespace sieve {

struct EvalOptions {
  int batch_size = 1;
  size_t max_length = 0;  // 0 = the model's
  size_t limit = 0;       // 0 = all examples
  std::optional<Precision> anchor_precision = std::nullopt;  // the dense anchor's GEMMs; empty = the model's precision
  std::string progress_label = "evaluating";
  bool record_work = false;  // fill EvalResult::work (what `sieve sim` replays)
};

// One setting to measure: a policy spec and the precision of the layers' GEMMs it runs at.
struct EvalSetting {
  std::string spec;
  Precision precision = Precision::Fp32;
};

struct EvalResult {
  std::string spec;
  Precision precision = Precision::Fp32;
  std::string description;
  size_t examples = 0;
  double accuracy = 0.0;
  double f1 = 0.0;                  // F1 of label 1 (what GLUE reports for MRPC); 0 for > 2 labels
  double gflops_per_example = 0.0;
  double flops_reduction = 1.0;     // dense FLOPs / these FLOPs
  double latency_ms_per_example = 0.0;
  double total_seconds = 0.0;
  double speedup = 1.0;             // dense wall-clock / this wall-clock
  std::vector<double> tokens_kept;  // per layer: tokens entering the FFN / dense tokens
  std::vector<double> heads_kept;   // per layer: average heads computed per example
  std::vector<int64_t> exit_layers; // histogram: examples whose output came from layer i+1
  double agreement_with_dense = 1.0;
  double attention_seconds = 0.0;   // wall-clock inside the attention blocks (QKV .. Add & LayerNorm)
  double attention_speedup = 1.0;   // dense attention-block time / this one
  double gemm_seconds = 0.0;        // wall-clock inside the layers' weight GEMMs
  // Compressed Token Attention (cta: specs): the paper's RL (QKV-linear MACs / dense) and RA
  // (score + output MACs / dense), computed per example and averaged over examples; CTA's own
  // hashing/aggregation work as a fraction of the dense QKV + attention FLOPs; per layer, the mean
  // k0, k1, k2 and tokens n per (example, head) in CTA layers (0 where a layer is dense).
  bool cta = false;
  double cta_rl = 1.0, cta_ra = 1.0, cta_overhead = 0.0;
  std::vector<double> cta_k0, cta_k1, cta_k2, cta_n;
  std::vector<std::vector<LayerWork>> work;  // [example][layer] with EvalOptions::record_work
};

// results[0] is always the dense anchor; then one result per spec in order, all at the model's precision.
std::vector<EvalResult> evaluate_policies(const TextModel& model, const std::vector<LabelledExample>& data,
                                          const std::vector<std::string>& specs, const EvalOptions& options);
// The same with a precision per setting (speedups stay against the one dense anchor). A bf16
// setting needs the model's bf16 weight copies: set_precision(Bf16) once before.
std::vector<EvalResult> evaluate_settings(const TextModel& model, const std::vector<LabelledExample>& data,
                                          const std::vector<EvalSetting>& settings, const EvalOptions& options);

}  // namespace sieve
