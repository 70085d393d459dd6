#pragma once
// Shared by the bf16 and int8 encoder tests: the inputs they run, and how two runs' hidden states
// are compared.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/bert_encoder.h"

namespace sieve::testing {

// Three inputs of 2, 9 and 31 tokens (ids under 102, for the tiny models' vocabularies).
inline std::vector<EncoderInput> precision_test_inputs() {
  std::vector<EncoderInput> inputs;
  for (int len : {2, 9, 31}) {
    EncoderInput in;
    for (int i = 0; i < len; ++i) in.ids.push_back(2 + (i * 37 + len) % 100);
    inputs.push_back(in);
  }
  return inputs;
}

struct HiddenDifference {
  double worst = 0, mean = 0;
};

// Largest and mean |a - b| over every hidden-state element of every input.
inline HiddenDifference hidden_difference(const std::vector<SequenceOutput>& a, const std::vector<SequenceOutput>& b) {
  HiddenDifference d;
  double total = 0;
  int64_t count = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t e = 0; e < a[i].hidden.size(); ++e) {
      const double diff = std::abs(double(a[i].hidden.data()[e]) - b[i].hidden.data()[e]);
      d.worst = std::max(d.worst, diff), total += diff, ++count;
    }
  d.mean = count ? total / static_cast<double>(count) : 0.0;
  return d;
}

inline void expect_identical_hidden(const std::vector<SequenceOutput>& a, const std::vector<SequenceOutput>& b,
                                    const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t e = 0; e < a[i].hidden.size(); ++e) ASSERT_EQ(a[i].hidden.data()[e], b[i].hidden.data()[e]) << what;
}

}  // namespace sieve::testing
