#pragma once
// Host-side planning for the CUDA backend: everything about a launch that can be decided (and
// tested) without a GPU. The CUDA encoder builds these from the same PackedSequence list the CPU
// encoder uses, uploads them, and the kernels only follow them.
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "cuda/host/attention_tiling.h"
#include "model/packed_batch.h"

namespace sieve::cuda {

struct AttentionPlan {
  // Row offsets of the packed batch: sequence s is rows [cu_seqlens[s], cu_seqlens[s + 1]).
  std::vector<int32_t> cu_seqlens;
  std::vector<AttentionWorkItem> items;  // only live heads; pruned heads cost nothing
  int64_t rows = 0;
  int num_heads = 0;
  // The flat statistics buffers the kernel accumulates into, sized for this batch:
  //   received[num_heads * cu_seqlens[s] + h * length(s) + j]  (= the CPU view's received[s][h*n + j])
  //   head_magnitude[s * num_heads + h]
  int64_t received_size() const { return rows * num_heads; }
  int64_t head_magnitude_size() const { return static_cast<int64_t>(cu_seqlens.size() - 1) * num_heads; }
};

AttentionPlan plan_attention(std::span<const PackedSequence> sequences, int num_heads, int query_tile = kQueryTile);

// Splits the flat device statistics back into the per-sequence vectors AttentionLayerView expects.
void split_received(const AttentionPlan& plan, std::span<const float> flat, std::vector<std::vector<float>>& out);
void split_head_magnitude(const AttentionPlan& plan, std::span<const float> flat,
                          std::vector<std::vector<float>>& out);

// Maximal runs [first, last) of consecutive heads: one GEMM per run (weights of consecutive heads are
// contiguous), as in the CPU encoder.
std::vector<std::pair<int32_t, int32_t>> head_runs(std::span<const int32_t> heads);

// Neighbouring sequences that compute the same heads share one GEMM over their rows.
struct HeadGroup {
  size_t first_seq, end_seq;
  int64_t row0, rows;
};
std::vector<HeadGroup> head_groups(std::span<const PackedSequence> sequences);

// Compaction of the packed batch: applies keep masks to the sequences (positions, is_special,
// offsets; a sequence may be left with length 0) and returns, for each surviving row in order, the
// row it comes from. The device then gathers rows with that list.
std::vector<int32_t> compact_sequences(std::vector<PackedSequence>& sequences,
                                       const std::vector<std::vector<uint8_t>>& keep);

// The selection the GPU top-k makes for one sequence, on the host: every special row, plus the
// `keep` highest-scoring non-special rows (ties: earlier row), ascending. This is CascadePruner's rule
// (policies/cascade_pruner.cpp) and the reference the GPU kernel is tested against.
std::vector<int32_t> protected_top_k(std::span<const float> scores, std::span<const uint8_t> is_special,
                                     int64_t keep);

}  // namespace sieve::cuda
