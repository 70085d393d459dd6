// Host-side planning of the CUDA backend (src/cuda/host): needs no GPU and runs everywhere, so the
// launch plans, the compaction row lists and the top-k ordering the kernels follow are checked in CI.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "cuda/host/attention_plan.h"
#include "cuda/host/top_k_key.h"
#include "policies/top_k.h"
#include "util/error.h"

namespace sieve::cuda {
namespace {

PackedSequence make_seq(int input, int64_t n, std::vector<int32_t> heads) {
  PackedSequence s;
  s.input_index = input;
  for (int64_t i = 0; i < n; ++i) s.positions.push_back(static_cast<int32_t>(i));
  s.is_special.assign(static_cast<size_t>(n), 0);
  s.is_special.front() = s.is_special.back() = 1;
  s.heads = std::move(heads);
  return s;
}

TEST(CudaAttentionPlan, CoversEveryLiveHeadAndQueryTileOnce) {
  std::vector<PackedSequence> seqs{make_seq(0, 1, {0, 1, 2}), make_seq(1, 64, {1}), make_seq(2, 65, {0, 2}),
                                   make_seq(3, 130, {})};
  assign_offsets(seqs);
  const AttentionPlan plan = plan_attention(seqs, 3);
  EXPECT_EQ(plan.cu_seqlens, (std::vector<int32_t>{0, 1, 65, 130, 260}));
  EXPECT_EQ(plan.rows, 260);
  // 3 heads x 1 tile + 1 x 1 + 2 x 2 + 0 (all heads pruned: no work at all)
  ASSERT_EQ(plan.items.size(), 8u);
  std::vector<std::tuple<int, int, int>> seen;
  for (const auto& it : plan.items) {
    seen.emplace_back(it.seq, it.head, it.query_begin);
    EXPECT_EQ(it.query_begin % kQueryTile, 0);
    EXPECT_LT(it.query_begin, plan.cu_seqlens[static_cast<size_t>(it.seq) + 1] - plan.cu_seqlens[static_cast<size_t>(it.seq)]);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), std::tuple{2, 2, 64}), seen.end());
  EXPECT_EQ(plan.received_size(), 260 * 3);
  EXPECT_EQ(plan.head_magnitude_size(), 4 * 3);
}

TEST(CudaAttentionPlan, RejectsHolesAndBadHeads) {
  std::vector<PackedSequence> seqs{make_seq(0, 4, {0}), make_seq(1, 4, {0})};
  assign_offsets(seqs);
  seqs[1].offset = 5;
  EXPECT_THROW(plan_attention(seqs, 1), Error);
  assign_offsets(seqs);
  seqs[1].heads = {3};
  EXPECT_THROW(plan_attention(seqs, 2), Error);
}

TEST(CudaAttentionPlan, SplitsStatisticsIntoTheViewLayout) {
  std::vector<PackedSequence> seqs{make_seq(0, 2, {0, 1}), make_seq(1, 3, {0, 1})};
  assign_offsets(seqs);
  const AttentionPlan plan = plan_attention(seqs, 2);
  // Flat device layout: received[heads * cu_seqlens[s] + h * n + j].
  std::vector<float> flat(static_cast<size_t>(plan.received_size()));
  for (size_t i = 0; i < flat.size(); ++i) flat[i] = static_cast<float>(i);
  std::vector<std::vector<float>> received;
  split_received(plan, flat, received);
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0], (std::vector<float>{0, 1, 2, 3}));           // h0: j0 j1, h1: j0 j1
  EXPECT_EQ(received[1], (std::vector<float>{4, 5, 6, 7, 8, 9}));     // h0: j0..2, h1: j0..2
  std::vector<float> mags{1, 2, 3, 4};
  std::vector<std::vector<float>> magnitude;
  split_head_magnitude(plan, mags, magnitude);
  EXPECT_EQ(magnitude, (std::vector<std::vector<float>>{{1, 2}, {3, 4}}));
}

TEST(CudaAttentionPlan, HeadRunsAndGroupsMatchTheCpuEncoder) {
  const std::vector<int32_t> heads{0, 1, 2, 5, 7, 8};
  EXPECT_EQ(head_runs(heads), (std::vector<std::pair<int32_t, int32_t>>{{0, 3}, {5, 6}, {7, 9}}));
  EXPECT_TRUE(head_runs(std::vector<int32_t>{}).empty());
  std::vector<PackedSequence> seqs{make_seq(0, 3, {0, 1}), make_seq(1, 4, {0, 1}), make_seq(2, 2, {1}),
                                   make_seq(3, 5, {0, 1})};
  assign_offsets(seqs);
  const auto groups = head_groups(seqs);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].first_seq, 0u);
  EXPECT_EQ(groups[0].end_seq, 2u);
  EXPECT_EQ(groups[0].row0, 0);
  EXPECT_EQ(groups[0].rows, 7);
  EXPECT_EQ(groups[1].row0, 7);
  EXPECT_EQ(groups[1].rows, 2);
  EXPECT_EQ(groups[2].row0, 9);
  EXPECT_EQ(groups[2].rows, 5);
}

