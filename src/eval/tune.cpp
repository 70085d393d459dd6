#include "eval/tune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "eval/calibrate.h"
#include "policies/policy_spec.h"
#include "util/error.h"

namespace sieve {

namespace {

// Early rounds drop a candidate only when it is two standard errors over budget: on 64 rows one
// standard error of an accuracy difference is a few points, and one unlucky subset must not throw
// away the answer.
constexpr double kSurvivorZ = 2.0;
constexpr size_t kMinSurvivors = 4;
// Losses are differences of counts scaled to points (100 * (a - b)); 1e-9 absorbs the rounding so
// that one example in 100 is exactly a 1-point loss, not 1.0000000000000009.
constexpr double kTolerance = 1e-9;
// Keep ratios (tokens entering each FFN / dense) the generated LTP candidates are calibrated to.
constexpr double kLtpKeepRatios[] = {0.8, 0.6, 0.4};

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

bool within(double loss, double budget) { return loss <= budget + kTolerance; }

// Final LTP thresholds that keep about kLtpKeepRatios of the tokens on these rows: where useful
// thresholds lie depends on sentence length (a score is a mean attention probability, ~1/length).
std::vector<double> calibrated_ltp_finals(const TextModel& model, const std::vector<LabelledExample>& rows,
                                          const TuneOptions& o) {
  CalibrationOptions calibration;
  calibration.at = "ffn";  // the spec's default, which the generated "ltp:final=T" uses
  calibration.max_length = o.max_length;
  std::vector<double> finals;
  for (double keep : kLtpKeepRatios) {
    const double t = calibrate_ltp(model, rows, CalibrationTarget{.keep_ratio = keep}, calibration).final_threshold;
    if (t > 0.0 && (finals.empty() || number(t) != number(finals.back()))) finals.push_back(t);
  }
  return finals;
}

}  // namespace

TuneMetric parse_tune_metric(const std::string& name) {
  if (name == "accuracy") return TuneMetric::Accuracy;
  throw Error("unknown metric '" + name + "' (accuracy)");
}

void check_budget(double budget) {
  if (!std::isfinite(budget) || budget < 0.0)
    throw Error("budget must be a finite number >= 0 (accuracy points you can lose), not " + number(budget));
}

// Accuracy: per example the paired difference d = (dense correct) - (this correct) is -1, 0 or 1;
// its mean is the loss, and d^2 = 1 only where the two predictions differ, so 1 - agreement bounds
// E[d^2] (exactly, with two labels) and the standard error never comes out too small.
TunePoint tune_point(TuneMetric metric, const EvalResult& r, const EvalResult& dense) {
  switch (metric) {
    case TuneMetric::Accuracy: {
      const double mean = dense.accuracy - r.accuracy;
      const double variance = std::max(0.0, (1.0 - r.agreement_with_dense) - mean * mean);
      return {100.0 * mean, 100.0 * std::sqrt(variance / static_cast<double>(r.examples)), r.speedup};
    }
  }
  throw Error("tune: unknown metric");
}

std::vector<size_t> pareto_front(const std::vector<TunePoint>& points) {
  auto beats = [](const TunePoint& q, const TunePoint& p) {
    return q.loss <= p.loss && q.speedup >= p.speedup && (q.loss < p.loss || q.speedup > p.speedup);
  };
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i)
    if (std::none_of(points.begin(), points.end(), [&](const TunePoint& q) { return beats(q, points[i]); }))
      front.push_back(i);
  std::stable_sort(front.begin(), front.end(), [&](size_t a, size_t b) {
    return points[a].speedup != points[b].speedup ? points[a].speedup < points[b].speedup : points[a].loss < points[b].loss;
  });
  return front;
}

std::optional<size_t> select_fastest(const std::vector<TunePoint>& points, double budget, double z) {
  check_budget(budget);
  std::optional<size_t> best;
  for (size_t i = 0; i < points.size(); ++i) {
    const TunePoint& p = points[i];
    if (!(p.speedup > 1.0) || !within(p.loss + z * p.loss_se, budget)) continue;
    if (!best || p.speedup > points[*best].speedup || (p.speedup == points[*best].speedup && p.loss < points[*best].loss))
      best = i;
  }
  return best;
}

