#include "attention/cta.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>

#include "kernels/gemm.h"
#include "util/error.h"

namespace sieve {

namespace {

// U[0, 1) from the top 53 bits, and N(0, 1) by Box-Muller: explicit, so a seed means the same
// numbers with every standard library (std::normal_distribution's algorithm is unspecified).
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

double standard_normal(std::mt19937_64& rng) {
  const double u1 = 1.0 - uniform01(rng);  // (0, 1]: log is finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t mix(uint64_t h) {  // splitmix64 finalizer
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

// The centroid loops are plain adds over dw-wide rows; GCC builds them for AVX-512 and for
// baseline x86-64 and picks one at load time (the rest of sieve_core is built for baseline x86-64).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define SIEVE_CTA_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define SIEVE_CTA_CLONES
#endif
// Helpers of a cloned function: always inlined, so they are built for the caller's target.
#define SIEVE_CTA_CLONES_INLINE inline __attribute__((always_inline))

typedef float Vec16 __attribute__((vector_size(64)));
// The Vec16 helpers are always inlined, so no call passes a 64-byte vector across the ABI that
// GCC warns about for the baseline clone.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

SIEVE_CTA_CLONES_INLINE Vec16 load16(const float* p) {
  Vec16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
SIEVE_CTA_CLONES_INLINE void store16(float* p, Vec16 v) { std::memcpy(p, &v, sizeof v); }

// One block of V 16-float columns at col of centroid c: the mean over its rows of x_i (minus
// sub[sub_table[i]] when sub is given), summed in registers and written once.
template <int V>
SIEVE_CTA_CLONES_INLINE void mean_block(const float* x, int64_t x_stride, const int32_t* rows, int64_t count, const float* sub,
                                        const int32_t* sub_table, int64_t dim, int64_t col, float* out) {
  Vec16 acc[V] = {};
  for (int64_t r = 0; r < count; ++r) {
    const int64_t i = rows[r];
    const float* src = x + i * x_stride + col;
    for (int v = 0; v < V; ++v) acc[v] += load16(src + 16 * v);
    if (sub) {
      const float* s = sub + sub_table[i] * dim + col;
      for (int v = 0; v < V; ++v) acc[v] -= load16(s + 16 * v);
    }
  }
  const float inv = 1.0f / static_cast<float>(count);
  for (int v = 0; v < V; ++v) store16(out + 16 * v, acc[v] * inv);
}

// out[c] = mean over the rows i with table[i] == c of x_i (- sub[sub_table[i]]), out [k, dim].
// Rows are visited cluster by cluster (a counting sort of the table), so each centroid is summed
// in registers and stored once: no zeroing and no read-modify-write of the centroid rows, which
// made the first version (one pass adding every row into its centroid) memory-bound.
SIEVE_CTA_CLONES void cluster_means_sorted(const float* x, int64_t x_stride, int64_t dim, const int32_t* table, int64_t n, int32_t k,
                                           const float* sub, const int32_t* sub_table, float* out) {
  thread_local std::vector<int32_t> start, order;
  start.assign(static_cast<size_t>(k) + 1, 0);
  order.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ++start[static_cast<size_t>(table[i]) + 1];
  for (int32_t c = 0; c < k; ++c) start[static_cast<size_t>(c) + 1] += start[static_cast<size_t>(c)];
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(start[static_cast<size_t>(table[i])]++)] = static_cast<int32_t>(i);
  for (int32_t c = k; c > 0; --c) start[static_cast<size_t>(c)] = start[static_cast<size_t>(c) - 1];  // undo the shift
  start[0] = 0;
  for (int32_t c = 0; c < k; ++c) {
    const int32_t* rows = order.data() + start[static_cast<size_t>(c)];
    const int64_t count = start[static_cast<size_t>(c) + 1] - start[static_cast<size_t>(c)];
    float* dst = out + c * dim;
    int64_t col = 0;
    for (; col + 128 <= dim; col += 128) mean_block<8>(x, x_stride, rows, count, sub, sub_table, dim, col, dst + col);
    for (; col + 16 <= dim; col += 16) mean_block<1>(x, x_stride, rows, count, sub, sub_table, dim, col, dst + col);
    for (; col < dim; ++col) {
      float acc = 0.0f;
      for (int64_t r = 0; r < count; ++r) {
        const int64_t i = rows[r];
        acc += x[i * x_stride + col] - (sub ? sub[sub_table[i] * dim + col] : 0.0f);
      }
      dst[col] = acc / static_cast<float>(count);
    }
  }
}

// C[m, n] = A[m, k] B[k, n] for the per-head products, whose n (head_dim, 2 head_dim, k1 + k2)
// is small: a register-friendly i-p-j loop beats a library call's fixed cost at these sizes.
// One row of C, columns [j0, j0 + 16 V): V 16-float vectors of accumulators stay in registers
// across the whole k loop (GCC vector extensions; in the baseline clone each becomes four SSE
// registers). Accumulating straight into C would store and reload it on every step.

template <int V>
SIEVE_CTA_CLONES_INLINE void gemm_row_block(int64_t k, const float* ai, const float* b, int64_t ldb, float* ci) {
  Vec16 acc[V] = {};
  for (int64_t p = 0; p < k; ++p) {
    const float av = ai[p];
    const float* bp = b + p * ldb;
    for (int v = 0; v < V; ++v) {
      Vec16 bv;
      std::memcpy(&bv, bp + 16 * v, sizeof bv);
      acc[v] += av * bv;
    }
  }
  std::memcpy(ci, acc, sizeof acc);
}

// Two rows of C at once: every B vector loaded feeds two FMAs.
template <int V>
SIEVE_CTA_CLONES_INLINE void gemm_two_rows_block(int64_t k, const float* a0, const float* a1, const float* b, int64_t ldb,
                                                 float* c0, float* c1) {
  Vec16 acc0[V] = {}, acc1[V] = {};
  for (int64_t p = 0; p < k; ++p) {
    const float x0 = a0[p], x1 = a1[p];
    const float* bp = b + p * ldb;
    for (int v = 0; v < V; ++v) {
      Vec16 bv;
      std::memcpy(&bv, bp + 16 * v, sizeof bv);
      acc0[v] += x0 * bv;
      acc1[v] += x1 * bv;
    }
  }
  std::memcpy(c0, acc0, sizeof acc0);
  std::memcpy(c1, acc1, sizeof acc1);
}

SIEVE_CTA_CLONES_INLINE void gemm_row_tail(int64_t k, int64_t width, const float* ai, const float* b, int64_t ldb, float* ci) {
  float acc[16] = {};
  for (int64_t p = 0; p < k; ++p)
    for (int64_t j = 0; j < width; ++j) acc[j] += ai[p] * b[p * ldb + j];
  std::copy(acc, acc + width, ci);
}

SIEVE_CTA_CLONES void small_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                                 float* c, int64_t ldc) {
  int64_t i = 0;
  for (; i + 2 <= m && n >= 32; i += 2) {
    const float *a0 = a + i * lda, *a1 = a0 + lda;
    float *c0 = c + i * ldc, *c1 = c0 + ldc;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) gemm_two_rows_block<4>(k, a0, a1, b + j, ldb, c0 + j, c1 + j);
    for (; j + 32 <= n; j += 32) gemm_two_rows_block<2>(k, a0, a1, b + j, ldb, c0 + j, c1 + j);
    for (; j + 16 <= n; j += 16) gemm_two_rows_block<1>(k, a0, a1, b + j, ldb, c0 + j, c1 + j);
    if (j < n) {
      gemm_row_tail(k, n - j, a0, b + j, ldb, c0 + j);
      gemm_row_tail(k, n - j, a1, b + j, ldb, c1 + j);
    }
  }
  for (; i < m; ++i) {
    const float* ai = a + i * lda;
    float* ci = c + i * ldc;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) gemm_row_block<4>(k, ai, b + j, ldb, ci + j);
    for (; j + 16 <= n; j += 16) gemm_row_block<1>(k, ai, b + j, ldb, ci + j);
    if (j < n) gemm_row_tail(k, n - j, ai, b + j, ldb, ci + j);
  }
}

