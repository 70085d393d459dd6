#include "eval/calibrate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "policies/policy_spec.h"
#include "util/error.h"

namespace sieve {

namespace {

struct Measurement {
  double keep_ratio = 1.0;
  double accuracy = 0.0;
};

class Calibrator {
 public:
  Calibrator(const TextModel& model, const std::vector<LabelledExample>& data, const CalibrationOptions& options)
      : model_(model), options_(options) {
    std::vector<TextPair> texts;
    for (const auto& e : data) {
      texts.push_back(e.text);
      labels_.push_back(e.label);
    }
    inputs_ = model.encode(texts, options.max_length).inputs;
    dense_ = measure("dense");
  }

  std::string spec_for(double final_threshold) const {
    char buf[64];
    std::snprintf(buf, sizeof buf, "ltp:final=%.6g,at=%s", final_threshold, options_.at.c_str());
    return options_.extra.empty() ? std::string(buf) : std::string(buf) + "+" + options_.extra;
  }

  Measurement measure(const std::string& spec) const {
    const BertEncoder& enc = model_.encoder();
    const auto policy = parse_policy_spec(spec, enc.config(), model_.exits());
    ForwardStats stats;
    size_t correct = 0;
    const size_t batch = static_cast<size_t>(options_.batch_size);
    for (size_t begin = 0; begin < inputs_.size(); begin += batch) {
      const auto part = std::span(inputs_).subspan(begin, std::min(batch, inputs_.size() - begin));
      ForwardStats st;
      const auto outputs = enc.forward(part, {.policy = policy.get(), .cls_only_output = true}, &st);
      stats.add(st);
      for (size_t i = 0; i < outputs.size(); ++i) {
        const auto logits = enc.classify(outputs[i]);
        correct += static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin()) == labels_[begin + i];
      }
    }
    Measurement m;
    int64_t kept = 0, dense = 0;
    for (size_t l = 0; l < stats.tokens_per_layer.size(); ++l) kept += stats.tokens_per_layer[l];
    for (const auto& in : inputs_) dense += static_cast<int64_t>(in.ids.size()) * static_cast<int64_t>(stats.tokens_per_layer.size());
    m.keep_ratio = static_cast<double>(kept) / static_cast<double>(dense);
    m.accuracy = static_cast<double>(correct) / static_cast<double>(inputs_.size());
    return m;
  }

  const Measurement& dense() const { return dense_; }

 private:
  const TextModel& model_;
  CalibrationOptions options_;
  std::vector<EncoderInput> inputs_;
  std::vector<int> labels_;
  Measurement dense_;
};

}  // namespace

CalibrationResult calibrate_ltp(const TextModel& model, const std::vector<LabelledExample>& data,
                                const CalibrationTarget& target, const CalibrationOptions& options) {
  const bool by_keep = target.keep_ratio >= 0.0, by_accuracy = target.accuracy_budget >= 0.0;
  if (by_keep == by_accuracy) throw Error("calibrate: give exactly one of a keep ratio or an accuracy budget");
  if (by_keep && !(target.keep_ratio > 0.0 && target.keep_ratio <= 1.0))
    throw Error("calibrate: keep ratio must be in (0, 1]");
  if (by_accuracy && !(target.accuracy_budget <= 1.0)) throw Error("calibrate: accuracy budget must be in [0, 1]");
  if (data.empty()) throw Error("calibrate: no examples");
  if (options.at != "ffn" && options.at != "next") throw Error("calibrate: at must be ffn or next");
  if (!model.encoder().has_classifier() && by_accuracy)
    throw Error("calibrate: an accuracy budget needs a model with a classification head");

  const Calibrator calibrator(model, data, options);
  // ok(t): the threshold t still satisfies the target. Both criteria get stricter as t grows
  // (more tokens fall below it), so the answer is the largest t with ok(t): bisect for it.
  auto ok = [&](const Measurement& m) {
    return by_keep ? m.keep_ratio >= target.keep_ratio
                   : m.accuracy >= calibrator.dense().accuracy - target.accuracy_budget;
  };
  // The score of a token is a mean attention probability, so thresholds live in (0, 1].
  double lo = 0.0, hi = 1.0;
  Measurement at_lo = calibrator.dense(), at_hi = calibrator.measure(calibrator.spec_for(hi));
  if (ok(at_hi)) { lo = hi; at_lo = at_hi; }
  for (int i = 0; i < options.iterations && lo < hi; ++i) {
    // Geometric steps: useful thresholds span orders of magnitude (about 1/length per layer).
    const double mid = lo == 0.0 ? hi / 8.0 : std::sqrt(lo * hi);
    const Measurement m = calibrator.measure(calibrator.spec_for(mid));
    if (ok(m)) { lo = mid; at_lo = m; } else { hi = mid; }
  }
  CalibrationResult r;
  r.final_threshold = lo;
  r.keep_ratio = at_lo.keep_ratio;
  r.accuracy = at_lo.accuracy;
  r.dense_accuracy = calibrator.dense().accuracy;
  r.spec = calibrator.spec_for(lo);
  return r;
}

}  // namespace sieve
