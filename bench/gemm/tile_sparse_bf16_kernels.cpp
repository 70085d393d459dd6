// Which bf16 tile kernel from how many rows: AVX-512 BF16 against AMX on the same tiles (80 % of
// MiniLM's 16 x 16 tiles pruned at random), one thread, cache-hot, best of 7 x 200 calls. This sets
// kAmxMinRows in kernels/tile_sparse_gemm.cpp.
//   cmake --build build --target sieve_tile_sparse_bf16_kernels && build/sieve_tile_sparse_bf16_kernels
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/tile_sparse_gemm.h"

using namespace sieve;

int main() {
  if (!amx::available()) {
    std::fprintf(stderr, "this CPU (or kernel) gives no AMX-BF16: nothing to compare\n");
    return 1;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> value(0.0f, 0.05f);
  std::bernoulli_distribution pruned(0.8);
  struct Shape {
    const char* name;
    int64_t k, n;
  };
  std::printf("%-8s %4s %14s %8s %8s\n", "weight", "rows", "avx512bf16_us", "amx_us", "amx");
  for (const Shape shape : {Shape{"qkv", 384, 1152}, Shape{"ffn_in", 384, 1536}, Shape{"ffn_out", 1536, 384}}) {
    Tensor w({shape.k, shape.n});
    for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = value(rng);
    for (int64_t k0 = 0; k0 < shape.k; k0 += 16)
      for (int64_t j0 = 0; j0 < shape.n; j0 += 16)
        if (pruned(rng))
          for (int64_t r = k0; r < k0 + 16; ++r) std::fill(w.row(r) + j0, w.row(r) + j0 + 16, 0.0f);
    TileSparseMatrix sparse = to_tile_sparse(w, 16);
    add_bf16_tiles(sparse);
    for (const int64_t m : {1, 2, 4, 8, 12, 16, 25, 32}) {
      std::vector<uint16_t> a(static_cast<size_t>((m + 15) / 16 * 16 * shape.k), 0x3f00);  // 0.5, padded as Bf16Rows asks
      std::vector<float> c(static_cast<size_t>(m * shape.n));
      const auto us_per_call = [&](auto kernel) {
        double best = 1e30;
        for (int round = 0; round < 7; ++round) {
          const auto start = std::chrono::steady_clock::now();
          for (int i = 0; i < 200; ++i)
            kernel(m, Bf16Rows{a.data(), shape.k}, sparse, TileBlock{0, shape.k, 0, shape.n}, 0, sparse.column_blocks(),
                   c.data(), shape.n, false);
          best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / 200);
        }
        return best;
      };
      const double vnni = us_per_call(avx512bf16::tile_sparse_blocks_bf16), amx = us_per_call(amx::tile_sparse_blocks_bf16);
      std::printf("%-8s %4ld %14.2f %8.2f %7.2fx\n", shape.name, static_cast<long>(m), vnni, amx, vnni / amx);
    }
  }
}