// An LSH bucket: floor(shifted / w), shifted = <x, a> + b, clamped into int64 (codes this large only
// arise for w -> 0). Written with plain comparisons so the loop below vectorizes.
SIEVE_CTA_CLONES_INLINE int64_t bucket(double shifted, double w) {
  constexpr double kLimit = 9.0e18;
  double v = std::floor(shifted / w);
  v = v < -kLimit ? -kLimit : v;
  v = v > kLimit ? kLimit : v;
  return static_cast<int64_t>(v);
}

// codes[i] = bucket(shifted[i], w) for a whole level: the same arithmetic as LshFamily::code, in
// double, so the codes are exactly those of the scalar definition.
SIEVE_CTA_CLONES void bucket_codes(const double* shifted, int64_t count, double w, int64_t* codes) {
  for (int64_t i = 0; i < count; ++i) codes[i] = bucket(shifted[i], w);
}

// exp(v) for v <= 0 (clamped at -87): Cephes' expf, 2^n times a degree-6 polynomial (~1e-7
// relative), without calls or branches. exp_mantissa is the shared part for one float and for
// 16 lanes: n = round(v / ln 2) and the polynomial of the remainder.
template <class T>
SIEVE_CTA_CLONES_INLINE T exp_mantissa(T v, T& n) {
  n = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const T r = v - n * 0.693359375f + n * 2.12194440e-4f;
  T q = r * 1.9875691500e-4f + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  return q * r * r + r + 1.0f;
}

