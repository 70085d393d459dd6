#include "kernels/gemm.h"

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>

#include "kernels/int8_gemm_amx.h"
#include "kernels/row_kernels.h"
#include "util/error.h"
#include "util/scratch.h"

namespace sieve {

void gemm_nt(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status = dnnl_sgemm('N', 'T', m, n, k, 1.0f, a.data, a.stride, b.data, b.stride, 0.0f, c, ldc);
  if (status != dnnl_success) throw Error("oneDNN sgemm failed with status " + std::to_string(status));
}

void gemm_tn(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status = dnnl_sgemm('T', 'N', m, n, k, 1.0f, a.data, a.stride, b.data, b.stride, 0.0f, c, ldc);
  if (status != dnnl_success) throw Error("oneDNN sgemm failed with status " + std::to_string(status));
}

Tensor transposed(const Tensor& w) {
  if (w.rank() != 2) throw Error("transposed() needs a matrix");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Tensor t({cols, rows});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t.data()[c * rows + r] = w.data()[r * cols + c];
  return t;
}

namespace {

using dt = dnnl::memory::data_type;
constexpr auto kRuntime = DNNL_RUNTIME_DIM_VAL;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN's s8 x s8 matmul is exact only with VNNI's 32-bit dot products (without them it sums
// pairs of products in saturating 16 bits); checked on the hardware, not SIEVE_NO_AVX512, which
// only switches Sieve's own kernels.
bool cpu_runs_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

// C = AB, or C += AB with the sum post-op; the scratchpad is the caller's (see Matmul).
dnnl::primitive_attr matmul_attr(bool accumulate) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (accumulate) {
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    attr.set_post_ops(sum);
  }
  return attr;
}

// A matmul primitive run with a scratchpad per calling thread: oneDNN's own (library-mode)
// scratchpad is one buffer for every thread in this build, so two threads running matmuls at once
// (Python threads sharing an Encoder) overwrote each other's partial sums.
struct Matmul {
  dnnl::matmul primitive;
  dnnl::memory::desc scratchpad;

  explicit Matmul(const dnnl::matmul::primitive_desc& pd) : primitive(pd), scratchpad(pd.scratchpad_desc()) {}

  void execute(std::unordered_map<int, dnnl::memory> args) const {
    thread_local dnnl::stream stream(cpu_engine());
    thread_local std::vector<std::byte> buffer;
    buffer.resize(scratchpad.get_size());
    args.insert({DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad, cpu_engine(), buffer.data())});
    primitive.execute(stream, args);
    stream.wait();
  }
};

// A matmul whose every dimension and stride is given at run time (gemm:jit): any block of a weight,
// any row count. beta 0 or 1.
struct RuntimeMatmul {
  std::optional<Matmul> overwrite, accumulate;  // C = AB, C += AB

  RuntimeMatmul(dt a_type, dt b_type, dt c_type, bool wanted = true) {
    if (!wanted) return;
    const dnnl::memory::desc a({kRuntime, kRuntime}, a_type, {kRuntime, 1});
    const dnnl::memory::desc b({kRuntime, kRuntime}, b_type, {kRuntime, 1});
    const dnnl::memory::desc c({kRuntime, kRuntime}, c_type, {kRuntime, 1});
    try {
      overwrite.emplace(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), matmul_attr(false), cpu_engine()));
      accumulate.emplace(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), matmul_attr(true), cpu_engine()));
    } catch (const dnnl::error&) {
      overwrite.reset(), accumulate.reset();  // no such matmul on this CPU
    }
  }
};

const RuntimeMatmul& bf16_matmul() {
  static const RuntimeMatmul instance(dt::bf16, dt::bf16, dt::f32);
  return instance;
}

const RuntimeMatmul& int8_matmul() {
  static const RuntimeMatmul instance(dt::s8, dt::s8, dt::s32, cpu_runs_vnni());
  return instance;
}

// What a matmul with these operands writes: int32 sums for int8, fp32 otherwise.
dt product_type(dt operand) { return operand == dt::s8 ? dt::s32 : dt::f32; }

