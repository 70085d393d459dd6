// A/B of the AVX-512 BF16 fused attention kernel against an earlier version of itself, one thread,
// alternating, on MiniLM's (head_dim 32) and BERT-base's (64) head shapes at 25, 128 and 384 tokens.
// Not part of the build: the earlier kernel comes from git with its namespace renamed.
//   git show REV:src/attention/fused_attention_avx512bf16.cpp | sed 's/namespace sieve::avx512bf16 {/namespace sieve::avx512bf16_old {/' > /tmp/old.cpp
//   sed 's/namespace sieve::avx512bf16 {/namespace sieve::avx512bf16_new {/' src/attention/fused_attention_avx512bf16.cpp > /tmp/new.cpp
//   g++ -std=c++20 -O3 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mavx512bf16 -Isrc -fopenmp \
//       bench/attention/bf16_kernel_ab.cpp /tmp/old.cpp /tmp/new.cpp build/libsieve_core.a -o /tmp/attention_ab && /tmp/attention_ab
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "attention/fused_attention.h"

namespace sieve::avx512bf16_old {
bool fused_attention(const HeadView&, int64_t, int64_t, float, HeadStatistics);
}
namespace sieve::avx512bf16_new {
bool fused_attention(const HeadView&, int64_t, int64_t, float, HeadStatistics);
}

int main() {
  using namespace sieve;
  constexpr int64_t kHidden = 384, kStride = 3 * kHidden;  // one fused QKV row per token
  for (int64_t head_dim : {32, 64}) {
    for (int64_t n : {25, 128, 384}) {
      const int64_t heads_in_row = kHidden / head_dim, calls = 2 * heads_in_row;
      std::vector<float> qkv(n * kStride), out(n * kHidden), received(n);
      std::mt19937 rng(1);
      std::normal_distribution<float> normal;
      for (auto& x : qkv) x = normal(rng);
      // Median microseconds of 40 runs of `calls` heads, the statistics SpAtten reads included.
      auto median_us = [&](bool old) {
        std::vector<double> times;
        for (int rep = 0; rep < 40; ++rep) {
          const auto start = std::chrono::steady_clock::now();
          for (int64_t h = 0; h < calls; ++h) {
            const int64_t col = (h % heads_in_row) * head_dim;
            const HeadView head{qkv.data() + col, qkv.data() + kHidden + col, qkv.data() + 2 * kHidden + col, kStride,
                                out.data() + col, kHidden};
            HeadStatistics stats;
            stats.received = received.data();
            if (old) avx512bf16_old::fused_attention(head, n, head_dim, 0.17f, stats);
            else avx512bf16_new::fused_attention(head, n, head_dim, 0.17f, stats);
          }
          times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
        }
        std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
        return times[times.size() / 2];
      };
      double old_us = 0, new_us = 0;
      for (int round = 0; round < 5; ++round) {
        old_us += median_us(true);
        new_us += median_us(false);
      }
      std::printf("head_dim %3ld tokens %3ld heads %2ld: old %8.1f us  new %8.1f us  old/new %.2f\n", head_dim, n, calls,
                  old_us / 5, new_us / 5, old_us / new_us);
    }
  }
}
