#pragma once
// Writes a float32 matrix as a NumPy .npy file (format version 1.0), so vectors go straight into
// numpy.load without a parser of ours on the other side.
#include <cstdint>
#include <filesystem>
#include <vector>

namespace sieve {

void write_npy(const std::filesystem::path& path, const std::vector<float>& data, int64_t rows, int64_t cols);

}  // namespace sieve
