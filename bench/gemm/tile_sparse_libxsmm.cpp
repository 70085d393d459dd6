// LIBXSMM (Debian's libxsmm-dev 1.17) against Sieve's tile-sparse GEMM and oneDNN's dense sgemm, on
// the same tile-pruned weights (issue 22 asked for a well-kept library if one does the job well).
// LIBXSMM's sparse-weights entry point is fsspmdm ("fixed sparsity sparse x dense"): the sparse
// matrix is given once in dense storage, its non-zeros are compiled into a kernel, and it computes
// C[M, N] = A[M, K] B[K, N], all row-major, vectorized along N. For a layer's weights that means
// A = W [out, in], B = X^T [in, tokens] and C = Y^T [out, tokens]: the activations transposed, which
// an encoder would have to pay for and is not timed here (in LIBXSMM's favour). One thread for
// every engine: fsspmdm runs on the calling thread. N (the tokens) is fixed when the kernel is made,
// and making one takes seconds and grows about with the square of the non-zeros (384 x 384: 0.35 s
// at 90 % zero tiles, 10.5 s at 50 %), so only 80 and 90 % are run, at 16 and 208 rows; the time to
// make each kernel is printed, and which kernel create() kept: it times its sparse kernels against
// a dense one on the spot and keeps the fastest (the handle keeps a dense copy of A only then).
//
// Not part of the build or of CI (libxsmm-dev is not a dependency of Sieve):
//   apt-get install libxsmm-dev && cmake --build build --target sieve_core && \
//   g++ -O3 -march=native -std=c++20 -fopenmp -Isrc -I/usr/include/libxsmm bench/gemm/tile_sparse_libxsmm.cpp build/libsieve_core.a \
//       -lxsmm -lxsmmnoblas -ldnnl -lpthread -ldl -o build/tile_sparse_libxsmm && \
//   OMP_NUM_THREADS=1 build/tile_sparse_libxsmm [tile_k]
#include <libxsmm.h>
#include <libxsmm/libxsmm_main.h>  // the handle's fields: which kernel create() kept
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/tile_sparse_gemm.h"
#include "tile_sparse_bench_util.h"

using namespace sieve;
using namespace sieve::bench;

int main(int argc, char** argv) {
  const int64_t tile_k = argc > 1 ? std::atoi(argv[1]) : 16;
  libxsmm_init();
  const int rounds = 5;
  std::mt19937 rng(1);
  std::printf("threads %d, fp32, tile %ldx16 (inputs x outputs); ms per call, median of %d interleaved rounds; "
              "max |difference| to the dense product in the last column\n",
              omp_get_max_threads(), static_cast<long>(tile_k), rounds);
  std::printf("%-9s %5s %8s %9s %9s %9s %12s %12s %9s %10s %11s\n", "weight", "rows", "sparsity", "dense_ms", "sieve_ms", "xsmm_ms",
              "sieve_speedup", "xsmm_speedup", "xsmm_err", "xsmm_make_s", "xsmm_kernel");
  for (const int64_t m : {16, 208})  // rows (tokens): multiples of 16, fsspmdm's vector width
    for (const WeightShape& shape : kMiniLmWeights)
      for (const double sparsity : {0.8, 0.9}) {
        const Tensor wt = pruned_weight(shape.k, shape.n, tile_k, sparsity, rng);  // [in, out]
        const TileSparseMatrix sparse = to_tile_sparse(wt, tile_k);
        // LIBXSMM's operands: W [out, in] and X^T [in, tokens].
        std::vector<float> w(static_cast<size_t>(shape.n * shape.k));
        for (int64_t i = 0; i < shape.k; ++i)
          for (int64_t j = 0; j < shape.n; ++j) w[static_cast<size_t>(j * shape.k + i)] = wt.row(i)[j];
        std::vector<float> a(static_cast<size_t>(m * shape.k)), at(a.size());
        std::uniform_real_distribution<float> act(-1.0f, 1.0f);
        for (float& v : a) v = act(rng);
        for (int64_t r = 0; r < m; ++r)
          for (int64_t i = 0; i < shape.k; ++i) at[static_cast<size_t>(i * m + r)] = a[static_cast<size_t>(r * shape.k + i)];
        std::vector<float> c(static_cast<size_t>(m * shape.n)), ct(c.size()), reference(c.size());
        const auto made = std::chrono::steady_clock::now();
        libxsmm_sfsspmdm* xsmm = libxsmm_sfsspmdm_create(shape.n, m, shape.k, shape.k, m, m, 1.0f, 0.0f, 0, w.data());
        const double make_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - made).count();
        if (!xsmm) {
          std::printf("%-9s %5ld %8.2f  libxsmm_sfsspmdm_create failed\n", shape.name, static_cast<long>(m), sparsity);
          continue;
        }
        gemm(m, shape.n, shape.k, {a.data(), shape.k}, {wt.data(), shape.n}, reference.data(), shape.n);
        libxsmm_sfsspmdm_execute(xsmm, at.data(), ct.data());
        double err = 0;
        for (int64_t r = 0; r < m; ++r)
          for (int64_t j = 0; j < shape.n; ++j)
            err = std::max(err, static_cast<double>(std::abs(ct[static_cast<size_t>(j * m + r)] - reference[static_cast<size_t>(r * shape.n + j)])));
        const int calls = std::max<int>(3, static_cast<int>(1e8 / (2.0 * m * shape.k * shape.n + 1e6)));
        std::vector<double> dense_ms, sieve_ms, xsmm_ms;
        for (int r = 0; r < rounds + 1; ++r) {
          const double d = ms_per_call([&] { gemm(m, shape.n, shape.k, {a.data(), shape.k}, {wt.data(), shape.n}, c.data(), shape.n); }, calls);
          const double s = ms_per_call([&] { gemm_tile_sparse(m, {a.data(), shape.k}, sparse, c.data(), shape.n); }, calls);
          const double x = ms_per_call([&] { libxsmm_sfsspmdm_execute(xsmm, at.data(), ct.data()); }, calls);
          if (r > 0) dense_ms.push_back(d), sieve_ms.push_back(s), xsmm_ms.push_back(x);  // round 0 warms up
        }
        const char* kept = xsmm->a_dense ? "dense" : "sparse";
        libxsmm_sfsspmdm_destroy(xsmm);
        const double dm = median(dense_ms), sm = median(sieve_ms), xm = median(xsmm_ms);
        std::printf("%-9s %5ld %8.2f %9.4f %9.4f %9.4f %11.2fx %11.2fx %9.2e %10.2f %11s\n", shape.name, static_cast<long>(m),
                    sparse.sparsity(), dm, sm, xm, dm / sm, dm / xm, err, make_s, kept);
        std::fflush(stdout);
      }
  libxsmm_finalize();
}
