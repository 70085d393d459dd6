#include "cuda/host/attention_plan.h"

#include <algorithm>

#include "policies/top_k.h"
#include "util/error.h"

namespace sieve::cuda {

bool attention_head_dim_supported(int64_t head_dim) { return head_dim == 32 || head_dim == 64 || head_dim == 128; }

AttentionPlan plan_attention(std::span<const PackedSequence> sequences, int num_heads, int query_tile) {
  if (query_tile <= 0) throw Error("plan_attention: query_tile must be positive");
  AttentionPlan plan;
  plan.num_heads = num_heads;
  plan.cu_seqlens.reserve(sequences.size() + 1);
  plan.cu_seqlens.push_back(0);
  int64_t rows = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const PackedSequence& seq = sequences[s];
    if (seq.offset != rows) throw Error("plan_attention: sequences are not packed contiguously");
    const int64_t n = seq.length();
    for (int32_t h : seq.heads) {
      if (h < 0 || h >= num_heads) throw Error("plan_attention: head index out of range");
      for (int64_t q = 0; q < n; q += query_tile)
        plan.items.push_back({static_cast<int32_t>(s), h, static_cast<int32_t>(q)});
    }
    rows += n;
    if (rows > INT32_MAX) throw Error("plan_attention: more than 2^31 rows");
    plan.cu_seqlens.push_back(static_cast<int32_t>(rows));
  }
  plan.rows = rows;
  return plan;
}

void split_received(const AttentionPlan& plan, std::span<const float> flat, std::vector<std::vector<float>>& out) {
  const size_t seqs = plan.cu_seqlens.size() - 1;
  out.resize(seqs);
  for (size_t s = 0; s < seqs; ++s) {
    const size_t begin = static_cast<size_t>(plan.num_heads) * static_cast<size_t>(plan.cu_seqlens[s]);
    const size_t end = static_cast<size_t>(plan.num_heads) * static_cast<size_t>(plan.cu_seqlens[s + 1]);
    out[s].assign(flat.begin() + static_cast<std::ptrdiff_t>(begin), flat.begin() + static_cast<std::ptrdiff_t>(end));
  }
}

void split_head_magnitude(const AttentionPlan& plan, std::span<const float> flat,
                          std::vector<std::vector<float>>& out) {
  const size_t seqs = plan.cu_seqlens.size() - 1, heads = static_cast<size_t>(plan.num_heads);
  out.resize(seqs);
  for (size_t s = 0; s < seqs; ++s)
    out[s].assign(flat.begin() + static_cast<std::ptrdiff_t>(s * heads),
                  flat.begin() + static_cast<std::ptrdiff_t>((s + 1) * heads));
}

std::vector<std::pair<int32_t, int32_t>> head_runs(std::span<const int32_t> heads) {
  std::vector<std::pair<int32_t, int32_t>> runs;
  for (int32_t h : heads) {
    if (!runs.empty() && runs.back().second == h) ++runs.back().second;
    else runs.emplace_back(h, h + 1);
  }
  return runs;
}

std::vector<HeadGroup> head_groups(std::span<const PackedSequence> sequences) {
  std::vector<HeadGroup> groups;
  size_t begin = 0;
  while (begin < sequences.size()) {
    size_t end = begin + 1;
    while (end < sequences.size() && sequences[end].heads == sequences[begin].heads) ++end;
    const int64_t row0 = sequences[begin].offset;
    groups.push_back({begin, end, row0, sequences[end - 1].offset + sequences[end - 1].length() - row0});
    begin = end;
  }
  return groups;
}

std::vector<int32_t> compact_sequences(std::vector<PackedSequence>& sequences,
                                       const std::vector<std::vector<uint8_t>>& keep) {
  if (keep.size() != sequences.size()) throw Error("compact_sequences: one keep mask per sequence expected");
  std::vector<int32_t> source_rows;
  for (size_t s = 0; s < sequences.size(); ++s) {
    PackedSequence& seq = sequences[s];
    if (static_cast<int64_t>(keep[s].size()) != seq.length()) throw Error("compact_sequences: keep mask length");
    size_t kept = 0;
    for (int64_t i = 0; i < seq.length(); ++i) {
      if (!keep[s][static_cast<size_t>(i)]) continue;
      source_rows.push_back(static_cast<int32_t>(seq.offset + i));
      seq.positions[kept] = seq.positions[static_cast<size_t>(i)];
      seq.is_special[kept] = seq.is_special[static_cast<size_t>(i)];
      ++kept;
    }
    seq.positions.resize(kept);
    seq.is_special.resize(kept);
  }
  assign_offsets(sequences);
  return source_rows;
}

std::vector<int32_t> protected_top_k(std::span<const float> scores, std::span<const uint8_t> is_special,
                                     int64_t keep) {
  if (scores.size() != is_special.size()) throw Error("protected_top_k: scores and is_special differ in length");
  std::vector<int32_t> specials, candidates;
  for (size_t j = 0; j < scores.size(); ++j)
    (is_special[j] ? specials : candidates).push_back(static_cast<int32_t>(j));
  std::vector<int32_t> kept = top_k_indices(scores, std::move(candidates), static_cast<size_t>(std::max<int64_t>(keep, 0)));
  kept.insert(kept.end(), specials.begin(), specials.end());
  std::sort(kept.begin(), kept.end());
  return kept;
}

}  // namespace sieve::cuda