SIEVE_CTA_CLONES_INLINE float exp_nonpositive(float v) {
  float n;
  const float q = exp_mantissa(v > -87.0f ? v : -87.0f, n);
  return q * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

typedef int32_t IVec16 __attribute__((vector_size(64)));

SIEVE_CTA_CLONES_INLINE Vec16 exp_nonpositive(Vec16 v) {
  const Vec16 lo = Vec16{} - 87.0f;
  Vec16 n;
  const Vec16 q = exp_mantissa(v > lo ? v : lo, n);
  const IVec16 bits = (__builtin_convertvector(n, IVec16) + 127) << 23;
  Vec16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return q * scale;
}

// cta_attend's two small products (scores, outputs) go to oneDNN from this many multiply-adds. On
// ~395-token documents (k0 ~ 120, k1 + k2 ~ 200) oneDNN cut the attention step from 986 to 587 ms
// (per head, w = 24, 40 documents, 1 thread); on 45-token SST-2 sentences either way was within noise.
constexpr double kLibraryGemmMacs = 1 << 16;

// The aggregation for all k0 compressed queries at once, in column layout ([column][query], the
// k0 queries contiguous, rows ld apart) so every inner loop is a plain vector loop with no scatter
// conflicts. Columns run in blocks of 16 up to `width` (k0 rounded up to 16 when the caller padded
// its rows, so there is no scalar tail; pad columns must hold finite scores), the rest one by one.
SIEVE_CTA_CLONES void aggregate_columns(const float* sbar_t, int64_t ld, int32_t k0, int32_t k1, int32_t k2,
                                        const int32_t* pair_ct1, const int32_t* pair_ct2, const int32_t* pair_count,
                                        int64_t np, float* ap_t, float* row_max, float* e_t, int64_t e_stride) {
  const int64_t width = ld % 16 == 0 ? (k0 + 15) / 16 * 16 : k0 / 16 * 16;  // vector columns
  const int64_t columns = std::max<int64_t>(width, k0);                            // all written columns
  for (int64_t c = 0; c < columns; ++c) row_max[c] = -std::numeric_limits<float>::infinity();
  for (int64_t p = 0; p < np; ++p) {  // Fig. 6 line 8 (eq. 6), for the max
    const float* a = sbar_t + pair_ct1[p] * ld;
    const float* b = sbar_t + (k1 + pair_ct2[p]) * ld;
    int64_t c = 0;
    for (; c < width; c += 16) {
      const Vec16 v = load16(a + c) + load16(b + c), m = load16(row_max + c);
      store16(row_max + c, v > m ? v : m);
    }
    for (; c < k0; ++c) row_max[c] = std::max(row_max[c], a[c] + b[c]);
  }
  for (int64_t j = 0; j < k1 + k2; ++j) std::fill(ap_t + j * ld, ap_t + j * ld + columns, 0.0f);
  for (int64_t p = 0; p < np; ++p) {
    const float* a = sbar_t + pair_ct1[p] * ld;
    const float* b = sbar_t + (k1 + pair_ct2[p]) * ld;
    float* e = e_t + p * e_stride;
    float* ap1 = ap_t + pair_ct1[p] * ld;         // Fig. 6 line 9: weight of the LSH_1 centroid's value
    float* ap2 = ap_t + (k1 + pair_ct2[p]) * ld;  // line 10: weight of the residual centroid's value
    const float w = static_cast<float>(pair_count[p]);
    int64_t c = 0;
    for (; c < width; c += 16) {
      const Vec16 ev = exp_nonpositive(load16(a + c) + load16(b + c) - load16(row_max + c));
      if (e_stride) store16(e + c, ev);
      store16(ap1 + c, load16(ap1 + c) + w * ev);
      store16(ap2 + c, load16(ap2 + c) + w * ev);
    }
    for (; c < k0; ++c) {
      const float ev = exp_nonpositive(a[c] + b[c] - row_max[c]);
      if (e_stride) e[c] = ev;
      ap1[c] += w * ev;
      ap2[c] += w * ev;
    }
  }
}

}  // namespace

