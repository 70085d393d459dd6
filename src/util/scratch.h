#pragma once
// Per-thread scratch buffers for kernels that run once per row block, head or sequence.
#include <cstdint>
#include <vector>

namespace sieve {

// `buffer`'s storage, at least `size` elements. It only grows: resize() would zero-fill again
// whatever a shorter call had given back (the QKV, output and FFN GEMMs alternate sizes): a memset
// that was 3 % of an int8 forward pass at 32 tokens.
template <class T>
T* scratch(std::vector<T>& buffer, int64_t size) {
  if (buffer.size() < static_cast<size_t>(size)) buffer.resize(static_cast<size_t>(size));
  return buffer.data();
}

}  // namespace sieve