// Fixed-shape matmul descriptors for a weight of k x n: dense A [m, k] and C [m, n], B in the
// layout oneDNN picks (`weights` null: packing) or in the given one (running on a packed copy).
// The layout oneDNN would pick depends on m (with AMX, k 96 x n 80: m = 1 and m = 5 differ),
// so the packed copy's layout is imposed on every row count's matmul.
dnnl::matmul::primitive_desc fixed_shape_desc(dt b_type, int64_t m, int64_t k, int64_t n, bool accumulate,
                                              const dnnl::memory::desc* weights = nullptr) {
  using tag = dnnl::memory::format_tag;
  const dt c_type = product_type(b_type);
  const dnnl::matmul::desc desc(dnnl::memory::desc({m, k}, b_type, tag::ab),
                                weights ? *weights : dnnl::memory::desc({k, n}, b_type, tag::any),
                                dnnl::memory::desc({m, n}, c_type, tag::ab));
  return dnnl::matmul::primitive_desc(desc, matmul_attr(accumulate), cpu_engine());
}

}  // namespace

struct PackedWeights {
  dt type;
  int64_t k, n;
  dnnl::memory memory;
};

namespace {

// Packs a plain row-major [k, n] weight into oneDNN's layout; null where oneDNN has no such matmul.
std::shared_ptr<const PackedWeights> pack(dt type, int64_t k, int64_t n, const void* plain) {
  try {
    const auto pd = fixed_shape_desc(type, 1, k, n, false);
    auto packed = std::make_shared<PackedWeights>(PackedWeights{type, k, n, dnnl::memory(pd.weights_desc(), cpu_engine())});
    dnnl::memory source({{k, n}, type, dnnl::memory::format_tag::ab}, cpu_engine(), const_cast<void*>(plain));
    dnnl::stream stream(cpu_engine());
    dnnl::reorder(source, packed->memory).execute(stream, source, packed->memory);
    stream.wait();
    return packed;
  } catch (const dnnl::error&) {
    return nullptr;
  }
}

// Settings overridable for measuring one path against another. A count: the variable's value
// (negative: 0), else the default. A switch: on unless the variable is "0".
int64_t count_from_env(const char* variable, int64_t default_count) {
  const char* env = std::getenv(variable);
  return env ? std::max<int64_t>(0, std::atoll(env)) : default_count;
}
bool enabled_by_env(const char* variable) {
  const char* env = std::getenv(variable);
  return !env || std::string(env) != "0";
}

// The fixed-shape matmuls made so far, one per (type, m, k, n, accumulate): making one costs
// 0.1-0.7 ms, running a small one 5-50 us, and keeping one ~43 KiB (measured, 384 x 1536 fp32).
// Bounded: past the cap, GEMMs take the run-time-shape path. The cap is what keeps a server's
// memory flat: its batches have every row count, and with room for 4,096 shapes (~170 MiB) a
// 10-minute soak's RSS grew in steps by 57 MiB; 1,024 (~45 MiB) fill within a minute and it stays flat.
class FixedShapeCache {
 public:
  // `weights`: the packed copy's layout, the same for every copy of one (type, k, n) (pack() picks it).
  const Matmul* find_or_make(dt type, int64_t m, int64_t k, int64_t n, bool accumulate, const dnnl::memory::desc& weights) {
    const Key key{static_cast<int>(type), m, k, n, accumulate};
    std::lock_guard lock(mutex_);
    if (auto it = made_.find(key); it != made_.end()) return &it->second;
    if (made_.size() >= capacity_) return nullptr;
    try {
      return &made_.emplace(key, Matmul(fixed_shape_desc(type, m, k, n, accumulate, &weights))).first->second;
    } catch (const dnnl::error&) {
      return nullptr;
    }
  }

