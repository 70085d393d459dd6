// GEMM library microbenchmark for Sieve's linear layers.
//
//   C[M,N] = A[M,K] * W^T,  A row-major [M,K], W row-major [N,K] (nn.Linear layout), fp32.
//
// One executable per backend (selected at compile time with -DGEMM_BACKEND_<NAME>), because
// the OpenBLAS pthread / OpenMP variants export the same symbols and cannot share a process.
//
// Modes (see GEMM-CHOICE.md for the full recipe):
//   --mode info                 print which kernel/arch the library picked, then exit
//   --mode perf                 GFLOP/s for every (M,K,N), 1 and 2 threads -> CSV on stdout
//   --mode interop              GEMM alternating with an OpenMP loop (engine pattern) -> CSV
//   --summarize a.csv b.csv ... merge CSVs of several runs/rounds into markdown tables
//   --compare DIR               pairwise max error between the row samples written by --dump DIR
//
// CSV rows (no header): perf,label,threads,M,K,N,gflops_med,gflops_p25,gflops_p75,gflops_max,relerr,bg
//                       interop,label,threads,M,K,N,gemm_us,omp_us,alt_us,overhead_pct,0,bg
// bg = share of the CPUs this row's threads needed that other processes used meanwhile (noise
// marker, 0 = undisturbed); --quiet-wait S first waits up to S seconds for an idle machine.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <omp.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

#if defined(GEMM_BACKEND_OPENBLAS)
#include <cblas.h>
extern "C" char *openblas_get_corename(void);
extern "C" char *openblas_get_config(void);
extern "C" int openblas_get_parallel(void);
#elif defined(GEMM_BACKEND_BLIS)
#include <blis.h>
#elif defined(GEMM_BACKEND_DNNL_SGEMM) || defined(GEMM_BACKEND_DNNL_MATMUL)
#include <oneapi/dnnl/dnnl.hpp>
#elif defined(GEMM_BACKEND_EIGEN)
#include <Eigen/Core>
#else
#error "define one GEMM_BACKEND_*"
#endif

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct AlignedBuf {
  float *p = nullptr;
  size_t n = 0;
  explicit AlignedBuf(size_t count) : n(count) {
    size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
    p = static_cast<float *>(std::aligned_alloc(64, bytes ? bytes : 64));
    if (!p) { std::fprintf(stderr, "out of memory\n"); std::exit(1); }
  }
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf &) = delete;
  AlignedBuf &operator=(const AlignedBuf &) = delete;
};

// Deterministic inputs in [-1, 1): identical across backends so outputs can be compared.
void fill(float *x, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = static_cast<float>(static_cast<double>(s >> 40) / static_cast<double>(1ull << 24) * 2.0 - 1.0);
  }
}

std::vector<int> sample_rows(int M) {
  std::vector<int> r = {0, M / 3, (2 * M) / 3, M - 1};
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

// Normwise error of the sampled rows against an fp64 reference: max|c-ref| / max|ref|.
double check_rows(const float *A, const float *W, const float *C, int M, int K, int N) {
  double max_err = 0, max_ref = 0;
  for (int i : sample_rows(M)) {
    for (int j = 0; j < N; ++j) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += double(A[size_t(i) * K + k]) * double(W[size_t(j) * K + k]);
      max_err = std::max(max_err, std::fabs(acc - double(C[size_t(i) * N + j])));
      max_ref = std::max(max_ref, std::fabs(acc));
    }
  }
  return max_ref > 0 ? max_err / max_ref : max_err;
}

// --wt: the CBLAS-style backends get the weights pre-transposed once to W^T [K,N] row-major
// and compute the NN product instead of NT (the oneDNN matmul picks its own layout anyway).
bool g_pretranspose = false;

struct PreTransposed {  // owns W^T [K,N] when --wt is given
  std::vector<float> wt;
  const float *init(const float *W, int K, int N) {
    if (!g_pretranspose) return W;
    wt.resize(size_t(K) * N);
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) wt[size_t(k) * N + n] = W[size_t(n) * K + k];
    return wt.data();
  }
};

