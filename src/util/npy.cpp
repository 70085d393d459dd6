#include "util/npy.h"

#include <string>

namespace sieve {

std::string npy_header(int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  // magic(6) + version(2) + header length(2) + header padded with spaces, '\n'-ended: 128 bytes,
  // a multiple of 64 as the format asks, with room for any two 64-bit sizes.
  constexpr size_t kTotal = 128;
  header.append(kTotal - 10 - 1 - header.size(), ' ');
  header.push_back('\n');
  const auto length = static_cast<uint16_t>(header.size());
  return std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(length & 0xff) + static_cast<char>(length >> 8) + header;
}

}  // namespace sieve
