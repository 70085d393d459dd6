#pragma once
// The header of a float32 matrix in NumPy .npy format (format version 1.0), so vectors go straight into
// numpy.load without a parser of ours on the other side.
#include <cstdint>
#include <string>

namespace sieve {

// The 128-byte header of a float32 [rows, cols] matrix: always the same size, so a writer that
// streams rows can write it first and rewrite it with the final row count at the end.
std::string npy_header(int64_t rows, int64_t cols);

}  // namespace sieve
