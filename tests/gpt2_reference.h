#pragma once
// The random GPT-2 fixture written by tools/make_gpt2_reference.py (scripts/setup.sh runs it):
// a model directory that also holds reference.json (token ids, logits, greedy generations).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "reference_data.h"

namespace sieve::testing {

inline std::filesystem::path gpt2_model_dir() { return reference_dir() / "gpt2-random"; }

inline nlohmann::json load_gpt2_reference() {
  std::ifstream in(gpt2_model_dir() / "reference.json");
  return nlohmann::json::parse(in);
}

}  // namespace sieve::testing