// ---------------------------------------------------------------------------------------------
// Backends. Each provides: backend_name(), backend_info(), set_threads(n), and a Gemm object
// created once per (M,K,N,threads) -- where weight pre-packing may happen -- then run() repeatedly.
// ---------------------------------------------------------------------------------------------
#if defined(GEMM_BACKEND_OPENBLAS)
const char *backend_name() { return openblas_get_parallel() == 2 ? "openblas-omp" : "openblas-pthread"; }
std::string backend_info() {
  const char *ct = std::getenv("OPENBLAS_CORETYPE");
  return std::string("core=") + openblas_get_corename() + " coretype_env=" + (ct ? ct : "(unset)") +
         " parallel=" + std::to_string(openblas_get_parallel()) + " config=" + openblas_get_config();
}
void set_threads(int n) {
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}
struct Gemm {
  int M, K, N;
  const float *A, *W;
  float *C;
  PreTransposed pt;
  Gemm(int m, int k, int n, const float *a, const float *w, float *c) : M(m), K(k), N(n), A(a), C(c) {
    W = pt.init(w, K, N);
  }
  void run() {
    if (g_pretranspose)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, W, N, 0.0f, C, N);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
  }
};
#elif defined(GEMM_BACKEND_BLIS)
const char *backend_name() { return "blis"; }
std::string backend_info() {
  const char *at = std::getenv("BLIS_ARCH_TYPE");
  return std::string("arch=") + bli_arch_string(bli_arch_query_id()) + " BLIS_ARCH_TYPE=" + (at ? at : "(unset)") +
         " version=" + bli_info_get_version_str();
}
void set_threads(int n) {
  bli_thread_set_num_threads(n);
  omp_set_num_threads(n);
}
struct Gemm {
  int M, K, N;
  float *A, *W, *C;
  Gemm(int m, int k, int n, const float *a, const float *w, float *c)
      : M(m), K(k), N(n), A(const_cast<float *>(a)), W(const_cast<float *>(w)), C(c) {}
  void run() {
    float one = 1.0f, zero = 0.0f;
    // Native BLIS API with general strides: A (M x K, rs=K, cs=1), W^T (K x N, rs=1, cs=K).
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, M, N, K, &one, A, K, 1, W, K, 1, &zero, C, N, 1);
  }
};
#elif defined(GEMM_BACKEND_DNNL_SGEMM)
const char *backend_name() { return "dnnl-sgemm"; }
std::string backend_info() {
  const dnnl_version_t *v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
         " cpu_runtime=" + std::to_string(v->cpu_runtime) + " isa=" + std::to_string(int(dnnl::get_effective_cpu_isa()));
}
void set_threads(int n) { omp_set_num_threads(n); }
struct Gemm {
  int M, K, N;
  const float *A, *W;
  float *C;
  PreTransposed pt;
  Gemm(int m, int k, int n, const float *a, const float *w, float *c) : M(m), K(k), N(n), A(a), C(c) {
    W = pt.init(w, K, N);
  }
  void run() {
    // dnnl_sgemm is row-major: C = A * B^T with B = W [N,K], ldb = K (or A * W^T with --wt).
    if (g_pretranspose)
      dnnl_sgemm('N', 'N', M, N, K, 1.0f, A, K, W, N, 0.0f, C, N);
    else
      dnnl_sgemm('N', 'T', M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
  }
};
#elif defined(GEMM_BACKEND_DNNL_MATMUL)
#ifdef GEMM_DNNL_RUNTIME_M
const char *backend_name() { return "dnnl-matmul-rtM"; }
#else
const char *backend_name() { return "dnnl-matmul"; }
#endif
std::string backend_info() {
  const dnnl_version_t *v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
         " cpu_runtime=" + std::to_string(v->cpu_runtime) + " isa=" + std::to_string(int(dnnl::get_effective_cpu_isa()));
}
void set_threads(int n) { omp_set_num_threads(n); }
dnnl::engine &eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
struct Gemm {
  using md = dnnl::memory::desc;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  dnnl::stream strm{eng()};
  dnnl::matmul prim;
  dnnl::memory a_mem, w_mem, c_mem;
  std::string impl;
  double setup_ms = 0;
  // Primitive for a fixed M (created once per M and thread count, as the engine would cache it);
  // W [N,K] row-major is the {K,N} tensor in "ba" layout, reordered once to the primitive's choice.
  Gemm(int M, int K, int N, const float *A, const float *W, float *C) {
    auto t0 = Clock::now();
    md a_md({M, K}, dt::f32, tag::ab), c_md({M, N}, dt::f32, tag::ab);
    md w_any({K, N}, dt::f32, tag::any), w_user({K, N}, dt::f32, tag::ba);
#ifdef GEMM_DNNL_RUNTIME_M
    // Variant: one primitive for every M (M given at execution time), as a shape-agnostic engine would.
    md a_pd({DNNL_RUNTIME_DIM_VAL, K}, dt::f32, tag::ab), c_pd({DNNL_RUNTIME_DIM_VAL, N}, dt::f32, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_pd, w_any, c_pd), eng());
#else
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, w_any, c_md), eng());
#endif
    prim = dnnl::matmul(pd);
    a_mem = dnnl::memory(a_md, eng(), const_cast<float *>(A));
    c_mem = dnnl::memory(c_md, eng(), C);
    dnnl::memory w_user_mem(w_user, eng(), const_cast<float *>(W));
    md w_pref = pd.weights_desc();
    if (w_pref == w_user) {
      w_mem = w_user_mem;
    } else {
      w_mem = dnnl::memory(w_pref, eng());
      dnnl::reorder(w_user_mem, w_mem).execute(strm, w_user_mem, w_mem);
      strm.wait();
    }
    setup_ms = seconds_since(t0) * 1e3;
    const auto &b = w_pref.data.format_desc.blocking;
    std::ostringstream os;
    os << pd.impl_info_str() << " w_strides=" << b.strides[0] << "," << b.strides[1] << " w_inner=";
    for (int i = 0; i < b.inner_nblks; ++i) os << (i ? "x" : "") << b.inner_blks[i] << "@" << b.inner_idxs[i];
    os << " setup_ms=" << setup_ms;
    impl = os.str();
  }
  void run() {
    prim.execute(strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, c_mem}});
    strm.wait();
  }
};
#elif defined(GEMM_BACKEND_EIGEN)
const char *backend_name() { return "eigen"; }
std::string backend_info() {
  return std::string("Eigen ") + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION) + " simd=" + Eigen::SimdInstructionSetsInUse();
}
void set_threads(int n) {
  omp_set_num_threads(n);
  Eigen::setNbThreads(n);
}
struct Gemm {
  using RM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RM> a, w;
  Eigen::Map<RM> c;
  Gemm(int M, int K, int N, const float *A, const float *W, float *C) : a(A, M, K), w(W, N, K), c(C, M, N) {}
  void run() { c.noalias() = a * w.transpose(); }
};
#endif

