#pragma once
// Where the Python-generated reference outputs live, and what a test does when they are missing.
// Outside the full suite a missing file skips the test; scripts/test.sh sets
// SIEVE_REQUIRE_REFERENCE=1 so that there a missing reference is a failure, never a silent skip.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace sieve::testing {

inline std::filesystem::path reference_dir() {
  if (const char* env = std::getenv("SIEVE_REFERENCE_DIR"); env && *env) return env;
  return SIEVE_REFERENCE_DIR;
}

inline bool reference_required() {
  const char* env = std::getenv("SIEVE_REQUIRE_REFERENCE");
  return env && std::string(env) == "1";
}

// The model the reference files were made from: $SIEVE_DEFAULT_MODEL, else the installed default.
inline std::filesystem::path reference_model_dir() {
  if (const char* env = std::getenv("SIEVE_DEFAULT_MODEL"); env && *env) return env;
  return SIEVE_DEFAULT_MODEL_DIR;
}

}  // namespace sieve::testing

// Skips (or, with SIEVE_REQUIRE_REFERENCE=1, fails) the current test when `path` does not exist.
#define SIEVE_REQUIRE_FILE(path)                                                                    \
  do {                                                                                              \
    if (!std::filesystem::exists(path)) {                                                           \
      if (::sieve::testing::reference_required()) FAIL() << (path) << " is missing (run scripts/setup.sh)"; \
      GTEST_SKIP() << (path) << " is missing; run scripts/setup.sh to generate it";                 \
    }                                                                                               \
  } while (0)
