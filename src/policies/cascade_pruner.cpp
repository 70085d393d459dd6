#include "policies/cascade_pruner.h"

#include <algorithm>

#include "policies/top_k.h"

namespace sieve {

std::string CascadePruner::describe() const {
  return "spatten(tokens=" + options_.tokens.describe() + ", heads=" + options_.heads.describe() +
         (options_.point == PrunePoint::NextLayer ? ", at=next" : ", at=ffn") + ")";
}

PolicyNeeds CascadePruner::needs() const {
  return {!options_.tokens.keeps_everything(), !options_.heads.keeps_everything()};
}

void CascadePruner::begin(std::span<const PackedSequence> sequences, int /*num_layers*/, int num_heads) {
  int inputs = 0;
  for (const auto& s : sequences) inputs = std::max(inputs, s.input_index + 1);
  token_scores_.assign(static_cast<size_t>(inputs), {});
  head_scores_.assign(static_cast<size_t>(inputs), std::vector<float>(static_cast<size_t>(num_heads), 0.0f));
  prunable_tokens_.assign(static_cast<size_t>(inputs), 0);
  for (const auto& s : sequences) {
    token_scores_[static_cast<size_t>(s.input_index)].assign(static_cast<size_t>(s.length()), 0.0f);
    prunable_tokens_[static_cast<size_t>(s.input_index)] =
        s.length() - std::count(s.is_special.begin(), s.is_special.end(), uint8_t{1});
  }
}

void CascadePruner::after_attention(const AttentionLayerView& view, PruneDecision& decision) {
  const bool prune_tokens = !options_.tokens.keeps_everything();
  const bool prune_heads = !options_.heads.keeps_everything();
  if (options_.point == PrunePoint::BeforeFfn) decision.drop_before_ffn = true;
  // Sequences are independent (own scores, own decision rows): a large batch's decisions run in
  // parallel, which keeps the GPU encoder's per-layer host step short (it waits meanwhile).
  const auto count = static_cast<int64_t>(view.sequences.size());
#pragma omp parallel for schedule(dynamic, 4) if (count >= 8)
  for (int64_t si = 0; si < count; ++si) {
    const auto s = static_cast<size_t>(si);
    const PackedSequence& seq = view.sequences[s];
    const auto input = static_cast<size_t>(seq.input_index);
    const int64_t n = seq.length();

    if (prune_tokens) {
      std::vector<float>& score = token_scores_[input];
      const std::vector<float>& received = view.received[s];
      std::vector<int32_t> candidates;
      for (int64_t j = 0; j < n; ++j) {
        float add = 0.0f;
        for (int h : seq.heads) add += received[static_cast<size_t>(h * n + j)];
        score[static_cast<size_t>(seq.positions[static_cast<size_t>(j)])] += add;
        if (!seq.is_special[static_cast<size_t>(j)]) candidates.push_back(static_cast<int32_t>(j));
      }
      const int64_t keep = options_.tokens.keep_count(view.layer, prunable_tokens_[input]);
      if (keep < static_cast<int64_t>(candidates.size())) {
        // Rank current rows by their accumulated score (looked up by original position).
        std::vector<float> row_score(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) row_score[static_cast<size_t>(j)] = score[static_cast<size_t>(seq.positions[static_cast<size_t>(j)])];
        std::vector<uint8_t> keep_row(static_cast<size_t>(n), 0);
        for (int32_t j : top_k_indices(row_score, candidates, static_cast<size_t>(keep))) keep_row[static_cast<size_t>(j)] = 1;
        for (int32_t j : candidates)
          if (!keep_row[static_cast<size_t>(j)]) decision.keep_token[s][static_cast<size_t>(j)] = 0;
      }
    }

    if (prune_heads) {
      std::vector<float>& score = head_scores_[input];
      for (int h : seq.heads) score[static_cast<size_t>(h)] += view.head_magnitude[s][static_cast<size_t>(h)];
      const int64_t keep = options_.heads.keep_count(view.layer, view.num_heads);
      if (keep < static_cast<int64_t>(seq.heads.size())) {
        std::vector<uint8_t> keep_head(static_cast<size_t>(view.num_heads), 0);
        for (int32_t h : top_k_indices(score, seq.heads, static_cast<size_t>(keep))) keep_head[static_cast<size_t>(h)] = 1;
        for (int h : seq.heads)
          if (!keep_head[static_cast<size_t>(h)]) decision.keep_head[s][static_cast<size_t>(h)] = 0;
      }
    }
  }
}

}  // namespace sieve
