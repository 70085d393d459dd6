#pragma once
// Top-k selection by quick-select (SpAtten's top-k engine): O(n) on average, no full sort.
// Ties are broken by position (the earlier token wins), so the result is deterministic.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sieve {

// Indices (ascending) of the k largest values among `candidates` (indices into `scores`).
// k >= candidates.size() returns all candidates; k == 0 returns none.
std::vector<int32_t> top_k_indices(std::span<const float> scores, std::vector<int32_t> candidates, size_t k);

}  // namespace sieve