LshFamily::LshFamily(int64_t dim, int l, double w, uint64_t seed) : dim_(dim), w_(w) {
  if (dim <= 0 || l <= 0) throw Error("cta: LSH needs a positive dimension and code length");
  if (!(w > 0.0) || !std::isfinite(w)) throw Error("cta: bucket width w must be a positive number");
  std::mt19937_64 rng(seed);
  directions_.resize(static_cast<size_t>(l) * static_cast<size_t>(dim));
  offsets_.resize(static_cast<size_t>(l));
  for (int k = 0; k < l; ++k) {
    for (int64_t c = 0; c < dim; ++c) directions_[static_cast<size_t>(k * dim + c)] = static_cast<float>(standard_normal(rng));
    offsets_[static_cast<size_t>(k)] = uniform01(rng) * w;
  }
}

LshFamily::LshFamily(std::vector<float> directions, std::vector<double> offsets, int64_t dim, double w)
    : directions_(std::move(directions)), offsets_(std::move(offsets)), dim_(dim), w_(w) {
  if (directions_.size() != offsets_.size() * static_cast<size_t>(dim)) throw Error("cta: LSH directions/offsets size mismatch");
  if (!(w > 0.0)) throw Error("cta: bucket width w must be positive");
}

int64_t LshFamily::code(double projection, int k) const {
  return bucket(projection + offsets_[static_cast<size_t>(k)], w_);
}

void LshFamily::hash(const float* x, int64_t* codes) const {
  for (int k = 0; k < l(); ++k) {
    const float* a = direction(k);
    double dot = 0.0;
    for (int64_t c = 0; c < dim_; ++c) dot += static_cast<double>(a[c]) * x[c];
    codes[k] = code(dot, k);
  }
}

Clustering cluster_codes(const int64_t* codes, int64_t n, int l) {
  Clustering out;
  cluster_codes(codes, n, l, out);
  return out;
}

namespace {

// Slots of an open-addressing map for n items: a power of two, at most half full.
size_t map_capacity(int64_t n) {
  size_t capacity = 16;
  while (capacity < static_cast<size_t>(2 * n)) capacity *= 2;
  return capacity;
}

// Each item's whole code packed into one 64-bit key, 64 / l bits per hash value, when every value
// fits its field (LSH codes are small integers, a few dozen buckets either side of 0). Packing is
// then one-to-one, so equal keys mean equal codes. False when some value does not fit.
bool pack_codes(const int64_t* codes, int64_t n, int l, std::vector<uint64_t>& keys) {
  const int bits = 64 / l;
  if (bits < 4) return false;
  keys.resize(static_cast<size_t>(n));
  if (bits >= 64) {
    for (int64_t i = 0; i < n; ++i) keys[static_cast<size_t>(i)] = static_cast<uint64_t>(codes[i]);
    return true;
  }
  const int64_t half = int64_t{1} << (bits - 1);
  bool fits = true;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t key = 0;
    for (int k = 0; k < l; ++k) {
      const int64_t v = codes[i * l + k];
      fits &= v >= -half && v < half;
      key |= (static_cast<uint64_t>(v) + static_cast<uint64_t>(half)) << (bits * k);  // unsigned: no overflow when v does not fit
    }
    keys[static_cast<size_t>(i)] = key;
  }
  return fits;
}

// cluster_codes on packed keys: one multiply to hash and one compare to match, where the general
// path below mixes l values per item and compares l values per probe (codes and clustering were
// half of the per-head compression on 400-token e5 documents; this path cut them by 38 %, 2026-12-06).
void cluster_keys(const std::vector<uint64_t>& keys, Clustering& out) {
  const int64_t n = static_cast<int64_t>(keys.size());
  out.table.resize(static_cast<size_t>(n));
  out.clusters = 0;
  const size_t capacity = map_capacity(n);
  const int shift = 64 - std::countr_zero(capacity);  // the hash's top log2(capacity) bits pick the slot
  thread_local std::vector<int32_t> slots;  // slot -> cluster, -1 empty
  thread_local std::vector<uint64_t> slot_keys;
  slots.assign(capacity, -1);
  slot_keys.resize(capacity);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t key = keys[static_cast<size_t>(i)];
    size_t s = static_cast<size_t>((key * 0x9e3779b97f4a7c15ULL) >> shift);  // Fibonacci hashing
    while (slots[s] >= 0 && slot_keys[s] != key) s = (s + 1) & (capacity - 1);
    if (slots[s] < 0) slots[s] = out.clusters++, slot_keys[s] = key;
    out.table[static_cast<size_t>(i)] = slots[s];
  }
}

}  // namespace

