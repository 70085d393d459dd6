#include "eval/tune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
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
  if (name == "spearman") return TuneMetric::Spearman;
  throw Error("unknown metric '" + name + "' (accuracy or spearman)");
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
    case TuneMetric::Spearman:
      throw Error("tune: the Spearman metric is scored from embeddings (spearman_point), not from accuracy");
  }
  throw Error("tune: unknown metric");
}

// Spearman: the loss is the difference of the two correlations on the same pairs; its standard
// error comes from resampling the pairs (both settings together, so the pairing is kept).
TunePoint spearman_point(const EmbeddingEvalResult& r, const EmbeddingEvalResult& dense, const std::vector<double>& gold) {
  constexpr int kResamples = 200;
  const size_t n = r.pair_cosines.size();
  if (n != dense.pair_cosines.size() || n > gold.size() || n == 0) throw Error("tune: Spearman point needs both settings' pair cosines");
  std::mt19937 rng(12345);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  std::vector<double> a(n), b(n), g(n);
  double sum = 0, sum_sq = 0;
  for (int k = 0; k < kResamples; ++k) {
    for (size_t i = 0; i < n; ++i) {
      const size_t j = pick(rng);
      a[i] = dense.pair_cosines[j], b[i] = r.pair_cosines[j], g[i] = gold[j];
    }
    const double d = spearman_correlation(a, g) - spearman_correlation(b, g);
    sum += d, sum_sq += d * d;
  }
  const double mean = sum / kResamples, variance = std::max(0.0, sum_sq / kResamples - mean * mean);
  return {100.0 * (dense.spearman - r.spearman), 100.0 * std::sqrt(variance), r.speedup};
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
  auto could_win = [&](size_t i) { return could_fit(i) && points[i].speedup > 1.0; };  // select_fastest's test
  auto fastest_first = [&](size_t a, size_t b) { return points[a].speedup > points[b].speedup; };

  std::vector<size_t> order;
  auto append_sorted = [&](auto wanted, auto better) {
    std::vector<size_t> more;
    for (size_t i = 0; i < points.size(); ++i)
      if (wanted(i)) more.push_back(i);
    std::stable_sort(more.begin(), more.end(), better);
    order.insert(order.end(), more.begin(), more.end());
  };
  // First what would be chosen on the point estimate (faster than dense, loss <= budget), fastest
  // first: that is the best guess, and the next round's rows correct the ones noise flatters.
  append_sorted([&](size_t i) { return could_win(i) && within(points[i].loss, budget); }, fastest_first);
  // Then those within budget only at -z standard errors, front by front (non-dominated sorting:
  // the front of those left, fastest first, then the front of the rest, and so on).
  std::vector<size_t> left;
  for (size_t i = 0; i < points.size(); ++i)
    if (could_win(i) && !within(points[i].loss, budget)) left.push_back(i);
  while (!left.empty()) {
    std::vector<TunePoint> sub;
    for (size_t i : left) sub.push_back(points[i]);
    std::vector<size_t> layer;
    for (size_t j : pareto_front(sub)) layer.push_back(left[j]);
    std::stable_sort(layer.begin(), layer.end(), fastest_first);
    order.insert(order.end(), layer.begin(), layer.end());
    std::erase_if(left, [&](size_t i) { return std::find(layer.begin(), layer.end(), i) != layer.end(); });
  }
  // Then what fits the budget but is not faster than dense (never chosen; the front shows it),
  // surest first; then the rest of the front, least loss first.
  append_sorted([&](size_t i) { return could_fit(i) && !could_win(i); },
                [&](size_t a, size_t b) { return points[a].loss + z * points[a].loss_se < points[b].loss + z * points[b].loss_se; });
  append_sorted([&](size_t i) { return on_front[i] && !could_fit(i); },
                [&](size_t a, size_t b) { return points[a].loss < points[b].loss; });
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

namespace {

// One round's measurement: the dense anchor and each setting, on the first `rows` rows.
using MeasureRound = std::function<std::pair<EvalResult, std::vector<TuneMeasurement>>(
    const std::vector<EvalSetting>& settings, size_t rows, const std::string& label)>;

void check_options(const TuneOptions& o) {
  check_budget(o.budget);
  if (!std::isfinite(o.confidence_z) || o.confidence_z < 0.0) throw Error("tune: the confidence z must be a finite number >= 0");
  if (o.precisions.empty()) throw Error("tune: no precision to try");
}

// The candidates: specs (generated when none are given) at every precision, checked before any
// measuring, with fp32 dense left out (it is the anchor, measured every round).
std::vector<EvalSetting> candidate_settings(const TextModel& model, const TuneOptions& o, const std::function<std::vector<double>()>& ltp_finals) {
  const BertEncoder& encoder = model.encoder();
  const bool exits = o.metric == TuneMetric::Accuracy && model.exits() != nullptr;
  std::vector<std::string> specs = o.specs;
  if (specs.empty()) specs = candidate_specs(static_cast<int>(encoder.config().num_hidden_layers), exits, ltp_finals());
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
      if (precision == Precision::Fp32 && spec == "dense") continue;
      const bool seen = std::any_of(candidates.begin(), candidates.end(),
                                    [&](const EvalSetting& c) { return c.spec == spec && c.precision == precision; });
      if (!seen) candidates.push_back({spec, precision});
    }
  return candidates;
}

// Successive halving over `candidates` with rounds of `sizes` rows; the answer from the last round.
TuneResult search(const std::vector<EvalSetting>& candidates, const std::vector<size_t>& sizes, const TuneOptions& o,
                  const MeasureRound& measure, std::chrono::steady_clock::time_point start) {
  TuneResult result;
  result.candidates = candidates.size();
  std::vector<size_t> alive(candidates.size());
  std::iota(alive.begin(), alive.end(), 0);
  for (size_t r = 0; r < sizes.size(); ++r) {
    const auto round_start = std::chrono::steady_clock::now();
    std::vector<EvalSetting> settings;
    for (size_t c : alive) settings.push_back(candidates[c]);
    const std::string label = "round " + std::to_string(r + 1) + "/" + std::to_string(sizes.size()) + ": " +
                              std::to_string(sizes[r]) + " rows x " + std::to_string(settings.size() + 1) + " settings";
    auto [dense, measured] = measure(settings, sizes[r], label);

    TuneRound round;
    round.rows = sizes[r];
    round.dense = std::move(dense);
    round.measured = std::move(measured);
    std::vector<TunePoint> points;
    for (const auto& m : round.measured) points.push_back(m.point);
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

// An embedding result in the shape the search and its reports use (accuracy = Spearman).
EvalResult as_eval_result(const EmbeddingEvalResult& r) {
  EvalResult e;
  e.spec = r.setting.spec, e.precision = r.setting.precision, e.description = r.description;
  e.examples = r.pairs, e.accuracy = r.spearman;
  e.gflops_per_example = r.gflops_per_text, e.flops_reduction = r.flops_reduction;
  e.latency_ms_per_example = r.latency_ms_per_text, e.total_seconds = r.total_seconds, e.speedup = r.speedup;
  e.tokens_kept = r.tokens_kept;
  e.agreement_with_dense = r.mean_cosine_to_dense;
  return e;
}

}  // namespace

TuneResult tune_policy(const TextModel& model, const std::vector<ScoredPair>& data, const TuneOptions& o) {
  check_options(o);
  if (o.metric != TuneMetric::Spearman) throw Error("tune: sentence pairs are scored by Spearman (--metric spearman)");
  if (data.empty()) throw Error("tune: no calibration rows");
  if (std::isnan(data.front().score)) throw Error("tune: the Spearman metric needs pairs with a gold 'score' column (STS-B)");
  const auto start = std::chrono::steady_clock::now();
  std::vector<ScoredPair> rows = data;
  std::shuffle(rows.begin(), rows.end(), std::mt19937(o.seed));
  if (o.limit && rows.size() > o.limit) rows.resize(o.limit);
  const std::vector<size_t> sizes = subset_sizes(rows.size(), o.first_rows, o.growth);
  std::vector<double> gold;
  for (const auto& p : rows) gold.push_back(p.score);

  const auto candidates = candidate_settings(model, o, [&] {
    std::vector<LabelledExample> texts;
    for (size_t i = 0; i < sizes.front(); ++i) texts.push_back({{rows[i].text.first, ""}, 0});
    return calibrated_ltp_finals(model, texts, o);
  });
  auto measure = [&](const std::vector<EvalSetting>& settings, size_t n, const std::string& label) {
    std::vector<EmbeddingEvalSetting> embedding_settings;
    for (const auto& s : settings) {
      EmbeddingEvalSetting e;
      e.spec = s.spec, e.precision = s.precision;
      embedding_settings.push_back(e);
    }
    const auto results = evaluate_embeddings(model, rows, embedding_settings, {o.batch_size, o.max_length, n, label});
    std::vector<TuneMeasurement> measured;
    for (size_t k = 1; k < results.size(); ++k)
      measured.push_back({as_eval_result(results[k]), spearman_point(results[k], results[0], gold)});
    return std::make_pair(as_eval_result(results[0]), std::move(measured));
  };
  return search(candidates, sizes, o, measure, start);
}

TuneResult tune_policy(const TextModel& model, const std::vector<LabelledExample>& data, const TuneOptions& o) {
  check_options(o);
  if (o.metric != TuneMetric::Accuracy) throw Error("tune: labelled rows are scored by accuracy; Spearman needs scored sentence pairs");
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

  const auto candidates = candidate_settings(model, o, [&] {
    const std::vector<LabelledExample> first(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(sizes.front()));
    return calibrated_ltp_finals(model, first, o);
  });
  auto measure = [&](const std::vector<EvalSetting>& settings, size_t n, const std::string& label) {
    const std::vector<EvalResult> results =
        evaluate_settings(model, rows, settings, EvalOptions{o.batch_size, o.max_length, n, Precision::Fp32, label});
    std::vector<TuneMeasurement> measured;
    for (size_t k = 1; k < results.size(); ++k) measured.push_back({results[k], tune_point(o.metric, results[k], results.front())});
    return std::make_pair(results.front(), std::move(measured));
  };
  return search(candidates, sizes, o, measure, start);
}

}  // namespace sieve
