#pragma once
// Sequences of different lengths packed row after row, with no padding: the rows of a sequence are
// [offset, offset + length). Token pruning shrinks a sequence and early exit removes it, so every
// later GEMM and attention call runs only on what is still alive (PRIOR-ART pitfall 5: padding to the
// longest would hand the saved FLOPs back).
#include <cstdint>
#include <vector>

namespace sieve {

struct PackedSequence {
  int input_index = 0;              // which input of the caller's batch this is
  int64_t offset = 0;               // first row in the packed activations
  std::vector<int32_t> positions;   // original token position of each current row
  std::vector<uint8_t> is_special;  // [CLS]/[SEP] rows: policies never prune them
  std::vector<int32_t> heads;       // attention heads still computed, ascending

  int64_t length() const { return static_cast<int64_t>(positions.size()); }
};

// Recomputes offsets after sequences shrank or left; returns the total row count.
inline int64_t assign_offsets(std::vector<PackedSequence>& sequences) {
  int64_t rows = 0;
  for (auto& s : sequences) {
    s.offset = rows;
    rows += s.length();
  }
  return rows;
}

}  // namespace sieve
