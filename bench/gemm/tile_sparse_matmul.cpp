// The tile-sparse GEMM (kernels/tile_sparse_gemm.h) against Sieve's dense sgemm (oneDNN) on the
// same weights, at MiniLM-L6's layer shapes, rows of a short sentence (25), a batch of them and a
// long input, and tile sparsities 0-90 %: where the sparse path starts to pay (the crossover the
// encoder's --tile-sparse auto uses) and how far below 1 / (1 - sparsity) it stays.
// Interleaved: each round times dense then sparse; the median of rounds per cell, ms per call.
// With `bf16`, both sides are the --precision bf16 products: oneDNN's bf16 GEMM on the packed
// weight (what the encoder runs) against gemm_tile_sparse_bf16.
//   cmake --build build --target sieve_tile_sparse_bench && OMP_NUM_THREADS=2 build/sieve_tile_sparse_bench [tile_k] [fp32|bf16]
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/tile_sparse_gemm.h"
#include "tile_sparse_bench_util.h"

using namespace sieve;
using namespace sieve::bench;

int main(int argc, char** argv) {
  const int64_t tile_k = argc > 1 ? std::atoi(argv[1]) : 16;
  const bool bf16 = argc > 2 && std::string(argv[2]) == "bf16";
  if (argc > 2 && !bf16 && std::string(argv[2]) != "fp32") {
    std::fprintf(stderr, "usage: %s [tile_k] [fp32|bf16]\n", argv[0]);
    return 2;
  }
  const int rounds = 5;
  std::mt19937 rng(1);
  std::printf("threads %d, %s, tile %ldx16 (inputs x outputs); ms per call, median of %d interleaved rounds\n",
              omp_get_max_threads(), bf16 ? "bf16" : "fp32", static_cast<long>(tile_k), rounds);
  std::printf("%-9s %5s %8s %9s %9s %8s %8s\n", "weight", "rows", "sparsity", "dense_ms", "sparse_ms", "speedup", "ideal");
  for (const int64_t m : {1, 25, 200, 800})
    for (const WeightShape& shape : kMiniLmWeights)
      for (const double sparsity : {0.0, 0.5, 0.7, 0.8, 0.9}) {
        const Tensor w = pruned_weight(shape.k, shape.n, tile_k, sparsity, rng);
        TileSparseMatrix sparse = to_tile_sparse(w, tile_k);
        if (bf16) add_bf16_tiles(sparse);
        const Bf16Matrix w16 = bf16 ? to_bf16(w) : Bf16Matrix{};
        std::vector<float> a(static_cast<size_t>(m * shape.k), 0.5f), c(static_cast<size_t>(m * shape.n));
        const int calls = std::max<int>(3, static_cast<int>(2e8 / (2.0 * m * shape.k * shape.n + 1e6)));
        std::vector<double> dense_ms, sparse_ms;
        for (int r = 0; r < rounds + 1; ++r) {
          const double d = ms_per_call([&] {
            if (bf16) gemm_bf16(m, shape.n, shape.k, {a.data(), shape.k}, {w16.row(0), shape.n, w16.packed.get()}, c.data(), shape.n);
            else gemm(m, shape.n, shape.k, {a.data(), shape.k}, {w.data(), shape.n}, c.data(), shape.n);
          }, calls);
          const double s = ms_per_call([&] {
            if (bf16) gemm_tile_sparse_bf16(m, {a.data(), shape.k}, sparse, c.data(), shape.n);
            else gemm_tile_sparse(m, {a.data(), shape.k}, sparse, c.data(), shape.n);
          }, calls);
          if (r > 0) dense_ms.push_back(d), sparse_ms.push_back(s);  // round 0 warms up
        }
        const double dm = median(dense_ms), sm = median(sparse_ms);
        std::printf("%-9s %5ld %8.2f %9.4f %9.4f %7.2fx %7.2fx\n", shape.name, static_cast<long>(m), sparse.sparsity(), dm, sm,
                    dm / sm, 1.0 / std::max(0.01, 1.0 - sparse.sparsity()));
        std::fflush(stdout);
      }
}
