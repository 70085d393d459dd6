#include "policies/top_k.h"

#include <algorithm>
#include <utility>

namespace sieve {

std::vector<int32_t> top_k_indices(std::span<const float> scores, std::vector<int32_t> idx, size_t k) {
  if (k >= idx.size()) {
    std::sort(idx.begin(), idx.end());
    return idx;
  }
  if (k == 0) return {};
  // "a before b" = a ranks higher: larger score, or equal score and earlier position.
  auto before = [&](int32_t a, int32_t b) {
    const float sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
    return sa > sb || (sa == sb && a < b);
  };
  // Quick-select: partition around a median-of-three pivot until the first k slots hold the top k.
  size_t lo = 0, hi = idx.size() - 1;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (before(idx[mid], idx[lo])) std::swap(idx[mid], idx[lo]);
    if (before(idx[hi], idx[lo])) std::swap(idx[hi], idx[lo]);
    if (before(idx[hi], idx[mid])) std::swap(idx[hi], idx[mid]);
    const int32_t pivot = idx[mid];
    size_t i = lo, j = hi;
    while (i <= j) {
      while (before(idx[i], pivot)) ++i;
      while (before(pivot, idx[j])) --j;
      if (i <= j) {
        std::swap(idx[i], idx[j]);
        ++i;
        if (j == 0) break;
        --j;
      }
    }
    // Now [lo, j] rank at or above the pivot and [i, hi] at or below it.
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else break;
  }
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace sieve
