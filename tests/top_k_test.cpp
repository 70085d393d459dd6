// Quick-select top-k against a full sort, including ties, k = 0 and k = n.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "policies/keep_schedule.h"
#include "policies/top_k.h"

namespace sieve {
namespace {

std::vector<int32_t> sorted_reference(const std::vector<float>& scores, std::vector<int32_t> candidates, size_t k) {
  std::stable_sort(candidates.begin(), candidates.end(), [&](int32_t a, int32_t b) {
    return scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)] ||
           (scores[static_cast<size_t>(a)] == scores[static_cast<size_t>(b)] && a < b);
  });
  candidates.resize(std::min(k, candidates.size()));
  std::sort(candidates.begin(), candidates.end());
  return candidates;
}

TEST(TopK, HandCases) {
  const std::vector<float> s{0.1f, 0.9f, 0.5f, 0.9f, 0.2f};
  EXPECT_EQ(top_k_indices(s, {0, 1, 2, 3, 4}, 2), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(top_k_indices(s, {0, 1, 2, 3, 4}, 1), (std::vector<int32_t>{1}));  // tie: earlier wins
  EXPECT_EQ(top_k_indices(s, {0, 1, 2, 3, 4}, 0), (std::vector<int32_t>{}));
  EXPECT_EQ(top_k_indices(s, {4, 0, 2}, 5), (std::vector<int32_t>{0, 2, 4}));  // k >= n: all, ascending
  EXPECT_EQ(top_k_indices(s, {}, 3), (std::vector<int32_t>{}));
  const std::vector<float> equal(6, 1.0f);
  EXPECT_EQ(top_k_indices(equal, {5, 4, 3, 2, 1, 0}, 3), (std::vector<int32_t>{0, 1, 2}));
}

TEST(TopK, RandomAgainstSortWithManyTies) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 2000; ++trial) {
    const size_t n = 1 + rng() % 70;
    std::vector<float> scores(n);
    const int levels = 1 + static_cast<int>(rng() % 6);  // few distinct values => many ties
    for (float& v : scores) v = static_cast<float>(rng() % static_cast<unsigned>(levels));
    std::vector<int32_t> candidates(n);
    std::iota(candidates.begin(), candidates.end(), 0);
    std::shuffle(candidates.begin(), candidates.end(), rng);
    candidates.resize(1 + rng() % n);
    const size_t k = rng() % (candidates.size() + 2);
    ASSERT_EQ(top_k_indices(scores, candidates, k), sorted_reference(scores, candidates, k)) << "trial " << trial;
  }
}

TEST(KeepSchedule, ProgressiveReachesFinalRatioAndRoundsUp) {
  const auto s = KeepSchedule::progressive(0.25, 1, 5);
  EXPECT_DOUBLE_EQ(s.ratio(0), 1.0);
  EXPECT_DOUBLE_EQ(s.ratio(4), 0.25);
  EXPECT_GT(s.ratio(2), s.ratio(3));
  EXPECT_EQ(s.keep_count(4, 10), 3);  // ceil(2.5)
  EXPECT_EQ(s.keep_count(4, 1), 1);   // a short input keeps its one token
  EXPECT_EQ(s.keep_count(4, 0), 0);
  EXPECT_EQ(KeepSchedule::progressive(0.3, 0, 1).keep_count(0, 10), 3);  // no rounding noise up to 4
  EXPECT_EQ(KeepSchedule::progressive(0.0, 0, 2).keep_count(1, 10), 0);
  EXPECT_TRUE(KeepSchedule::progressive(1.0, 0, 4).keeps_everything());
}

}  // namespace
}  // namespace sieve