 private:
  // SIEVE_GEMM_SHAPES=n overrides it (for measuring).
  const size_t capacity_ = static_cast<size_t>(count_from_env("SIEVE_GEMM_SHAPES", 1024));
  struct Key {
    int type;
    int64_t m, k, n;
    bool accumulate;
    auto operator<=>(const Key&) const = default;
  };
  std::mutex mutex_;
  std::map<Key, Matmul> made_;  // std::map: the pointers handed out stay valid
};

FixedShapeCache& fixed_shapes() {
  static FixedShapeCache cache;
  return cache;
}

// Runs C = A B (+ C) on the packed weight when the shapes allow; false if the caller must take the
// run-time-shape path.
bool run_packed(const PackedWeights* packed, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, void* c,
                int64_t ldc, bool accumulate) {
  if (!packed || packed->k != k || packed->n != n || lda != k || ldc != n) return false;
  const Matmul* mm = fixed_shapes().find_or_make(packed->type, m, k, n, accumulate, packed->memory.get_desc());
  if (!mm) return false;
  const dt c_type = product_type(packed->type);
  const dnnl::memory a_mem({{m, k}, packed->type, {k, 1}}, cpu_engine(), const_cast<void*>(a));
  const dnnl::memory c_mem({{m, n}, c_type, {n, 1}}, cpu_engine(), c);
  mm->execute({{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, packed->memory}, {DNNL_ARG_DST, c_mem}});
  return true;
}

void run_runtime(const RuntimeMatmul& mm, dt a_type, dt b_type, dt c_type, int64_t m, int64_t n, int64_t k, const void* a,
                 int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc, bool accumulate) {
  const dnnl::memory a_mem({{m, k}, a_type, {lda, 1}}, cpu_engine(), const_cast<void*>(a));
  const dnnl::memory b_mem({{k, n}, b_type, {ldb, 1}}, cpu_engine(), const_cast<void*>(b));
  const dnnl::memory c_mem({{m, n}, c_type, {ldc, 1}}, cpu_engine(), c);
  (accumulate ? *mm.accumulate : *mm.overwrite).execute({{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
}

}  // namespace

std::shared_ptr<const PackedWeights> pack_fp32(const Tensor& w) {
  static const bool wanted = enabled_by_env("SIEVE_FP32_PACKED");
  if (!wanted || w.rank() != 2 || w.dim(0) == 0 || w.dim(1) == 0) return nullptr;
  return pack(dt::f32, w.dim(0), w.dim(1), w.data());
}

Bf16Matrix to_bf16(const Tensor& w) {
  if (w.rank() != 2) throw Error("to_bf16() needs a matrix");
  Bf16Matrix m;
  m.rows = w.dim(0), m.cols = w.dim(1);
  m.bits.resize(static_cast<size_t>(w.size()));
  row_kernels().to_bf16(w.data(), m.bits.data(), w.size());
  if (bf16_gemm_available() && m.rows > 0 && m.cols > 0) m.packed = pack(dt::bf16, m.rows, m.cols, m.bits.data());
  return m;
}

bool bf16_gemm_available() { return bf16_matmul().overwrite.has_value(); }

namespace {

// Runs fn(first_row, rows) over blocks of `block` rows shared among the threads (each block on one
// thread, oneDNN's calls inside it single-threaded); false, having run nothing, where blocking does
// not apply: block 0, one thread, already inside a parallel region, or fewer than two blocks.
// An exception thrown by fn is rethrown here (one escaping the parallel region would terminate).
template <class Fn>
bool for_row_blocks(int64_t m, int64_t block, Fn&& fn) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (block <= 0 || threads < 2 || m < 2 * block) return false;
  const int64_t blocks = (m + block - 1) / block;
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < blocks; ++i) {
    try {
      fn(i * block, std::min(block, m - i * block));
    } catch (...) {
#pragma omp critical(sieve_row_block_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  return true;
}

// The epilogue on rows [r0, r0 + rows) of C.
void apply_epilogue(Epilogue epilogue, int64_t r0, int64_t rows, int64_t n, float* c, int64_t ldc) {
  if (!epilogue.bias) return;  // (GELU without a bias is not used)
  const RowKernels& kernels = row_kernels();
  for (int64_t r = r0; r < r0 + rows; ++r)
    epilogue.gelu ? kernels.bias_gelu(c + r * ldc, epilogue.bias, n) : kernels.bias_add(c + r * ldc, epilogue.bias, n);
}

// Runs fn(row, first_column, columns) over every row of an [m, n] pass in pieces of at most
// kPassColumns columns, shared among the threads from min_elements elements. Pieces, not rows, so
// that the few rows of a short input at batch 1 (32 tokens; one row for a pooled output) still
// split across the threads: whole rows below 2^16 elements ran on one thread while the other waited,
// and bias + GELU is expensive enough to be worth splitting from a few thousand elements.
constexpr int64_t kPassColumns = 256;

template <class Fn>
void for_row_pieces(int64_t m, int64_t n, int64_t min_elements, Fn&& fn) {
  // (From 16 rows whole rows share out well enough: one piece per row, as before pieces existed.)
  const int64_t per_row = m >= 16 ? 1 : (n + kPassColumns - 1) / kPassColumns;
  const int64_t piece_columns = per_row == 1 ? n : kPassColumns;
#pragma omp parallel for schedule(static) if (m * n >= min_elements && m * per_row > 1)
  for (int64_t piece = 0; piece < m * per_row; ++piece) {
    const int64_t r = piece / per_row, c0 = (piece % per_row) * piece_columns;
    fn(r, c0, std::min(piece_columns, n - c0));
  }
}

// Elements from which a pass over rows is split among the threads: bias + GELU (erf) costs ~1.5
// cycles an element, a bias add or a dequantize a fraction of that.
int64_t pass_min_elements(Epilogue epilogue) { return epilogue.gelu ? int64_t{1} << 12 : int64_t{1} << 14; }

// The same on all m rows, shared among the threads.
void apply_epilogue_parallel(Epilogue epilogue, int64_t m, int64_t n, float* c, int64_t ldc) {
  if (!epilogue.bias) return;
  for_row_pieces(m, n, pass_min_elements(epilogue), [&](int64_t r, int64_t c0, int64_t cols) {
    apply_epilogue({epilogue.bias + c0, epilogue.gelu}, 0, 1, cols, c + r * ldc + c0, ldc);
  });
}

void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, MatrixRef b, float* c, int64_t ldc, float beta) {
  const dnnl_status_t status = dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, lda, b.data, b.stride, beta, c, ldc);
  if (status != dnnl_success) throw Error("oneDNN sgemm failed with status " + std::to_string(status));
}

}  // namespace

void gemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc, float beta,
          Epilogue epilogue) {
  if (m == 0 || n == 0) return;
  // One pass for the product, one for the epilogue: blocks of rows through both (as bf16 and int8
  // run) measured 0.87-1.00x of this at 32-384 tokens x batch 1 and 32, since oneDNN's sgemm
  // splits one big product across the threads better than it runs many small ones.
  const bool packed = b.packed && m <= kPackedFp32MaxRows && (beta == 0.0f || beta == 1.0f) &&
                      run_packed(b.packed, m, n, k, a.data, a.stride, c, ldc, beta == 1.0f);
  if (!packed) sgemm(m, n, k, a.data, a.stride, b, c, ldc, beta);
  apply_epilogue_parallel(epilogue, m, n, c, ldc);
}

