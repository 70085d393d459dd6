// Is Debian's oneDNN 2.6 the limit? The same fixed-shape matmuls Sieve runs (weights packed once
// into the layout oneDNN picks, rows x K x N of MiniLM-L6 and BERT-base-sized layers) in u8 x s8 ->
// s32, bf16 -> f32 and f32, built once against Debian's libdnnl-dev (2.6) and once against a newer
// oneDNN (PyPI `onednn-cpu-gomp` + `onednn-devel-cpu-gomp` 2023.2.0 = oneDNN 3.2, GNU OpenMP like
// Sieve; the newest PyPI `onednn` 2026.1 is a SYCL/TBB build, which cannot share Sieve's OpenMP).
// Not part of the build:
//   g++ -std=c++20 -O2 bench/gemm/onednn_version_probe.cpp -ldnnl -o probe26
//   g++ -std=c++20 -O2 -I$V3/include bench/gemm/onednn_version_probe.cpp -L$V3LIB -ldnnl \
//       -Wl,-rpath,$V3LIB -o probe32            # $V3, $V3LIB: the two wheels unpacked
//   OMP_NUM_THREADS=2 ./probe26; OMP_NUM_THREADS=2 ./probe32    # median us of 30 runs per cell
#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>
using dt = dnnl::memory::data_type; using tag = dnnl::memory::format_tag;
static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
double run(dt a_t, dt w_t, dt c_t, long m, long k, long n, int reps) {
  dnnl::memory::desc a({m, k}, a_t, tag::ab), w({k, n}, w_t, tag::any), c({m, n}, c_t, tag::ab);
#if DNNL_VERSION_MAJOR >= 3
  dnnl::matmul::primitive_desc pd(eng, a, w, c);
#else
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, w, c), eng);
#endif
  dnnl::matmul prim(pd);
  dnnl::memory am(a, eng), wm(pd.weights_desc(), eng), cm(c, eng);
  std::memset(am.get_data_handle(), 1, a.get_size()); std::memset(wm.get_data_handle(), 1, pd.weights_desc().get_size());
  dnnl::stream s(eng);
  std::vector<double> t;
  for (int r = 0; r < reps + 3; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    prim.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, cm}}); s.wait();
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (r >= 3) t.push_back(us);
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}
int main() {
  const long ms[] = {32, 128, 384, 1024, 4096};
  const long kn[][2] = {{384, 384}, {384, 1536}, {1536, 384}, {768, 768}, {768, 3072}, {3072, 768}};
  for (auto& p : kn) for (long m : ms) {
    double s8 = run(dt::u8, dt::s8, dt::s32, m, p[0], p[1], 30);
    double bf = run(dt::bf16, dt::bf16, dt::f32, m, p[0], p[1], 30);
    double f32 = run(dt::f32, dt::f32, dt::f32, m, p[0], p[1], 30);
    std::printf("%5ld %5ld %5ld  u8s8 %9.1f  bf16 %9.1f  f32 %9.1f us\n", m, p[0], p[1], s8, bf, f32);
  }
}
