#include "policies/early_exit.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "util/error.h"

namespace sieve {

double normalized_entropy(std::span<const float> logits) {
  if (logits.size() < 2) throw Error("normalized entropy needs at least 2 classes");
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float z : logits) sum += std::exp(z - mx);
  double plogp = 0.0;  // sum p log p, with log p = z - mx - log(sum) (no log of a rounded-to-0 p)
  for (float z : logits) {
    const double log_p = z - mx - std::log(sum);
    plogp += std::exp(log_p) * log_p;
  }
  return plogp / std::log(1.0 / static_cast<double>(logits.size()));
}

EarlyExitPolicy::EarlyExitPolicy(const ExitHeads& heads, double tau) : heads_(heads), tau_(tau) {
  if (!(tau >= 0.0 && tau <= 1.0)) throw Error("exit: tau must be in [0, 1]");
}

std::string EarlyExitPolicy::describe() const {
  std::ostringstream s;
  s << "early-exit(" << heads_.variant() << ", tau=" << tau_ << ")";
  return s.str();
}

void EarlyExitPolicy::begin(std::span<const PackedSequence>, int, int) { flops_ = 0.0; }

void EarlyExitPolicy::after_layer(const LayerOutputView& view, ExitDecision& decision) {
  if (tau_ == 0.0 || !heads_.has_exit_after(view.layer)) return;
  if (decision.logits.size() < view.sequences.size()) decision.logits.resize(view.sequences.size());
  for (size_t s = 0; s < view.sequences.size(); ++s) {
    if (decision.exit_now[s]) continue;  // another policy already decided
    const PackedSequence& seq = view.sequences[s];
    std::vector<float> logits = heads_.logits(view.layer, view.hidden->row(seq.offset), seq.length(), &flops_);
    if (normalized_entropy(logits) <= tau_) {
      decision.exit_now[s] = 1;
      decision.logits[s] = std::move(logits);
    }
  }
}

}  // namespace sieve