void gemm_bf16(int64_t m, int64_t n, int64_t k, MatrixRef a, Bf16Ref b, float* c, int64_t ldc, float beta,
               Epilogue epilogue) {
  if (m == 0 || n == 0) return;
  if (beta != 0.0f && beta != 1.0f) throw Error("gemm_bf16: beta must be 0 or 1");
  const RuntimeMatmul& mm = bf16_matmul();
  if (!mm.overwrite) throw Error("this CPU has no bf16 matrix multiply in oneDNN (use --precision fp32)");
  const bool accumulate = beta == 1.0f;
  const RowKernels& kernels = row_kernels();
  auto product = [&](int64_t rows, const uint16_t* a_bits, float* c_rows) {
    if (!run_packed(b.packed, rows, n, k, a_bits, k, c_rows, ldc, accumulate))
      run_runtime(mm, dt::bf16, dt::bf16, dt::f32, rows, n, k, a_bits, k, b.data, b.stride, c_rows, ldc, accumulate);
  };
  // Rows per block (see gemm.h); SIEVE_GEMM_BLOCK_ROWS_BF16=0: the one-pass path.
  static const int64_t block = count_from_env("SIEVE_GEMM_BLOCK_ROWS_BF16", kGemmBlockRows);
  if (for_row_blocks(m, block, [&](int64_t r0, int64_t rows) {
        thread_local std::vector<uint16_t> block_buffer;
        uint16_t* block_bits = scratch(block_buffer, rows * k);
        for (int64_t r = 0; r < rows; ++r) kernels.to_bf16(a.data + (r0 + r) * a.stride, block_bits + r * k, k);
        product(rows, block_bits, c + r0 * ldc);
        apply_epilogue(epilogue, r0, rows, n, c, ldc);
      }))
    return;
  // The activations, rounded to bf16 (a few % of the GEMM's time); one buffer per calling thread.
  thread_local std::vector<uint16_t> a16;
  uint16_t* a_bits = scratch(a16, m * k);  // (thread_local: the workers below must use the caller's buffer)
#pragma omp parallel for schedule(static) if (m * k >= (1 << 14))
  for (int64_t r = 0; r < m; ++r) kernels.to_bf16(a.data + r * a.stride, a_bits + r * k, k);
  product(m, a_bits, c);
  apply_epilogue_parallel(epilogue, m, n, c, ldc);
}

