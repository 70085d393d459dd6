#include "policies/threshold_pruner.h"

#include <sstream>

#include "util/error.h"

namespace sieve {

ThresholdPruner::ThresholdPruner(std::vector<double> thresholds, PrunePoint point)
    : thresholds_(std::move(thresholds)), point_(point) {
  for (double t : thresholds_)
    if (!(t >= 0.0 && t <= 1.0)) throw Error("LTP threshold " + std::to_string(t) + " is outside [0, 1]");
}

std::vector<double> ThresholdPruner::linear_thresholds(double final_threshold, int num_layers) {
  std::vector<double> t;
  for (int l = 0; l < num_layers; ++l) t.push_back(final_threshold * (l + 1) / num_layers);
  return t;
}

std::string ThresholdPruner::describe() const {
  std::ostringstream s;
  s << "ltp(thresholds=";
  for (size_t i = 0; i < thresholds_.size(); ++i) s << (i ? "/" : "") << thresholds_[i];
  s << (point_ == PrunePoint::NextLayer ? ", at=next)" : ", at=ffn)");
  return s.str();
}

void ThresholdPruner::after_attention(const AttentionLayerView& view, PruneDecision& decision) {
  if (static_cast<size_t>(view.num_layers) != thresholds_.size())
    throw Error("LTP has " + std::to_string(thresholds_.size()) + " thresholds but the model has " +
                std::to_string(view.num_layers) + " layers");
  const double threshold = thresholds_[static_cast<size_t>(view.layer)];
  if (threshold <= 0.0) return;
  if (point_ == PrunePoint::BeforeFfn) decision.drop_before_ffn = true;
  for (size_t s = 0; s < view.sequences.size(); ++s) {
    const PackedSequence& seq = view.sequences[s];
    const int64_t n = seq.length();
    if (seq.heads.empty()) continue;
    const double norm = 1.0 / (static_cast<double>(seq.heads.size()) * static_cast<double>(n));
    for (int64_t j = 0; j < n; ++j) {
      double received = 0.0;
      for (int h : seq.heads) received += view.received[s][static_cast<size_t>(h * n + j)];
      if (received * norm < threshold) decision.keep_token[s][static_cast<size_t>(j)] = 0;
    }
  }
}

}  // namespace sieve