void cluster_codes(const int64_t* codes, int64_t n, int l, Clustering& out) {
  thread_local std::vector<uint64_t> keys;
  if (pack_codes(codes, n, l, keys)) {
    cluster_keys(keys, out);
    return;
  }
  // Some value too large to pack (w -> 0, or l > 16): the general map keyed by the whole code.
  out.table.resize(static_cast<size_t>(n));
  out.clusters = 0;
  const size_t capacity = map_capacity(n);
  thread_local std::vector<int32_t> slots, first;  // slot -> cluster (-1 empty); cluster -> first item
  slots.assign(capacity, -1);
  first.clear();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t* code = codes + i * l;
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int k = 0; k < l; ++k) h = mix(h ^ static_cast<uint64_t>(code[k]));
    size_t s = h & (capacity - 1);
    while (true) {
      const int32_t c = slots[s];
      if (c < 0) {
        slots[s] = out.clusters;
        first.push_back(static_cast<int32_t>(i));
        out.table[static_cast<size_t>(i)] = out.clusters++;
        break;
      }
      if (std::equal(code, code + l, codes + static_cast<int64_t>(first[static_cast<size_t>(c)]) * l)) {
        out.table[static_cast<size_t>(i)] = c;
        break;
      }
      s = (s + 1) & (capacity - 1);
    }
  }
}

void cluster_means(const float* x, int64_t x_stride, int64_t dim, const Clustering& clustering, float* out) {
  cluster_means_sorted(x, x_stride, dim, clustering.table.data(), static_cast<int64_t>(clustering.table.size()),
                       clustering.clusters, nullptr, nullptr, out);
}