// ---------------------------------------------------------------------------------------------
struct Options {
  std::string mode = "perf";
  std::string label;
  std::vector<int> threads = {2, 1};
  std::vector<int> ms = {32, 128, 384, 1024, 3072};
  std::vector<std::pair<int, int>> kn = {{384, 384},  {384, 1152}, {384, 1536}, {1536, 384},
                                         {768, 768},  {768, 2304}, {768, 3072}, {3072, 768}};
  int reps = 7;
  double min_sample_s = 0.02;
  double warmup_s = 0.1;
  std::string dump_dir;
  double quiet_wait_s = 0.0;
};

std::vector<int> parse_ints(const std::string &s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) v.push_back(std::stoi(tok));
  return v;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  double pos = q * (v.size() - 1);
  size_t lo = size_t(pos), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

// Times f() per call: warmup, then `reps` samples of >= min_sample_s each; returns per-call seconds.
template <class F>
std::vector<double> time_calls(F &&f, const Options &o) {
  auto t0 = Clock::now();
  int calls = 0;
  do { f(); ++calls; } while (calls < 3 || seconds_since(t0) < o.warmup_s);
  double per_call = seconds_since(t0) / calls;
  int inner = std::max(1, int(o.min_sample_s / std::max(per_call, 1e-9)));
  std::vector<double> samples;
  for (int r = 0; r < o.reps; ++r) {
    auto t = Clock::now();
    for (int i = 0; i < inner; ++i) f();
    samples.push_back(seconds_since(t) / inner);
  }
  return samples;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a;
  f >> a;
  return a;
}

