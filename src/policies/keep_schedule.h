#pragma once
// How many tokens (or heads) a layer keeps: a per-layer keep ratio, either listed explicitly or
// reached progressively (SpAtten's schedule): 1.0 up to `start_layer`, then linearly down to the
// final ratio at the last layer.
#include <cstdint>
#include <string>
#include <vector>

namespace sieve {

class KeepSchedule {
 public:
  KeepSchedule() = default;  // keeps everything
  static KeepSchedule progressive(double final_ratio, int start_layer, int num_layers);
  static KeepSchedule explicit_ratios(std::vector<double> ratios);

  // Keep ratio after layer `layer` (0-based).
  double ratio(int layer) const;
  // Items to keep out of `original` prunable ones: ceil(ratio * original), so a ratio above 0 never
  // rounds a short sequence down to nothing and ratio 1 keeps all.
  int64_t keep_count(int layer, int64_t original) const;
  bool keeps_everything() const;
  std::string describe() const;

 private:
  std::vector<double> ratios_;  // per layer; empty = 1.0 everywhere
};

}  // namespace sieve