std::vector<size_t> promising(const std::vector<TunePoint>& points, double budget, double z, size_t keep) {
  std::vector<uint8_t> on_front(points.size(), 0);
  for (size_t i : pareto_front(points)) on_front[i] = 1;
  auto could_fit = [&](size_t i) { return within(points[i].loss - z * points[i].loss_se, budget); };
  auto sorted = [&](auto better) {
    std::vector<size_t> order(points.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), better);
    return order;
  };
  const auto fastest = sorted([&](size_t a, size_t b) { return points[a].speedup > points[b].speedup; });
  const auto surest = sorted([&](size_t a, size_t b) {
    return points[a].loss + z * points[a].loss_se < points[b].loss + z * points[b].loss_se;
  });
  const auto least_loss = sorted([&](size_t a, size_t b) { return points[a].loss < points[b].loss; });

  std::vector<size_t> order;
  for (size_t i : fastest)
    if (on_front[i] && could_fit(i)) order.push_back(i);
  for (size_t i : surest)
    if (!on_front[i] && could_fit(i)) order.push_back(i);
  for (size_t i : least_loss)
    if (on_front[i] && !could_fit(i)) order.push_back(i);
  if (order.size() > keep) order.resize(keep);
  return order;
}

std::vector<size_t> subset_sizes(size_t rows, size_t first, size_t growth) {
  if (rows == 0 || first == 0 || growth < 2) throw Error("tune: the round schedule needs rows, first rows >= 1 and growth >= 2");
  std::vector<size_t> sizes;
  for (size_t s = first; s < rows; s *= growth) sizes.push_back(s);
  // A round on more than 2/3 of the rows costs nearly as much as the full one and decides little.
  while (!sizes.empty() && sizes.back() * 3 > rows * 2) sizes.pop_back();
  sizes.push_back(rows);
  return sizes;
}

std::vector<std::string> candidate_specs(int layers, bool exits, const std::vector<double>& ltp_finals) {
  std::vector<std::string> specs;
  const int middle = layers / 2;  // SpAtten's cascade can also start late: early layers stay dense
  for (double r : {0.5, 0.3, 0.2, 0.1}) {
    specs.push_back("spatten:tokens=" + number(r));
    if (middle > 1) specs.push_back("spatten:tokens=" + number(r) + ",start=" + std::to_string(middle));
  }
  for (double r : {0.75, 0.5}) specs.push_back("spatten:heads=" + number(r));
  specs.push_back("spatten:tokens=0.3,heads=0.75");
  for (double t : ltp_finals) specs.push_back("ltp:final=" + number(t));
  if (exits) {
    // u is the exit's normalized entropy: with 2 labels u <= 0.5 means p >= 0.89. How sure exits
    // are differs by model and data (genuine SST-2 exits are sure after layer 1: tau 0.3 already
    // halves the layers), so the taus span the whole range.
    const std::string late_start = middle > 1 ? ",start=" + std::to_string(middle) : "";
    for (double tau : {0.1, 0.2, 0.3, 0.5, 0.7, 0.9}) specs.push_back("exit:tau=" + number(tau));
    for (double tau : {0.2, 0.3, 0.5, 0.8}) {
      for (const char* ratio : {"0.3", "0.2"})
        specs.push_back(std::string("spatten:tokens=") + ratio + late_start + "+exit:tau=" + number(tau));
      if (!ltp_finals.empty())
        specs.push_back("ltp:final=" + number(ltp_finals.front()) + "+exit:tau=" + number(tau));
    }
  }
  return specs;
}

