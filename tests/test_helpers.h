#pragma once
// Small helpers several test files share: seeded random data, the error a policy spec gives, and
// running the `sieve` binary (SIEVE_CLI_PATH, defined for the test target by CMake).
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "policies/policy_spec.h"
#include "util/error.h"

namespace sieve::testing {

// n values drawn from N(0, scale^2), the same for the same seed.
inline std::vector<float> random_normal(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The message parse_policy_spec throws for `spec` on a MiniLM-shaped config (6 layers, 12 heads,
// hidden 384), or "no error".
inline std::string policy_spec_error(const std::string& spec) {
  ModelConfig c;
  c.num_hidden_layers = 6;
  c.num_attention_heads = 12;
  c.hidden_size = 384;
  try {
    parse_policy_spec(spec, c);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// A path as one single-quoted shell word, for the command lines run_cli builds.
inline std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

struct CliResult {
  bool exited = false;  // false: killed by a signal
  int code = -1;
  std::string output;  // stdout, and stderr unless left out
};

// Runs `sieve <args>` through the shell; `timeout` turns a hang into exit code 124 instead of a
// stuck test. shell_prefix runs first in the same shell (e.g. "ulimit -f 8;").
inline CliResult run_cli(const std::string& args, int timeout_seconds = 60, bool with_stderr = true,
                         const std::string& shell_prefix = "") {
  const std::string command = shell_prefix + "timeout " + std::to_string(timeout_seconds) + " " +
                              std::string(SIEVE_CLI_PATH) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  CliResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) r.output.append(buffer, n);
  const int status = pclose(pipe);
  r.exited = WIFEXITED(status);
  if (r.exited) r.code = WEXITSTATUS(status);
  return r;
}

}  // namespace sieve::testing
