#include "util/npy.h"

#include <fstream>
#include <string>

#include "util/error.h"

namespace sieve {

void write_npy(const std::filesystem::path& path, const std::vector<float>& data, int64_t rows, int64_t cols) {
  if (static_cast<int64_t>(data.size()) != rows * cols) throw Error("write_npy: data size does not match shape");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  // magic(6) + version(2) + header length(2) + header, padded with spaces to a multiple of 64, '\n'-ended
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error("cannot write " + path.string());
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(float)));
  if (!out) throw Error("error writing " + path.string());
}

}  // namespace sieve
