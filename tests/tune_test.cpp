// sieve tune's decisions on synthetic points (no model): the Pareto front, the choice within a
// budget, the survivors of a round, the round schedule, the generated candidate space.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "eval/tune.h"
#include "util/error.h"
#include "test_helpers.h"

namespace sieve {
namespace {

// Synthetic (loss in points, speedup) points. B and F are equal; C is beaten by B on both; E ties
// D on loss and is slower; G is more accurate than dense-like A but slower.
const std::vector<TunePoint> kPoints{
    {0.0, 0.0, 1.0},   // 0 A
    {0.5, 0.0, 1.5},   // 1 B
    {1.0, 0.0, 1.4},   // 2 C: beaten by B
    {2.0, 0.0, 2.5},   // 3 D
    {2.0, 0.0, 2.0},   // 4 E: same loss as D, slower
    {0.5, 0.0, 1.5},   // 5 F: equal to B
    {-0.2, 0.0, 0.9},  // 6 G
};

TEST(TuneSearch, ParetoFrontKeepsExactlyTheUnbeatenPointsBySpeedup) {
  EXPECT_EQ(pareto_front(kPoints), (std::vector<size_t>{6, 0, 1, 5, 3}));
  EXPECT_TRUE(pareto_front({}).empty());

  // Random clouds: every point off the front is beaten by one on it, and no front point is beaten.
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<TunePoint> points;
    for (int i = 0; i < 40; ++i)  // coarse values, so ties happen
      points.push_back({std::round(u(rng) * 10) / 2, 0.0, 1.0 + std::round(u(rng) * 10) / 5});
    const auto front = pareto_front(points);
    auto beats = [](const TunePoint& q, const TunePoint& p) {
      return q.loss <= p.loss && q.speedup >= p.speedup && (q.loss < p.loss || q.speedup > p.speedup);
    };
    std::vector<bool> on(points.size(), false);
    for (size_t i : front) on[i] = true;
    for (size_t i = 0; i < points.size(); ++i) {
      bool beaten = false;
      for (const auto& q : points) beaten = beaten || beats(q, points[i]);
      EXPECT_EQ(on[i], !beaten) << "point " << i;
    }
    for (size_t k = 1; k < front.size(); ++k) EXPECT_LE(points[front[k - 1]].speedup, points[front[k]].speedup);
  }
}

TEST(TuneSearch, ChoiceIsTheFastestWithinBudgetAndBudgetZeroIsLossless) {
  EXPECT_EQ(select_fastest(kPoints, 1.0), 1u);  // B (F is equal; the first wins)
  EXPECT_EQ(select_fastest(kPoints, 2.0), 3u);  // D
  EXPECT_EQ(select_fastest(kPoints, 0.0), std::nullopt) << "nothing faster than dense loses nothing: dense";

  std::vector<TunePoint> with_lossless = kPoints;
  with_lossless.push_back({0.0, 0.0, 1.2});
  with_lossless.push_back({-0.5, 0.0, 1.1});  // gains accuracy: lossless too, but slower
  EXPECT_EQ(select_fastest(with_lossless, 0.0), 7u);

  // Never slower than dense, however accurate; the confidence margin counts standard errors.
  EXPECT_EQ(select_fastest({{-1.0, 0.0, 0.95}, {0.0, 0.0, 1.0}}, 0.0), std::nullopt);
  const std::vector<TunePoint> noisy{{0.8, 0.2, 3.0}, {0.2, 0.1, 1.3}};
  EXPECT_EQ(select_fastest(noisy, 1.0), 0u);
  EXPECT_EQ(select_fastest(noisy, 1.0, 2.0), 1u);
  // One example in 100 is exactly one point, whatever the floating-point rounding of the difference.
  EXPECT_EQ(select_fastest({{100.0 * (0.74 - 0.73), 0.0, 1.5}}, 1.0), 0u);
}

TEST(TuneSearch, BadBudgetsAreRejected) {
  for (double bad : {-1.0, -1e-9, std::nan(""), std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(check_budget(bad), Error) << bad;
    EXPECT_THROW(select_fastest(kPoints, bad), Error) << bad;
  }
  EXPECT_NO_THROW(check_budget(0.0));
  EXPECT_NO_THROW(check_budget(1.5));
  try {
    check_budget(-2);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(">= 0"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_tune_metric("accuracy"), TuneMetric::Accuracy);
  EXPECT_THROW(parse_tune_metric("f1"), Error);
}

TEST(TuneSearch, SurvivorsAreWinnersOnThePointEstimateThenPlausibleOnesFrontByFrontThenSlowFitsThenTheFront) {
  const std::vector<TunePoint> points{
      {0.2, 0.5, 1.3},  // 0 front, fits
      {3.0, 0.5, 3.0},  // 1 front, cannot fit a 1-point budget even at -2 se
      {1.5, 0.5, 1.2},  // 2 off the front (0 beats it), fits only at -2 se
      {0.0, 0.5, 0.8},  // 3 front (least loss), fits, but slower than dense: can never be chosen
      {5.0, 0.5, 1.0},  // 4 off the front, cannot fit: always dropped
      {2.5, 0.5, 2.0},  // 5 front, cannot fit
      {0.5, 0.5, 1.1},  // 6 off the front (0 beats it), fits on the point estimate
      {1.2, 0.5, 1.8},  // 7 front, fits only at -2 se, faster than 2
  };
  EXPECT_EQ(promising(points, 1.0, 2.0, 10), (std::vector<size_t>{0, 6, 7, 2, 3, 5, 1}));
  EXPECT_EQ(promising(points, 1.0, 2.0, 2), (std::vector<size_t>{0, 6}));
  EXPECT_EQ(promising(points, 1.0, 0.0, 10), (std::vector<size_t>{0, 6, 3, 7, 5, 1}));  // no margin: 2 and 7 cannot fit

  // What a 12-layer model's tune runs met (2026-12-04): after 256 rows a lossless exit at 1.88x,
  // beaten only by pyramids a little faster, was crowded out by sure settings at ~1.0x and below
  // (when sureness decided) and by fast ones over budget but within 2 standard errors (when the
  // fronts decided). It must go on ahead of both.
  const std::vector<TunePoint> e5{
      {0.0, 1.10, 1.98},   // 0 pyramid
      {0.0, 0.96, 1.95},   // 1 pyramid
      {0.0, 0.78, 1.88},   // 2 exit:tau=0.5
      {-0.39, 0.87, 1.33}, // 3
      {0.0, 0.0, 1.01},    // 4 heads=0.75
      {0.0, 0.0, 0.99},    // 5 exit:tau=0.2
      {0.0, 0.0, 0.88},    // 6 exit:tau=0.1
      {0.0, 0.55, 1.05},   // 7
      {4.69, 2.33, 5.72},  // 8 exit:tau=0.9
      {2.73, 1.95, 4.46},  // 9 a pyramid at tau 0.8
  };
  EXPECT_EQ(promising(e5, 1.0, 2.0, 4), (std::vector<size_t>{0, 1, 2, 3}));
  EXPECT_EQ(promising(e5, 1.0, 2.0, 8), (std::vector<size_t>{0, 1, 2, 3, 7, 4, 8, 9}));
}

TEST(TuneSearch, RoundsGrowToTheWholeSet) {
  EXPECT_EQ(subset_sizes(2000, 64, 4), (std::vector<size_t>{64, 256, 1024, 2000}));
  EXPECT_EQ(subset_sizes(1100, 64, 4), (std::vector<size_t>{64, 256, 1100})) << "a round on most of the rows is skipped";
  EXPECT_EQ(subset_sizes(50, 64, 4), (std::vector<size_t>{50}));
  EXPECT_EQ(subset_sizes(64, 64, 4), (std::vector<size_t>{64}));
  EXPECT_THROW(subset_sizes(100, 64, 1), Error);
  EXPECT_THROW(subset_sizes(0, 64, 4), Error);
}

TEST(TuneSearch, GeneratedCandidatesParseAndCoverEachFamily) {
  const auto plain = candidate_specs(6, false, {0.004, 0.01});
  const auto with_exits = candidate_specs(6, true, {0.004, 0.01});
  for (const auto& spec : plain) EXPECT_EQ(testing::policy_spec_error(spec), "no error") << spec;
  auto has = [](const std::vector<std::string>& specs, const std::string& s) {
    return std::find(specs.begin(), specs.end(), s) != specs.end();
  };
  for (const char* s : {"spatten:tokens=0.3", "spatten:tokens=0.3,start=3", "spatten:heads=0.75", "spatten:tokens=0.3,heads=0.75",
                        "ltp:final=0.004", "ltp:final=0.01"})
    EXPECT_TRUE(has(plain, s)) << s;
  for (const auto& spec : plain) EXPECT_EQ(spec.find("exit"), std::string::npos) << "no exits without exit classifiers";
  for (const char* s : {"exit:tau=0.1", "exit:tau=0.9", "spatten:tokens=0.2,start=3+exit:tau=0.3",
                        "ltp:final=0.004+exit:tau=0.3"})
    EXPECT_TRUE(has(with_exits, s)) << s;
  for (const auto& spec : candidate_specs(2, false, {})) EXPECT_EQ(spec.find("start="), std::string::npos) << spec;
}

TEST(TuneSearch, LossAndItsPairedStandardErrorFromEvalResults) {
  EvalResult dense, r;
  dense.accuracy = 0.75, dense.examples = r.examples = 100;
  r.accuracy = 0.74, r.agreement_with_dense = 0.97, r.speedup = 1.6;
  const TunePoint p = tune_point(TuneMetric::Accuracy, r, dense);
  EXPECT_NEAR(p.loss, 1.0, 1e-9);
  EXPECT_NEAR(p.loss_se, 100.0 * std::sqrt((0.03 - 0.0001) / 100.0), 1e-9);
  EXPECT_EQ(p.speedup, 1.6);
  r.accuracy = 0.75, r.agreement_with_dense = 1.0;  // same predictions: no loss, no noise
  EXPECT_EQ(tune_point(TuneMetric::Accuracy, r, dense).loss_se, 0.0);
}

TEST(TuneSearch, SpearmanLossAndBootstrapStandardError) {
  EXPECT_EQ(parse_tune_metric("spearman"), TuneMetric::Spearman);
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::vector<double> gold;
  EmbeddingEvalResult dense, same, worse;
  for (int i = 0; i < 200; ++i) {
    gold.push_back(i % 50 / 10.0);  // ties, like STS-B's scores
    dense.pair_cosines.push_back(gold.back() + 0.5 * noise(rng));
    worse.pair_cosines.push_back(gold.back() + 2.0 * noise(rng));
  }
  same.pair_cosines = dense.pair_cosines;
  dense.spearman = same.spearman = spearman_correlation(dense.pair_cosines, gold);
  worse.spearman = spearman_correlation(worse.pair_cosines, gold);
  worse.speedup = 2.0;
  const TunePoint p = spearman_point(worse, dense, gold);
  EXPECT_NEAR(p.loss, 100.0 * (dense.spearman - worse.spearman), 1e-9);
  EXPECT_GT(p.loss, 5.0);
  EXPECT_GT(p.loss_se, 0.5);  // a 200-pair Spearman difference is known to a few points at best
  EXPECT_LT(p.loss_se, 10.0);
  EXPECT_EQ(p.speedup, 2.0);
  const TunePoint none = spearman_point(same, dense, gold);
  EXPECT_EQ(none.loss, 0.0);
  EXPECT_EQ(none.loss_se, 0.0);  // identical cosines: every resample agrees
  EXPECT_THROW(tune_point(TuneMetric::Spearman, EvalResult{}, EvalResult{}), Error);
}

}  // namespace
}  // namespace sieve
