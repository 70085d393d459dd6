#pragma once
// Shared by the libFuzzer targets: a scratch directory for inputs that the library reads from
// files, the repository's real model files, and the one rule every target checks: a hostile input
// may only end in sieve::Error. Any other exception (a library exception that escaped, the
// std::out_of_range of an unchecked .at()) is a finding, reported through abort() so libFuzzer
// saves the input; crashes, leaks, UB and timeouts are caught by the sanitizers and libFuzzer.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "util/error.h"

namespace sieve::fuzz {

// A per-process directory, on tmpfs when there is one (inputs are written for every run), removed
// when the process exits. The owner's destructor removes it: an atexit handler registered while the
// path was still being built ran after the path's own destructor, and read freed memory.
class ScratchDir {
 public:
  ScratchDir() {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    path_ = base / ("sieve-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline const std::filesystem::path& scratch_dir() {
  static const ScratchDir dir;
  return dir.path();
}

inline std::filesystem::path write_scratch(const std::string& name, std::string_view bytes) {
  const std::filesystem::path path = scratch_dir() / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// A file or directory of the repository (models/ is linked there by scripts/setup.sh).
inline std::filesystem::path repo_path(const std::string& relative) { return std::filesystem::path(SIEVE_SOURCE_DIR) / relative; }

// Runs one input; sieve::Error is the expected way to refuse it, anything else aborts.
template <class F>
void expect_only_sieve_errors(F&& run) {
  try {
    run();
  } catch (const sieve::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz finding: exception other than sieve::Error: %s\n", e.what());
    std::abort();
  }
}

// Splits an input into two parts at the first occurrence of `separator` (or: all, nothing).
inline std::pair<std::string_view, std::string_view> split_input(std::string_view input, std::string_view separator) {
  const size_t at = input.find(separator);
  if (at == std::string_view::npos) return {input, {}};
  return {input.substr(0, at), input.substr(at + separator.size())};
}

}  // namespace sieve::fuzz
