// What the tile-sparse GEMM benchmarks share: a timer, a median, and random tile-pruned weights.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sieve::bench {

// MiniLM-L6's four layer weights, transposed: k inputs x n outputs.
struct WeightShape {
  const char* name;
  int64_t k, n;
};
inline constexpr WeightShape kMiniLmWeights[] = {
    {"qkv", 384, 1152}, {"attn_out", 384, 384}, {"ffn_in", 384, 1536}, {"ffn_out", 1536, 384}};

inline double ms_per_call(const std::function<void()>& call, int calls) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) call();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / calls;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Wt [k, n] (Sieve's transposed layout) with a fraction `sparsity` of its tile_k x 16 tiles zero,
// chosen at random.
inline Tensor pruned_weight(int64_t k, int64_t n, int64_t tile_k, double sparsity, std::mt19937& rng) {
  Tensor w({k, n});
  std::normal_distribution<float> value(0.0f, 0.05f);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = value(rng);
  std::vector<std::pair<int64_t, int64_t>> tiles;
  for (int64_t k0 = 0; k0 < k; k0 += tile_k)
    for (int64_t j0 = 0; j0 < n; j0 += 16) tiles.push_back({k0, j0});
  std::shuffle(tiles.begin(), tiles.end(), rng);
  tiles.resize(static_cast<size_t>(sparsity * static_cast<double>(tiles.size()) + 0.5));
  for (auto [k0, j0] : tiles)
    for (int64_t r = k0; r < std::min(k, k0 + tile_k); ++r)
      for (int64_t j = j0; j < std::min(n, j0 + 16); ++j) w.row(r)[j] = 0.0f;
  return w;
}

}  // namespace sieve::bench
