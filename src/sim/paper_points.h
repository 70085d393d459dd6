#pragma once
// The published points the accelerator models are checked against, each recomputed by the model
// from the paper's stated settings (`sieve sim --validate`; README "Accelerator models").
#include <string>
#include <vector>

#include "sim/cta_model.h"
#include "sim/spatten_model.h"

namespace sieve::sim {

struct PaperPoint {
  std::string what;      // the quantity and the setting
  double paper = 0.0;    // the published number
  double model = 0.0;    // what the model gives for the same setting
  std::string unit;
  std::string note;      // the assumption that decides the difference
};

std::vector<PaperPoint> spatten_paper_points(const SpattenConfig& config);
std::vector<PaperPoint> cta_paper_points(const CtaHardwareConfig& config);

}  // namespace sieve::sim