Int8Matrix to_int8(const Tensor& w, bool amx_copy) {
  if (w.rank() != 2) throw Error("to_int8() needs a matrix");
  Int8Matrix q;
  q.rows = w.dim(0), q.cols = w.dim(1);
  q.scales.assign(static_cast<size_t>(q.cols), 0.0f);
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) q.scales[c] = std::max(q.scales[c], std::abs(w.data()[r * q.cols + c]));
  for (float& s : q.scales) s /= 127.0f;
  q.codes.resize(static_cast<size_t>(w.size()));
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) {
      const float s = q.scales[c];
      q.codes[r * q.cols + c] = s > 0.0f ? static_cast<int8_t>(std::nearbyint(std::clamp(w.data()[r * q.cols + c] / s, -127.0f, 127.0f))) : 0;
    }
  if (int8_gemm_available() && q.rows > 0 && q.cols > 0) q.packed = pack(dt::s8, q.rows, q.cols, q.codes.data());
  // (The AMX kernel neither blocks k nor prefetches: it pays while the weight stays in a core's L2.)
  // SIEVE_INT8_AMX=0: no copy, so blocks of rows go through oneDNN's matmul and a dequantizing pass
  // (for measuring one against the other; the results are the same bit for bit).
  constexpr int64_t kAmxMaxWeightBytes = int64_t{1} << 20;
  static const bool amx_wanted = enabled_by_env("SIEVE_INT8_AMX");
  if (amx_copy && amx_wanted && q.rows * q.cols <= kAmxMaxWeightBytes)
    q.amx = amx::pack_int8_weights(q.codes.data(), q.rows, q.cols);  // (empty without AMX-INT8)
  return q;
}

bool int8_gemm_available() { return int8_matmul().overwrite.has_value(); }

void gemm_s8s8s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, Int8Ref b, int32_t* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const RuntimeMatmul& mm = int8_matmul();
  if (!mm.overwrite) throw Error("this CPU has no exact int8 matrix multiply (AVX-512 VNNI) in oneDNN (use --precision fp32 or bf16)");
  if (!run_packed(b.packed, m, n, k, a, lda, c, ldc, false))
    run_runtime(mm, dt::s8, dt::s8, dt::s32, m, n, k, a, lda, b.data, b.stride, c, ldc, false);
}

