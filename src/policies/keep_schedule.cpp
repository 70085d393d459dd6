#include "policies/keep_schedule.h"

#include <cmath>
#include <sstream>

#include "util/error.h"

namespace sieve {

namespace {
void check_ratio(double r) {
  if (!(r >= 0.0 && r <= 1.0)) throw Error("keep ratio " + std::to_string(r) + " is outside [0, 1]");
}
}  // namespace

KeepSchedule KeepSchedule::progressive(double final_ratio, int start_layer, int num_layers) {
  check_ratio(final_ratio);
  if (start_layer < 0 || start_layer >= num_layers)
    throw Error("start layer " + std::to_string(start_layer) + " is outside [0, " + std::to_string(num_layers - 1) + "]");
  KeepSchedule s;
  for (int l = 0; l < num_layers; ++l) {
    if (l < start_layer) {
      s.ratios_.push_back(1.0);
    } else {
      const double t = num_layers - 1 == start_layer ? 1.0 : static_cast<double>(l - start_layer + 1) / (num_layers - start_layer);
      s.ratios_.push_back(1.0 - t * (1.0 - final_ratio));
    }
  }
  return s;
}

KeepSchedule KeepSchedule::explicit_ratios(std::vector<double> ratios) {
  for (double r : ratios) check_ratio(r);
  KeepSchedule s;
  s.ratios_ = std::move(ratios);
  return s;
}

double KeepSchedule::ratio(int layer) const {
  if (ratios_.empty()) return 1.0;
  return ratios_.at(static_cast<size_t>(layer));
}

int64_t KeepSchedule::keep_count(int layer, int64_t original) const {
  const double r = ratio(layer);
  if (r >= 1.0) return original;
  // A hair of tolerance so that, e.g., 0.3 * 10 does not become 4 through rounding noise.
  return std::min<int64_t>(original, static_cast<int64_t>(std::ceil(r * static_cast<double>(original) - 1e-9)));
}

bool KeepSchedule::keeps_everything() const {
  for (double r : ratios_)
    if (r < 1.0) return false;
  return true;
}

std::string KeepSchedule::describe() const {
  std::ostringstream s;
  for (size_t i = 0; i < ratios_.size(); ++i) s << (i ? "/" : "") << ratios_[i];
  return ratios_.empty() ? "1" : s.str();
}

}  // namespace sieve