KeyPairs key_pairs(const int32_t* ct1, const int32_t* ct2, int64_t n) {
  // Cluster numbers are non-negative int32, so (ct1, ct2) packs into one key as is.
  thread_local std::vector<uint64_t> keys;
  keys.resize(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    keys[static_cast<size_t>(j)] = (static_cast<uint64_t>(static_cast<uint32_t>(ct1[j])) << 32) | static_cast<uint32_t>(ct2[j]);
  Clustering c;
  cluster_keys(keys, c);
  KeyPairs p;
  p.ct1.resize(static_cast<size_t>(c.clusters));
  p.ct2.resize(static_cast<size_t>(c.clusters));
  p.count.assign(static_cast<size_t>(c.clusters), 0);
  for (int64_t j = 0; j < n; ++j) {
    const size_t q = static_cast<size_t>(c.table[static_cast<size_t>(j)]);
    p.ct1[q] = ct1[j], p.ct2[q] = ct2[j];
    ++p.count[q];
  }
  p.of_token = std::move(c.table);
  return p;
}

void aggregate_probabilities(const float* sbar_t, int64_t ld, int32_t k0, int32_t k1, int32_t k2, const KeyPairs& pairs,
                             float* ap_t, double* z, float* e_t) {
  const int64_t np = static_cast<int64_t>(pairs.count.size());
  thread_local std::vector<float> row_max, scratch;
  row_max.resize(static_cast<size_t>(ld));
  int64_t e_stride = ld;
  if (!e_t) {  // one reused row is enough when nobody reads the e values
    scratch.resize(static_cast<size_t>(ld));
    e_t = scratch.data();
    e_stride = 0;
  }
  aggregate_columns(sbar_t, ld, k0, k1, k2, pairs.ct1.data(), pairs.ct2.data(), pairs.count.data(), np, ap_t, row_max.data(),
                    e_t, e_stride);
  // Each e_j was added twice, so the softmax denominator is half the row sum (section III-C).
  for (int32_t c = 0; c < k0; ++c) z[c] = 0.0;
  for (int32_t j = 0; j < k1 + k2; ++j)
    for (int32_t c = 0; c < k0; ++c) z[c] += ap_t[j * ld + c];
  for (int32_t c = 0; c < k0; ++c) z[c] /= 2.0;
}

void cta_compress(const CtaHeadInput& in, CtaCompressed& z) {
  const int64_t n = in.n, dw = in.dim;
  const int l = in.lsh[0]->l();
  thread_local std::vector<int64_t> codes;
  thread_local std::vector<double> shifted, residual_proj;
  codes.resize(static_cast<size_t>(n * l));
  shifted.resize(static_cast<size_t>(n * l));
  // One level's codes: shifted[i l + k] = <x_i, a_k> (- the residual term) + b_k, gathered row by
  // row, then floor(shifted / w) in one flat vector loop (LshFamily::code's arithmetic, in double).
  auto level_codes = [&](int level, const double* residual) {
    const LshFamily& lsh = *in.lsh[level];
    for (int64_t i = 0; i < n; ++i) {
      const float* p = in.projections + i * in.proj_stride + level * l;
      const double* r = residual ? residual + static_cast<int64_t>(z.ct1.table[static_cast<size_t>(i)]) * l : nullptr;
      double* v = shifted.data() + i * l;
      for (int k = 0; k < l; ++k) v[k] = (static_cast<double>(p[k]) - (r ? r[k] : 0.0)) + lsh.offset(k);
    }
    bucket_codes(shifted.data(), n * l, lsh.w(), codes.data());
  };

  // LSH_0 on the query tokens, LSH_1 on the key/value tokens (both the layer input X).
  level_codes(0, nullptr);
  cluster_codes(codes.data(), n, l, z.ct0);
  const Clustering& ct0 = z.ct0;
  level_codes(1, nullptr);
  cluster_codes(codes.data(), n, l, z.ct1);
  const Clustering& ct1 = z.ct1;
  const int32_t k0 = ct0.clusters, k1 = ct1.clusters;

  // LSH_2 on the residuals r_j = x_j - C1[CT1 j]. Its projections <r_j, a> are computed by linearity
  // as <x_j, a> - mean over j's LSH_1 cluster of <x, a>: the same numbers as hashing the residual
  // vectors (up to rounding), without a second pass over dw-dimensional rows.
  residual_proj.assign(static_cast<size_t>(k1 * l), 0.0);
  thread_local std::vector<int32_t> count1;
  count1.assign(static_cast<size_t>(k1), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t c = ct1.table[static_cast<size_t>(i)];
    ++count1[static_cast<size_t>(c)];
    const float* p = in.projections + i * in.proj_stride + 2 * l;
    for (int k = 0; k < l; ++k) residual_proj[static_cast<size_t>(c * l + k)] += static_cast<double>(p[k]);
  }
  for (int32_t c = 0; c < k1; ++c)
    for (int k = 0; k < l; ++k) residual_proj[static_cast<size_t>(c * l + k)] /= count1[static_cast<size_t>(c)];
  level_codes(2, residual_proj.data());
  cluster_codes(codes.data(), n, l, z.ct2);
  const Clustering& ct2 = z.ct2;
  const int32_t k2 = ct2.clusters, kc = k1 + k2;

  // Centroids (Fig. 4 b): C0 from X by CT0; Ccat = [C1; C2], C2 the means of the residuals by CT2.
  std::vector<float>& c0 = z.c0;
  std::vector<float>& ccat = z.ccat;
  c0.resize(static_cast<size_t>(k0 * dw));
  ccat.resize(static_cast<size_t>(kc * dw));
  cluster_means(in.x, in.x_stride, dw, ct0, c0.data());
  cluster_means(in.x, in.x_stride, dw, ct1, ccat.data());
  cluster_means_sorted(in.x, in.x_stride, dw, ct2.table.data(), n, k2, ccat.data(), ct1.table.data(), ccat.data() + k1 * dw);
  z.pairs = key_pairs(ct1.table.data(), ct2.table.data(), n);
  z.count0.assign(static_cast<size_t>(k0), 0);
  for (int32_t c : ct0.table) ++z.count0[static_cast<size_t>(c)];
}

CtaHeadResult cta_head_attention(const CtaHeadInput& in, float* out, int64_t out_stride, HeadStatistics stats) {
  const int64_t n = in.n, dw = in.dim, d = in.head_dim;
  const int l = in.lsh[0]->l();
  if (n <= 0) return {};
  thread_local CtaCompressed compressed;
  cta_compress(in, compressed);
  const int32_t k0 = compressed.ct0.clusters, k1 = compressed.ct1.clusters, kc = k1 + compressed.ct2.clusters;

  // Eq. 3: projections of the centroids only. The bias is added to the query centroids and the
  // LSH_1 key/value centroids, not to the residual centroids: x ~ C1 + C2 gives
  // W x + b ~ (W C1 + b) + W C2, so the affine part must be counted once (eq. 4).
  thread_local std::vector<float> qbar, kvbar;
  qbar.resize(static_cast<size_t>(k0 * d));
  kvbar.resize(static_cast<size_t>(kc * 2 * d));
  gemm(k0, d, dw, {compressed.c0.data(), dw}, {in.w_q, in.w_stride}, qbar.data(), d);
  gemm(kc, 2 * d, dw, {compressed.ccat.data(), dw}, {in.w_kv, in.w_stride}, kvbar.data(), 2 * d);
  for (int32_t c = 0; c < k0; ++c)
    for (int64_t j = 0; j < d; ++j) qbar[static_cast<size_t>(c * d + j)] += in.b_q[j];
  for (int32_t c = 0; c < k1; ++c)
    for (int64_t j = 0; j < 2 * d; ++j) kvbar[static_cast<size_t>(c * 2 * d + j)] += in.b_kv[j];

  CtaHeadResult result = cta_attend(compressed, n, d, in.scale, qbar.data(), d, kvbar.data(), 2 * d, out, out_stride, stats);
  result.counts.linear_macs = static_cast<double>(k0 + 2 * kc) * dw * d;
  result.counts.dense_linear_macs = 3.0 * n * dw * d;
  // Hashing (3 l n dw MACs, done by the caller's GEMM) and centroid aggregation (3 n dw adds).
  result.counts.overhead_ops += 2.0 * 3 * l * n * dw + 3.0 * n * dw;
  return result;
}

CtaHeadResult cta_attend(const CtaCompressed& compressed, int64_t n, int64_t d, float scale, const float* qbar,
                         int64_t q_stride, const float* kvbar, int64_t kv_stride, float* out, int64_t out_stride,
                         HeadStatistics stats) {
  CtaHeadResult result;
  if (n <= 0) return result;
  const Clustering &ct0 = compressed.ct0, &ct1 = compressed.ct1, &ct2 = compressed.ct2;
  const int32_t k0 = ct0.clusters, k1 = ct1.clusters, k2 = ct2.clusters, kc = k1 + k2;

  // Eq. 5: compressed scores, k0 x (k1 + k2), computed transposed (Sbar^T = Kbar Qbar^T / sqrt(d))
  // for the column-layout aggregation, rows padded to whole 16-float vectors (pad columns 0).
  // Products this small run in the register-blocked loop; larger ones (long inputs) in oneDNN,
  // which reads Qbar and Vbar where they are and writes Obar row-major, without transposes.
  const int64_t ld = (k0 + 15) / 16 * 16;
  const bool library = static_cast<double>(k0) * kc * d >= kLibraryGemmMacs;
  thread_local std::vector<float> qt, sbar_t, ap_t, vt, obar_t, obar, e_t;
  sbar_t.resize(static_cast<size_t>(kc * ld));
  if (library) {
    gemm_nt(kc, k0, d, {kvbar, kv_stride}, {qbar, q_stride}, sbar_t.data(), ld);
    for (int64_t j = 0; j < kc; ++j) {
      float* row = sbar_t.data() + j * ld;
      for (int64_t c = 0; c < k0; ++c) row[c] *= scale;
      std::fill(row + k0, row + ld, 0.0f);
    }
  } else {
    qt.assign(static_cast<size_t>(d * ld), 0.0f);
    for (int32_t c = 0; c < k0; ++c)
      for (int64_t t = 0; t < d; ++t) qt[static_cast<size_t>(t * ld + c)] = qbar[c * q_stride + t] * scale;
    small_gemm(kc, ld, d, kvbar, kv_stride, qt.data(), ld, sbar_t.data(), ld);
  }

  // Probability aggregation (Fig. 6, eq. 7) over the distinct key pairs.
  thread_local std::vector<double> z;
  const std::vector<int32_t>& count0 = compressed.count0;
  const KeyPairs& pairs = compressed.pairs;
  const int64_t np = static_cast<int64_t>(pairs.count.size());
  ap_t.resize(static_cast<size_t>(kc * ld));
  z.resize(static_cast<size_t>(k0));
  if (stats.received) e_t.resize(static_cast<size_t>(np * ld));
  aggregate_probabilities(sbar_t.data(), ld, k0, k1, k2, pairs, ap_t.data(), z.data(), stats.received ? e_t.data() : nullptr);
  if (stats.received) {
    // Per-token received attention for the pruning policies: sum_i P_ij over the queries i,
    // i.e. sum_c |c| e_cj / Z_c, the same for every token of a pair.
    thread_local std::vector<float> f, received_pair;
    f.resize(static_cast<size_t>(k0));
    for (int32_t c = 0; c < k0; ++c) f[static_cast<size_t>(c)] = static_cast<float>(count0[static_cast<size_t>(c)] / z[static_cast<size_t>(c)]);
    received_pair.assign(static_cast<size_t>(np), 0.0f);
    for (int64_t p = 0; p < np; ++p) {
      float acc = 0.0f;
      for (int32_t c = 0; c < k0; ++c) acc += f[static_cast<size_t>(c)] * e_t[static_cast<size_t>(p * ld + c)];
      received_pair[static_cast<size_t>(p)] = acc;
    }
    for (int64_t j = 0; j < n; ++j) stats.received[j] += received_pair[static_cast<size_t>(pairs.of_token[static_cast<size_t>(j)])];
  }
  // Eq. 8: Obar = AP Vbar, each row divided by sum(AP row) / 2.
  obar.resize(static_cast<size_t>(k0 * d));
  if (library) {
    gemm_tn(k0, d, kc, {ap_t.data(), ld}, {kvbar + d, kv_stride}, obar.data(), d);
  } else {  // as Obar^T = Vbar^T AP^T
    vt.resize(static_cast<size_t>(d * kc));
    for (int32_t j = 0; j < kc; ++j)
      for (int64_t t = 0; t < d; ++t) vt[static_cast<size_t>(t * kc + j)] = kvbar[j * kv_stride + d + t];
    obar_t.resize(static_cast<size_t>(d * ld));
    small_gemm(d, ld, kc, vt.data(), kc, ap_t.data(), ld, obar_t.data(), ld);
    for (int32_t c = 0; c < k0; ++c)
      for (int64_t t = 0; t < d; ++t) obar[static_cast<size_t>(c * d + t)] = obar_t[static_cast<size_t>(t * ld + c)];
  }
  double magnitude = 0.0;
  for (int32_t c = 0; c < k0; ++c) {
    const float inv_z = static_cast<float>(1.0 / z[static_cast<size_t>(c)]);
    float* o = obar.data() + c * d;
    float s = 0.0f;
    for (int64_t t = 0; t < d; ++t) s += std::fabs(o[t] *= inv_z);
    magnitude += static_cast<double>(count0[static_cast<size_t>(c)]) * s;
  }
  if (stats.output_magnitude) *stats.output_magnitude += static_cast<float>(magnitude);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * out_stride, obar.data() + ct0.table[static_cast<size_t>(i)] * d, sizeof(float) * d);

  result.k0 = k0, result.k1 = k1, result.k2 = k2;
  CtaCounts& cnt = result.counts;
  cnt.attention_macs = 2.0 * k0 * kc * d;
  cnt.dense_attention_macs = 2.0 * n * n * d;
  // Probability aggregation: 3 adds + 1 exponential per row and key pair (the paper's 3 k0 n adds
  // with tokens of equal (CT1, CT2) merged), in FLOPs.
  cnt.overhead_ops = 4.0 * k0 * static_cast<double>(np);
  return result;
}