namespace {

// quantize -> int32 GEMM -> dequantize (+ epilogue) for rows [r0, r0 + rows), on the calling thread's buffers.
void int8_rows(int64_t r0, int64_t rows, int64_t n, int64_t k, MatrixRef a, Int8Ref b, float* c, int64_t ldc,
               bool accumulate, Epilogue epilogue) {
  thread_local std::vector<int8_t> codes_buffer;
  thread_local std::vector<float> scales_buffer;
  thread_local std::vector<int32_t> products_buffer;
  // (resize, as before scratch() existed: the blocked path's buffers change size per weight too,
  // but grow-only buffers here did not measure faster at 32 x 32 tokens, within this VM's noise)
  // (the AMX kernel reads A in tiles of 16 rows: rows up to the next multiple of 16 must be readable)
  codes_buffer.resize(static_cast<size_t>((rows + 15) / 16 * 16 * k)), scales_buffer.resize(static_cast<size_t>(rows));
  int8_t* codes = codes_buffer.data();
  float* scales = scales_buffer.data();
  const RowKernels& kernels = row_kernels();
  for (int64_t r = 0; r < rows; ++r) scales[r] = kernels.quantize_int8(a.data + (r0 + r) * a.stride, codes + r * k, k);
  if (b.amx) {
    amx::gemm_int8_dequantize(rows, n, k, codes, scales, b.amx, b.scales, c + r0 * ldc, ldc, accumulate, epilogue);
    return;
  }
  products_buffer.resize(static_cast<size_t>(rows * n));
  int32_t* products = products_buffer.data();
  gemm_s8s8s32(rows, n, k, codes, k, b, products, n);
  for (int64_t r = 0; r < rows; ++r)
    kernels.dequantize_int32(products + r * n, scales[r], b.scales, c + (r0 + r) * ldc, accumulate, epilogue, n);
}

}  // namespace

void gemm_int8(int64_t m, int64_t n, int64_t k, MatrixRef a, Int8Ref b, float* c, int64_t ldc, float beta,
               Epilogue epilogue) {
  if (m == 0 || n == 0) return;
  if (beta != 0.0f && beta != 1.0f) throw Error("gemm_int8: beta must be 0 or 1");
  const bool accumulate = beta == 1.0f;
  // Many rows: each thread takes blocks of rows through all three steps, so a block's int32
  // products are scaled back while they are still in the core's cache (in one pass over all rows
  // the [m, n] int32 products went out to memory and back: 11 % of an int8 forward at 1,024 tokens).
  static const int64_t block = count_from_env("SIEVE_GEMM_BLOCK_ROWS_INT8", kGemmBlockRows);  // 0: one pass
  if (for_row_blocks(m, block, [&](int64_t r0, int64_t rows) { int8_rows(r0, rows, n, k, a, b, c, ldc, accumulate, epilogue); }))
    return;
  // Few rows: one pass per step, each parallel across the rows (the matmul across the columns).
  // Per-thread buffers: the activations' codes and scales, and the int32 products.
  thread_local std::vector<int8_t> a_codes;
  thread_local std::vector<float> a_scales;
  thread_local std::vector<int32_t> products;
  int8_t* codes = scratch(a_codes, m * k);  // (the workers below must use the caller's buffers)
  float* scales = scratch(a_scales, m);
  int32_t* acc = scratch(products, m * n);
  const RowKernels& kernels = row_kernels();
#pragma omp parallel for schedule(static) if (m * k >= (1 << 12))
  for (int64_t r = 0; r < m; ++r) scales[r] = kernels.quantize_int8(a.data + r * a.stride, codes + r * k, k);
  gemm_s8s8s32(m, n, k, codes, k, b, acc, n);
  for_row_pieces(m, n, pass_min_elements(epilogue), [&](int64_t r, int64_t c0, int64_t cols) {
    kernels.dequantize_int32(acc + r * n + c0, scales[r], b.scales + c0, c + r * ldc + c0, accumulate,
                             {epilogue.bias ? epilogue.bias + c0 : nullptr, epilogue.gelu}, cols);
  });
}

}  // namespace sieve