TuneResult tune_policy(const TextModel& model, const std::vector<LabelledExample>& data, const TuneOptions& o) {
  check_budget(o.budget);
  if (!std::isfinite(o.confidence_z) || o.confidence_z < 0.0) throw Error("tune: the confidence z must be a finite number >= 0");
  if (o.precisions.empty()) throw Error("tune: no precision to try");
  if (data.empty()) throw Error("tune: no calibration rows");
  const BertEncoder& encoder = model.encoder();
  if (!encoder.has_classifier())
    throw Error("tune: the accuracy metric needs a model with a sequence-classification head (tools/finetune_classifier.py makes one)");
  const auto start = std::chrono::steady_clock::now();

  // Rows in one fixed random order (the first `limit` of it, a random sample); each round takes a
  // prefix, so a small subset looks like the whole set (files are often sorted by label or source)
  // and a larger round re-measures the rows of the smaller ones.
  std::vector<LabelledExample> rows = data;
  std::shuffle(rows.begin(), rows.end(), std::mt19937(o.seed));
  if (o.limit && rows.size() > o.limit) rows.resize(o.limit);
  const std::vector<size_t> sizes = subset_sizes(rows.size(), o.first_rows, o.growth);

  std::vector<std::string> specs = o.specs;
  if (specs.empty()) {
    const std::vector<LabelledExample> first(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(sizes.front()));
    specs = candidate_specs(static_cast<int>(encoder.config().num_hidden_layers), model.exits() != nullptr,
                            calibrated_ltp_finals(model, first, o));
  }
  // Dense at another precision is a candidate too (bf16 dense is often the cheapest speedup).
  specs.insert(specs.begin(), "dense");
  std::vector<EvalSetting> candidates;
  for (Precision precision : o.precisions)
    for (const auto& spec : specs) {
      try {  // a bad spec fails now, not after minutes of measuring
        parse_policy_spec(spec, encoder.config(), model.exits());
      } catch (const Error& e) {
        throw Error("tune: candidate '" + spec + "': " + e.what());
      }
      if (precision == Precision::Fp32 && spec == "dense") continue;  // the anchor, measured every round
      const bool seen = std::any_of(candidates.begin(), candidates.end(),
                                    [&](const EvalSetting& c) { return c.spec == spec && c.precision == precision; });
      if (!seen) candidates.push_back({spec, precision});
    }

  TuneResult result;
  result.candidates = candidates.size();
  std::vector<size_t> alive(candidates.size());
  std::iota(alive.begin(), alive.end(), 0);
  for (size_t r = 0; r < sizes.size(); ++r) {
    const auto round_start = std::chrono::steady_clock::now();
    std::vector<EvalSetting> settings;
    for (size_t c : alive) settings.push_back(candidates[c]);
    EvalOptions eval{o.batch_size, o.max_length, sizes[r], Precision::Fp32,
                     "round " + std::to_string(r + 1) + "/" + std::to_string(sizes.size()) + ": " + std::to_string(sizes[r]) +
                         " rows x " + std::to_string(settings.size() + 1) + " settings"};
    const std::vector<EvalResult> results = evaluate_settings(model, rows, settings, eval);

    TuneRound round;
    round.rows = sizes[r];
    round.dense = results.front();
    std::vector<TunePoint> points;
    for (size_t k = 1; k < results.size(); ++k) {
      round.measured.push_back({results[k], tune_point(o.metric, results[k], round.dense)});
      points.push_back(round.measured.back().point);
    }
    if (r + 1 < sizes.size()) {
      const size_t keep = std::max(kMinSurvivors, (alive.size() + 1) / 2);
      std::vector<size_t> next;
      for (size_t k : promising(points, o.budget, kSurvivorZ, keep)) {
        round.measured[k].kept = true;
        next.push_back(alive[k]);
      }
      std::sort(next.begin(), next.end());  // the candidates' own order, for readable reports
      alive = std::move(next);
    }
    round.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - round_start).count();
    result.rounds.push_back(std::move(round));
    if (o.on_round) o.on_round(r, sizes.size(), result.rounds.back());
  }

  // The answer and the front come from the last round: the most rows, the least noise.
  const TuneRound& last = result.rounds.back();
  const TuneMeasurement dense{last.dense, TunePoint{}};
  std::vector<TuneMeasurement> all = last.measured;
  all.push_back(dense);
  std::vector<TunePoint> points;
  for (const auto& m : all) points.push_back(m.point);
  for (size_t i : pareto_front(points)) result.front.push_back(all[i]);
  points.pop_back();  // dense is the fallback, not a candidate
  const std::optional<size_t> best = select_fastest(points, o.budget, o.confidence_z);
  result.best = best ? last.measured[*best] : dense;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace sieve
