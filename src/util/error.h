#pragma once
// One exception type for everything a user can get wrong (bad file, bad text, bad option).
// The CLI catches it, prints the message and exits non-zero; nothing else is thrown on purpose.
#include <stdexcept>
#include <string>

namespace sieve {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace sieve