CtaConfig CtaConfig::make(double w, int l, uint64_t seed, std::vector<uint8_t> enabled, int64_t hidden, int heads,
                          bool shared) {
  CtaConfig c;
  c.w = w, c.l = l, c.seed = seed, c.enabled = std::move(enabled), c.shared = shared;
  if (shared) heads = 1;  // one triple per layer (drawn as head 0's)
  c.layers.resize(c.enabled.size());
  for (size_t layer = 0; layer < c.enabled.size(); ++layer) {
    if (!c.enabled[layer]) continue;
    Layer& L = c.layers[layer];
    L.shared = shared;
    const int64_t cols = static_cast<int64_t>(heads) * 3 * l;
    L.directions_t.assign(static_cast<size_t>(hidden * cols), 0.0f);
    for (int h = 0; h < heads; ++h) {
      for (int level = 0; level < 3; ++level) {
        // One generator per (seed, layer, head, level): std::seed_seq's mixing is specified.
        std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(layer),
                          static_cast<uint32_t>(h), static_cast<uint32_t>(level)};
        uint32_t words[2];
        seq.generate(words, words + 2);
        L.lsh.emplace_back(hidden, l, w, (static_cast<uint64_t>(words[0]) << 32) | words[1]);
        const LshFamily& f = L.lsh.back();
        for (int k = 0; k < l; ++k)
          for (int64_t r = 0; r < hidden; ++r)
            L.directions_t[static_cast<size_t>(r * cols + (h * 3 + level) * l + k)] = f.direction(k)[r];
      }
    }
  }
  return c;
}

void CtaStats::add(const CtaStats& o) {
  per_example.insert(per_example.end(), o.per_example.begin(), o.per_example.end());
  if (k0.size() < o.k0.size()) {
    k0.resize(o.k0.size()), k1.resize(o.k0.size()), k2.resize(o.k0.size()), n.resize(o.k0.size());
    heads.resize(o.k0.size());
  }
  for (size_t i = 0; i < o.k0.size(); ++i) {
    k0[i] += o.k0[i], k1[i] += o.k1[i], k2[i] += o.k2[i], n[i] += o.n[i];
    heads[i] += o.heads[i];
  }
}

std::string CtaBackend::describe() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "cta(w=%g, l=%d, seed=%llu", config_.w, config_.l,
                static_cast<unsigned long long>(config_.seed));
  std::string s = buf;
  if (config_.shared) s += ", share=layer";
  if (std::find(config_.enabled.begin(), config_.enabled.end(), 0) != config_.enabled.end()) {
    s += ", layers=";
    bool first = true;
    for (size_t i = 0; i < config_.enabled.size(); ++i)
      if (config_.enabled[i]) {
        if (!first) s += '/';
        s += std::to_string(i);
        first = false;
      }
  }
  return s + ")";
}

}  // namespace sieve