TEST(CudaAttentionPlan, CompactionListsSourceRowsInOrder) {
  std::vector<PackedSequence> seqs{make_seq(0, 4, {0}), make_seq(1, 3, {0}), make_seq(2, 2, {0})};
  assign_offsets(seqs);
  const std::vector<std::vector<uint8_t>> keep{{1, 0, 1, 1}, {0, 0, 0}, {1, 1}};
  const std::vector<int32_t> rows = compact_sequences(seqs, keep);
  EXPECT_EQ(rows, (std::vector<int32_t>{0, 2, 3, 7, 8}));
  EXPECT_EQ(seqs[0].positions, (std::vector<int32_t>{0, 2, 3}));
  EXPECT_EQ(seqs[0].is_special, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(seqs[1].length(), 0);
  EXPECT_EQ(seqs[2].offset, 3);
  EXPECT_THROW(compact_sequences(seqs, {{1}}), Error);
}

TEST(CudaTopK, KeyOrderIsScoreThenEarlierRowWithSpecialsFirst) {
  EXPECT_GT(top_k_key(1.0f, 5, false), top_k_key(0.5f, 0, false));
  EXPECT_GT(top_k_key(1.0f, 2, false), top_k_key(1.0f, 3, false));  // tie: earlier row wins
  EXPECT_GT(top_k_key(-1e30f, 9, true), top_k_key(INFINITY, 0, false));
  EXPECT_GT(top_k_key(-2.0f, 0, false), top_k_key(-3.0f, 0, false));
  EXPECT_GT(top_k_key(-INFINITY, 4095, false), uint64_t{0});  // 0 pads the sort
  EXPECT_EQ(top_k_key(-0.0f, 1, false), top_k_key(0.0f, 1, false));
  for (int32_t row : {0, 1, 511, 4095}) EXPECT_EQ(top_k_key_row(top_k_key(0.25f, row, row % 2 == 0)), row);
}

// What the GPU kernel does (sort keys descending, take specials + keep, ascending rows) equals the
// CPU policy's rule (quick-select over non-special rows), on ties, negatives, k = 0 and k >= n.
TEST(CudaTopK, SortedKeysSelectWhatTheCpuTopKSelects) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 300);
    std::vector<float> scores(static_cast<size_t>(n));
    std::vector<uint8_t> special(static_cast<size_t>(n), 0);
    for (auto& s : scores) s = static_cast<float>(static_cast<int>(rng() % 13) - 6) * 0.25f;  // many ties
    special.front() = 1;
    if (n > 1 && trial % 2) special.back() = 1;
    int specials = 0;
    for (uint8_t v : special) specials += v;
    const int64_t keep = static_cast<int64_t>(rng() % static_cast<unsigned>(n + 2)) - (trial % 7 == 0 ? 1 : 0);
    std::vector<uint64_t> keys;
    for (int i = 0; i < n; ++i) keys.push_back(top_k_key(scores[static_cast<size_t>(i)], i, special[static_cast<size_t>(i)]));
    std::sort(keys.rbegin(), keys.rend());
    const int64_t take = std::min<int64_t>(n, specials + std::max<int64_t>(keep, 0));
    std::vector<int32_t> gpu_rule;
    for (int64_t i = 0; i < take; ++i) gpu_rule.push_back(top_k_key_row(keys[static_cast<size_t>(i)]));
    std::sort(gpu_rule.begin(), gpu_rule.end());
    EXPECT_EQ(gpu_rule, protected_top_k(scores, special, keep)) << "trial " << trial;
  }
}

TEST(CudaTopK, ProtectedTopKKeepsSpecialsAlways) {
  const std::vector<float> scores{0.0f, 9.0f, 1.0f, 8.0f, -5.0f};
  const std::vector<uint8_t> special{1, 0, 0, 0, 1};
  EXPECT_EQ(protected_top_k(scores, special, 0), (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(protected_top_k(scores, special, 2), (std::vector<int32_t>{0, 1, 3, 4}));
  EXPECT_EQ(protected_top_k(scores, special, 10), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_THROW(protected_top_k(scores, std::vector<uint8_t>{1}, 1), Error);
}

TEST(CudaAttentionPlan, SupportedHeadDims) {
  EXPECT_TRUE(attention_head_dim_supported(32));
  EXPECT_TRUE(attention_head_dim_supported(64));
  EXPECT_FALSE(attention_head_dim_supported(48));
}

}  // namespace
}  // namespace sieve::cuda
