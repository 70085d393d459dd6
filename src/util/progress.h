#pragma once
// A one-line progress bar on stderr for long runs. It draws only when stderr is a terminal (or
// SIEVE_PROGRESS=1), so logs and pipes stay clean, and redraws at most ~10 times a second.
#include <chrono>
#include <cstdint>
#include <string>

namespace sieve {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  ~ProgressBar();
  void advance(int64_t n = 1);
  void finish();

 private:
  void draw(bool force);
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace sieve
