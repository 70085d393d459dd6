#pragma once
// sieve tune (issue 13, part 3): the fastest policy within an accuracy budget. Candidate settings
// (SpAtten, LTP, early exit, pyramids, at each precision asked for) are measured by the evaluator
// `sieve eval` uses, against dense in the same run, by successive halving: every candidate on a
// small subset of the calibration rows, then the promising half on a subset 4x larger, and so on
// up to the whole set. What decides (Pareto front, survivors of a round, the choice) are pure
// functions of measured points, so they are tested without a model.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "eval/embedding_eval.h"
#include "eval/evaluator.h"
#include "model/text_model.h"

namespace sieve {

// What the budget is counted in: classification accuracy on labelled rows, or the Spearman
// correlation of embedding cosines with gold scores on sentence pairs (STS-B), both in points.
enum class TuneMetric { Accuracy, Spearman };
TuneMetric parse_tune_metric(const std::string& name);  // "accuracy" | "spearman"; throws Error otherwise

// One measured setting as the search sees it.
struct TunePoint {
  double loss = 0.0;     // metric points lost against dense on the same rows (negative: a gain)
  double loss_se = 0.0;  // standard error of `loss` (paired with dense: same rows)
  double speedup = 1.0;  // dense wall-clock / this wall-clock, measured in the same run
};

// Throws Error unless the budget is a finite number >= 0 (metric points).
void check_budget(double budget);

// A setting's point from its evaluator result and the dense anchor's on the same rows.
TunePoint tune_point(TuneMetric metric, const EvalResult& result, const EvalResult& dense);
// The same for Spearman on scored pairs; the standard error is a paired bootstrap over the pairs.
TunePoint spearman_point(const EmbeddingEvalResult& result, const EmbeddingEvalResult& dense, const std::vector<double>& gold);

// Indices of the points that no other point beats: q beats p when it is at least as good on both
// loss and speedup and better on one. Equal points are all kept. Sorted by speedup, then loss.
std::vector<size_t> pareto_front(const std::vector<TunePoint>& points);

// The fastest point that beats dense (speedup > 1) with loss + z * loss_se <= budget; empty when
// there is none, which means the answer is dense. z = 0 judges the point estimate.
std::optional<size_t> select_fastest(const std::vector<TunePoint>& points, double budget, double z = 0.0);

// The candidates that go on to the next round, at most `keep` of them, best first: those that would
// be chosen on the point estimate (faster than dense, loss <= budget), fastest first; then those
// within budget only at loss - z * loss_se, by successive Pareto fronts (the front of them, fastest
// first, then the front of the rest, ...); then those that fit but are not faster than dense (never
// chosen), least loss + z * loss_se first; then the rest of the front, least loss first.
std::vector<size_t> promising(const std::vector<TunePoint>& points, double budget, double z, size_t keep);

// Rows per round: first, first * growth, ... and finally `rows` (first and growth >= 1, growth >= 2
// unless one round).
std::vector<size_t> subset_sizes(size_t rows, size_t first, size_t growth);

// The generated candidate space for a model with `layers` layers: SpAtten token ratios (cascading
// from layer 1, and from the middle layer), head ratios, tokens + heads, LTP at the given final
// thresholds; with exit classifiers, early exit and pyramids (pruning + exit) too.
std::vector<std::string> candidate_specs(int layers, bool exits, const std::vector<double>& ltp_finals);

struct TuneMeasurement {
  // spec, precision, accuracy, speedup, ... as `sieve eval` reports them. For the Spearman metric
  // `accuracy` holds the Spearman correlation and the per-example fields are per text.
  EvalResult result;
  TunePoint point;
  bool kept = false;  // went on to the next round
};

struct TuneRound {
  size_t rows = 0;
  double seconds = 0.0;
  EvalResult dense;  // the anchor, fp32
  std::vector<TuneMeasurement> measured;
};

struct TuneOptions {
  double budget = 1.0;  // metric points the user can lose against dense
  TuneMetric metric = TuneMetric::Accuracy;
  std::vector<Precision> precisions{Precision::Fp32};  // each candidate at each (speedups vs fp32 dense)
  std::vector<std::string> specs;  // the candidates; empty = candidate_specs() with calibrated LTP thresholds
  double confidence_z = 0.0;       // the choice needs loss + z standard errors <= budget
  int batch_size = 1;
  size_t max_length = 0;
  size_t limit = 0;                    // use at most this many rows (a random sample); 0 = all
  size_t first_rows = 64, growth = 4;  // the successive-halving schedule
  unsigned seed = 0;                   // the order rows are taken in
  std::function<void(size_t round, size_t rounds, const TuneRound&)> on_round;  // progress report
};

struct TuneResult {
  size_t candidates = 0;
  std::vector<TuneRound> rounds;
  std::vector<TuneMeasurement> front;  // the last round's Pareto front, dense included, by speedup
  TuneMeasurement best;                // dense when nothing faster is within budget
  double seconds = 0.0;
};

// A bf16 precision needs the model's bf16 weight copies (set_precision(Bf16) once before).
// Throws Error on a bad budget, a bad spec, no rows, or a model without a classification head.
TuneResult tune_policy(const TextModel& model, const std::vector<LabelledExample>& data, const TuneOptions& options);
// The same on scored sentence pairs with the Spearman metric (embeddings, pooled as the model
// declares; no exits): throws Error for pairs without scores or another metric.
TuneResult tune_policy(const TextModel& model, const std::vector<ScoredPair>& data, const TuneOptions& options);

}  // namespace sieve
