#pragma once
// Training-free LTP calibration: pick the final threshold (per-layer thresholds rise linearly to it)
// on a labelled split, by bisection, so that either the average keep ratio or the accuracy loss
// against dense hits a target. The data should be the training split; validation stays unseen.
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "model/text_model.h"

namespace sieve {

struct CalibrationTarget {
  double keep_ratio = -1.0;       // in (0, 1]: tokens entering each FFN / dense, averaged over layers
  double accuracy_budget = -1.0;  // >= 0: the largest threshold whose accuracy >= dense - budget
};

struct CalibrationOptions {
  std::string at = "next";  // where pruned tokens leave: "ffn" or "next"
  std::string extra;        // policy composed with the calibrated one, e.g. "spatten:heads=0.75"
  int batch_size = 32;
  size_t max_length = 0;
  int iterations = 14;
};

struct CalibrationResult {
  double final_threshold = 0.0;
  double keep_ratio = 1.0;
  double accuracy = 0.0, dense_accuracy = 0.0;
  std::string spec;  // ready for `sieve eval --policy`
};

// Throws sieve::Error when the target is missing, out of range, or cannot be met.
CalibrationResult calibrate_ltp(const TextModel& model, const std::vector<LabelledExample>& data,
                                const CalibrationTarget& target, const CalibrationOptions& options);

}  // namespace sieve
