#pragma once
// The BERT encoder on a CUDA GPU: the same inputs, outputs, statistics and policy hook as the CPU
// BertEncoder (model/bert_encoder.h), so a LayerPolicy runs unchanged on either backend. Weights and
// activations are FP16, GEMMs are cuBLAS with FP32 accumulation, attention is the two-pass fused kernel
// (cuda/fused_attention.cu), and pruned tokens and heads are removed on the device exactly as the CPU
// encoder removes them. Per layer, only what the policy asked for (PolicyNeeds) crosses to the host:
// the attention column sums and head magnitudes (a few KB); the policy's PruneDecision goes back as
// a row list for the gather kernel.
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "model/bert_encoder.h"

namespace sieve::cuda {

struct CudaRunOptions {
  // Copy the hidden states to the host for AttentionLayerView::hidden and LayerOutputView::hidden
  // (early exit reads the latter). Policies that only read the statistics (SpAtten, LTP) do not need
  // them; turning this off saves rows x hidden x 2 bytes of device-to-host traffic per layer.
  bool hidden_to_policies = true;
  // Return only each sequence's [CLS] row (SequenceOutput::hidden is [1, hidden], positions {0}):
  // all that pooler_output() and classify() read, and it keeps the final device-to-host copy small.
  bool cls_only = false;
  // When set, forward() adds where the host spent its time with a policy (the GPU idles meanwhile
  // unless work is queued): waiting for the layer's statistics, and deciding and compacting.
  struct HostTimes {
    double statistics_wait_s = 0.0;
    double decide_s = 0.0;
  }* host_times = nullptr;
};

class CudaBertEncoder {
 public:
  // Loads the checkpoint like BertEncoder::load and uploads it; throws sieve::Error when there is no
  // CUDA device or the model's shapes are not supported (head_dim 32/64/128, hidden a multiple of 8).
  static CudaBertEncoder load(const std::filesystem::path& model_dir);
  CudaBertEncoder(CudaBertEncoder&&) noexcept;
  CudaBertEncoder& operator=(CudaBertEncoder&&) noexcept;
  ~CudaBertEncoder();

  const ModelConfig& config() const;
  bool has_pooler() const;
  bool has_classifier() const;
  int num_labels() const;

  // As BertEncoder::forward; hidden states come back as FP32 on the host. Not thread-safe: one call
  // at a time per encoder (the device workspace is reused across calls).
  std::vector<SequenceOutput> forward(std::span<const EncoderInput> inputs, const ForwardOptions& options = {},
                                      ForwardStats* stats = nullptr, const CudaRunOptions& run = {}) const;

  // As BertEncoder's, computed on the host in FP32 from the returned [CLS] row.
  std::vector<float> pooler_output(const SequenceOutput& out) const;
  std::vector<float> classify(const SequenceOutput& out) const;

  // Name of the device in use, e.g. "NVIDIA H100 80GB HBM3".
  std::string device_name() const;

 private:
  struct Impl;
  explicit CudaBertEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sieve::cuda