// Background CPU load: CPU time used by *other* processes during a window, as a fraction of all
// CPUs (our own process's time, spinning threads included, is subtracted via getrusage).
struct CpuSnap {
  double busy_s = 0, self_s = 0;
  Clock::time_point t;
};
CpuSnap cpu_snap() {
  CpuSnap s;
  s.t = Clock::now();
  std::ifstream f("/proc/stat");
  std::string cpu;
  double v[8] = {};
  f >> cpu;
  for (double &x : v) f >> x;  // user nice system idle iowait irq softirq steal
  static const double hz = double(sysconf(_SC_CLK_TCK));
  s.busy_s = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  s.self_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
  return s;
}
double background_frac(const CpuSnap &a, const CpuSnap &b) {
  static const double ncpu = double(sysconf(_SC_NPROCESSORS_ONLN));
  double wall = std::chrono::duration<double>(b.t - a.t).count();
  if (wall <= 0) return 0;
  return std::clamp(((b.busy_s - a.busy_s) - (b.self_s - a.self_s)) / (wall * ncpu), 0.0, 1.0);
}
// Share of the CPUs our `threads` threads need that other processes took: background load beyond
// the CPUs we leave idle (at 1 thread on 2 cores, others may use one core without contending).
double contention(const CpuSnap &a, const CpuSnap &b, int threads) {
  static const double ncpu = double(sysconf(_SC_NPROCESSORS_ONLN));
  double others = background_frac(a, b) * ncpu;
  return std::clamp((others - std::max(0.0, ncpu - threads)) / std::min<double>(threads, ncpu), 0.0, 1.0);
}
// Waits (up to max_wait_s) for a 100 ms window in which other processes use < 10% of the CPUs.
void wait_quiet(double max_wait_s) {
  auto t0 = Clock::now();
  while (seconds_since(t0) < max_wait_s) {
    CpuSnap a = cpu_snap();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (background_frac(a, cpu_snap()) < 0.10) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void run_perf(const Options &o) {
  std::string label = o.label.empty() ? backend_name() : o.label;
  std::fprintf(stderr, "# %s: %s loadavg=%s\n", label.c_str(), backend_info().c_str(), loadavg().c_str());
  if (!o.dump_dir.empty()) std::filesystem::create_directories(o.dump_dir);
  for (auto [K, N] : o.kn) {
    AlignedBuf W(size_t(N) * K);
    fill(W.p, W.n, 1000 + K * 7 + N);
    for (int M : o.ms) {
      AlignedBuf A(size_t(M) * K), C(size_t(M) * N);
      fill(A.p, A.n, 2000 + M * 13 + K);
      for (int t : o.threads) {
        set_threads(t);
        std::memset(C.p, 0, C.n * sizeof(float));
        Gemm g(M, K, N, A.p, W.p, C.p);
#if defined(GEMM_BACKEND_DNNL_MATMUL)
        if (t == o.threads.front())
          std::fprintf(stderr, "# %s K=%d N=%d M=%d: %s\n", label.c_str(), K, N, M, g.impl.c_str());
#endif
        wait_quiet(o.quiet_wait_s);
        CpuSnap c0 = cpu_snap();
        auto s = time_calls([&] { g.run(); }, o);
        double bg = contention(c0, cpu_snap(), t);
        double flop = 2.0 * M * N * K;
        std::vector<double> gf;
        for (double x : s) gf.push_back(flop / x * 1e-9);
        double err = check_rows(A.p, W.p, C.p, M, K, N);
        std::printf("perf,%s,%d,%d,%d,%d,%.2f,%.2f,%.2f,%.2f,%.3g,%.3f\n", label.c_str(), t, M, K, N,
                    percentile(gf, 0.5), percentile(gf, 0.25), percentile(gf, 0.75), percentile(gf, 1.0), err, bg);
        std::fflush(stdout);
        if (!o.dump_dir.empty() && t == o.threads.front()) {
          std::ofstream f(o.dump_dir + "/" + label + "_" + std::to_string(M) + "_" + std::to_string(K) + "_" +
                              std::to_string(N) + ".f32",
                          std::ios::binary);
          for (int i : sample_rows(M))
            f.write(reinterpret_cast<const char *>(C.p + size_t(i) * N), sizeof(float) * N);
        }
      }
    }
  }
  std::fprintf(stderr, "# %s done loadavg=%s\n", label.c_str(), loadavg().c_str());
}

// Engine pattern: GEMM, then an OpenMP parallel loop over its output (bias + leaky activation), repeated.
// Reports per-iteration time of GEMM alone, OpenMP loop alone, and the two alternating.
void run_interop(const Options &o) {
  std::string label = o.label.empty() ? backend_name() : o.label;
  const char *wp = std::getenv("OMP_WAIT_POLICY");
  std::fprintf(stderr, "# %s interop: %s OMP_WAIT_POLICY=%s loadavg=%s\n", label.c_str(), backend_info().c_str(),
               wp ? wp : "(unset)", loadavg().c_str());
  for (auto [K, N] : o.kn) {
    AlignedBuf W(size_t(N) * K), bias(N);
    fill(W.p, W.n, 1000 + K * 7 + N);
    fill(bias.p, bias.n, 77);
    for (int M : o.ms) {
      AlignedBuf A(size_t(M) * K), C(size_t(M) * N);
      fill(A.p, A.n, 2000 + M * 13 + K);
      for (int t : o.threads) {
        set_threads(t);
        Gemm g(M, K, N, A.p, W.p, C.p);
        float *c = C.p;
        const float *b = bias.p;
        auto omp_loop = [&] {
#pragma omp parallel for schedule(static) num_threads(t)
          for (int i = 0; i < M; ++i) {
            float *row = c + size_t(i) * N;
            for (int j = 0; j < N; ++j) {
              float x = row[j] + b[j];
              row[j] = x > 0.0f ? x : 0.125f * x;  // cheap, vectorised: bandwidth-bound like bias/act/residual
            }
          }
        };
        wait_quiet(o.quiet_wait_s);
        CpuSnap c0 = cpu_snap();
        auto sg = time_calls([&] { g.run(); }, o);
        auto so = time_calls(omp_loop, o);
        auto sa = time_calls([&] { g.run(); omp_loop(); }, o);
        double tg = percentile(sg, 0.5) * 1e6, to = percentile(so, 0.5) * 1e6, ta = percentile(sa, 0.5) * 1e6;
        double bg = contention(c0, cpu_snap(), t);
        std::printf("interop,%s,%d,%d,%d,%d,%.1f,%.1f,%.1f,%.1f,0,%.3f\n", label.c_str(), t, M, K, N, tg, to, ta,
                    (ta / (tg + to) - 1.0) * 100.0, bg);
        std::fflush(stdout);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// --summarize: per (library, threads, shape), the median over runs of the per-run medians, using
// only runs measured while other processes took < 15% of our threads' CPUs (bg column) if any;
// cells marked '~' had no quiet run and use all runs.
constexpr double kQuietBg = 0.15;
struct Row {
  std::string mode, label;
  int t, M, K, N;
  double v[5];
  double bg;
};
using Key = std::tuple<std::string, int, int, int, int>;  // label,t,M,K,N

// Values of field i over the quiet runs (or all runs if none is quiet); sets *noisy.
std::vector<double> pick(const std::vector<const Row *> &rs, int i, bool *noisy) {
  std::vector<double> q, all;
  for (auto *r : rs) {
    all.push_back(r->v[i]);
    if (r->bg < kQuietBg) q.push_back(r->v[i]);
  }
  *noisy = q.empty();
  return q.empty() ? all : q;
}

int summarize(const std::vector<std::string> &files) {
  std::vector<Row> rows;
  for (auto &fn : files) {
    std::ifstream f(fn);
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("perf,", 0) != 0 && line.rfind("interop,", 0) != 0) continue;
      std::stringstream ss(line);
      std::vector<std::string> c;
      std::string tok;
      while (std::getline(ss, tok, ',')) c.push_back(tok);
      if (c.size() < 11) continue;
      Row r{c[0], c[1], std::stoi(c[2]), std::stoi(c[3]), std::stoi(c[4]), std::stoi(c[5]), {}, 0};
      for (int i = 0; i < 5; ++i) r.v[i] = std::stod(c[6 + i]);
      r.bg = c.size() > 11 ? std::stod(c[11]) : 0;
      rows.push_back(r);
    }
  }
  std::vector<std::string> labels, ilabels;
  std::map<Key, std::vector<const Row *>> perf, inter;
  std::map<int, int> tset;
  std::vector<std::tuple<int, int, int>> shapes;
  for (auto &r : rows) {
    auto &lab = r.mode == "perf" ? labels : ilabels;
    if (std::find(lab.begin(), lab.end(), r.label) == lab.end()) lab.push_back(r.label);
    (r.mode == "perf" ? perf : inter)[{r.label, r.t, r.M, r.K, r.N}].push_back(&r);
    if (r.mode != "perf") continue;
    tset[r.t] = 1;
    auto s = std::make_tuple(r.K, r.N, r.M);
    if (std::find(shapes.begin(), shapes.end(), s) == shapes.end()) shapes.push_back(s);
  }
  std::sort(shapes.begin(), shapes.end());
  for (auto it = tset.rbegin(); it != tset.rend(); ++it) {
    int t = it->first;
    std::printf("\n### Median GFLOP/s, %d thread%s\n\n| K x N | M |", t, t > 1 ? "s" : "");
    for (auto &l : labels) std::printf(" %s |", l.c_str());
    std::printf("\n|---|---:|");
    for (size_t i = 0; i < labels.size(); ++i) std::printf("---:|");
    std::printf("\n");
    std::map<std::string, std::vector<double>> logs;
    for (auto [K, N, M] : shapes) {
      std::printf("| %dx%d | %d |", K, N, M);
      double best = 0;
      std::vector<std::pair<double, bool>> cells;
      for (auto &l : labels) {
        auto f = perf.find({l, t, M, K, N});
        double med = 0;
        bool noisy = false;
        if (f != perf.end()) {
          med = percentile(pick(f->second, 0, &noisy), 0.5);
          logs[l].push_back(std::log(med));
        }
        cells.push_back({med, noisy});
        best = std::max(best, med);
      }
      for (auto [m, noisy] : cells) {
        if (m <= 0) std::printf(" - |");
        else std::printf(m == best ? " **%.1f**%s |" : " %.1f%s |", m, noisy ? "~" : "");
      }
      std::printf("\n");
    }
    std::printf("| **geomean** | |");
    for (auto &l : labels) {
      double s = 0;
      for (double x : logs[l]) s += x;
      std::printf(" %.1f |", logs[l].empty() ? 0.0 : std::exp(s / logs[l].size()));
    }
    std::printf("\n");
  }
  std::printf("\n### Noise and accuracy\n\n| library | runs | rows with a quiet run | median run-to-run spread |"
              " median in-run IQR | max rel err |\n|---|---:|---:|---:|---:|---:|\n");
  for (auto &l : labels) {
    std::vector<double> spread, iqr;
    double maxerr = 0;
    size_t runs = 0, keys = 0, quiet = 0;
    for (auto &[k, v] : perf) {
      if (std::get<0>(k) != l) continue;
      bool noisy;
      std::vector<double> m = pick(v, 0, &noisy);
      ++keys;
      quiet += !noisy;
      for (auto *r : v) {
        iqr.push_back((r->v[2] - r->v[1]) / r->v[0]);
        maxerr = std::max(maxerr, r->v[4]);
      }
      runs = std::max(runs, v.size());
      spread.push_back((*std::max_element(m.begin(), m.end()) - *std::min_element(m.begin(), m.end())) /
                       percentile(m, 0.5));
    }
    std::printf("| %s | %zu | %zu/%zu | %.1f%% | %.1f%% | %.2g |\n", l.c_str(), runs, quiet, keys,
                percentile(spread, 0.5) * 100, percentile(iqr, 0.5) * 100, maxerr);
  }
  if (!inter.empty()) {
    // Per variant: overhead = alternating / (gemm alone + omp loop alone) - 1, from the medians.
    std::map<std::string, std::vector<std::array<double, 3>>> per;  // label -> {overhead, omp_us, M}
    std::string detail;
    char buf[256];
    for (auto &l : ilabels)
      for (auto &[k, v] : inter) {
        if (std::get<0>(k) != l) continue;
        double m[3];
        bool noisy = false, n1;
        for (int i = 0; i < 3; ++i) {
          m[i] = percentile(pick(v, i, &n1), 0.5);
          noisy |= n1;
        }
        double ov = m[2] / (m[0] + m[1]) - 1.0;
        per[l].push_back({ov, m[1], double(std::get<2>(k))});
        std::snprintf(buf, sizeof buf, "| %s | %d | %d | %dx%d | %.0f | %.0f | %.0f%s | %+.0f%% |\n", l.c_str(),
                      std::get<1>(k), std::get<2>(k), std::get<3>(k), std::get<4>(k), m[0], m[1], m[2],
                      noisy ? "~" : "", ov * 100);
        detail += buf;
      }
    std::printf("\n### GEMM alternating with an OpenMP loop: overhead = alternating / (gemm + loop) - 1\n\n"
                "| variant | geomean overhead | worst | omp loop alone, M=32 (us) |\n|---|---:|---:|---:|\n");
    for (auto &l : ilabels) {
      double lg = 0, worst = -1, omp32 = 0;
      for (auto &x : per[l]) {
        lg += std::log1p(x[0]);
        worst = std::max(worst, x[0]);
        if (x[2] == 32) omp32 = std::max(omp32, x[1]);
      }
      std::printf("| %s | %+.0f%% | %+.0f%% | %.0f |\n", l.c_str(), std::expm1(lg / per[l].size()) * 100,
                  worst * 100, omp32);
    }
    std::printf("\n| variant | thr | M | K x N | gemm us | omp loop us | alternating us | overhead |\n"
                "|---|---:|---:|---|---:|---:|---:|---:|\n%s",
                detail.c_str());
  }
  return 0;
}

// --compare DIR: pairwise normwise difference between the sampled output rows of all labels.
int compare(const std::string &dir) {
  std::map<std::string, std::map<std::string, std::vector<float>>> data;  // shape -> label -> values
  for (auto &e : std::filesystem::directory_iterator(dir)) {
    std::string fn = e.path().filename().string();
    if (e.path().extension() != ".f32") continue;
    std::string stem = e.path().stem().string();
    // label_M_K_N: label may itself contain '_', so split from the right.
    size_t p3 = stem.rfind('_'), p2 = stem.rfind('_', p3 - 1), p1 = stem.rfind('_', p2 - 1);
    std::string label = stem.substr(0, p1), shape = stem.substr(p1 + 1);
    std::ifstream f(e.path(), std::ios::binary);
    std::vector<float> v(e.file_size() / sizeof(float));
    f.read(reinterpret_cast<char *>(v.data()), v.size() * sizeof(float));
    data[shape][label] = std::move(v);
  }
  std::map<std::pair<std::string, std::string>, double> worst;
  for (auto &[shape, by] : data)
    for (auto &[la, va] : by)
      for (auto &[lb, vb] : by) {
        if (la >= lb || va.size() != vb.size()) continue;
        double md = 0, mr = 0;
        for (size_t i = 0; i < va.size(); ++i) {
          md = std::max(md, std::fabs(double(va[i]) - vb[i]));
          mr = std::max(mr, std::fabs(double(va[i])));
        }
        auto &w = worst[{la, lb}];
        w = std::max(w, mr > 0 ? md / mr : md);
      }
  std::printf("\n### Cross-library agreement (max |a-b| / max|a| over sampled rows, all shapes)\n\n");
  for (auto &[k, w] : worst) std::printf("- %s vs %s: %.2g\n", k.first.c_str(), k.second.c_str(), w);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  std::vector<std::string> sum_files;
  std::string compare_dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "missing value for %s\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--mode") o.mode = next();
    else if (a == "--label") o.label = next();
    else if (a == "--threads") o.threads = parse_ints(next());
    else if (a == "--m") o.ms = parse_ints(next());
    else if (a == "--kn") {  // e.g. 768x768,768x3072
      o.kn.clear();
      std::stringstream ss(next());
      std::string tok;
      while (std::getline(ss, tok, ',')) {
        auto x = tok.find('x');
        o.kn.emplace_back(std::stoi(tok.substr(0, x)), std::stoi(tok.substr(x + 1)));
      }
    } else if (a == "--reps") o.reps = std::stoi(next());
    else if (a == "--min-ms") o.min_sample_s = std::stod(next()) * 1e-3;
    else if (a == "--dump") o.dump_dir = next();
    else if (a == "--wt") g_pretranspose = true;
    else if (a == "--quiet-wait") o.quiet_wait_s = std::stod(next());
    else if (a == "--compare") compare_dir = next();
    else if (a == "--summarize") {
      while (i + 1 < argc) sum_files.push_back(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--mode perf|interop|info] [--label L] [--threads 2,1] [--m 32,128,...]\n"
                   "          [--kn 768x768,...] [--reps 7] [--min-ms 20] [--dump DIR] [--quiet-wait 0] [--wt]\n"
                   "       %s --summarize run1.csv run2.csv ...\n       %s --compare DIR\n",
                   argv[0], argv[0], argv[0]);
      return 2;
    }
  }
  if (!sum_files.empty()) return summarize(sum_files);
  if (!compare_dir.empty()) return compare(compare_dir);
  if (o.mode == "info") {
    std::printf("%s: %s\n", backend_name(), backend_info().c_str());
    return 0;
  }
  if (o.mode == "interop") {
    run_interop(o);
    return 0;
  }
  run_perf(o);
  return 0;
}
