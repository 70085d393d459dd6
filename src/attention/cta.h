#pragma once
// Compressed Token Attention (CTA; the seed paper, sections III-A to III-D, is the specification).
//
// Per layer and head, the layer's INPUT rows X (before the Q/K/V projections) are clustered with
// locality-sensitive hashing, and attention runs among the cluster centroids:
//   LSH      h(x) = floor((A x + b) / w), l hash functions, A ~ N(0,1), b ~ U(0,w)       (eq. 1)
//   queries  LSH_0 on X: k0 centroids C0, table CT0
//   keys     LSH_1 on X: k1 centroids C1, table CT1; LSH_2 on the residuals X - C1[CT1]: k2
//            centroids C2, table CT2, so x_j ~ C1[CT1 j] + C2[CT2 j]                    (eq. 2)
//   linears  Qbar = C0 Wq + bq, Kbar/Vbar = [C1; C2] [Wk Wv] (+ bias on the C1 rows only) (eq. 3)
//   scores   Sbar = Qbar Kbar^T / sqrt(d), k0 x (k1 + k2)                                 (eq. 5)
//   recovery S_ij = Sbar[CT0 i, CT1 j] + Sbar[CT0 i, k1 + CT2 j]                          (eq. 6)
//   AP       AP[c, CT1 j] += e_cj and AP[c, k1 + CT2 j] += e_cj, e_cj = exp(S_cj - max_j S_cj)
//   output   Obar = AP Vbar / (sum_j AP[c, j] / 2), O_i = Obar[CT0 i]                    (eq. 7-8)
//
// Where the paper is ambiguous or silent, and what we chose:
//  - per head: every (layer, head) has its own LSH_0/1/2 (independent draws), so k0, k1, k2 are
//    per head (section II-B motivates clustering per head; the formulas are written for one head).
//    share=layer (CtaConfig::shared) instead clusters once per layer for all heads, which lets two
//    GEMMs per layer project the centroids for every head (C0 on all Q columns, [C1; C2] on all
//    K|V columns): an option, not the paper's reading;
//  - "the max" subtracted before exp (Fig. 6): the exact row max of the recovered scores;
//  - biases: added to Qbar and to the LSH_1 rows of Kbar/Vbar, not to the residual rows (eq. 4
//    adds two projected centroids; an affine bias must be counted once), so w -> 0 is exact;
//  - LSH_2's projections <x - C1[CT1 x], a> are computed by linearity from <x, a> (same codes);
//  - the cluster tree (Fig. 4a) is replaced by a hash map giving the same table;
//  - the aggregation runs over distinct (CT1, CT2) key pairs weighted by their token counts (the
//    same sums as Fig. 6's per-token loop, fewer steps), with a vectorized exp (~1e-7 relative);
//  - RL = sum (k0 + 2 (k1 + k2)) dw d / sum 3 n dw d and RA = sum 2 k0 (k1 + k2) d / sum 2 n^2 d
//    (MACs of eq. 3, and of eq. 5 + eq. 8, over the example's layers and heads; layers not using
//    CTA count at their dense cost); hashing and aggregation work is reported separately;
//  - the attention output projection (W_O) stays dense on all rows, as in the paper.
//
// The pieces are separate functions so each can be tested against a naive reconstruction:
// LshFamily (hashing), cluster_codes (the one-pass cluster table), cluster_means, the probability
// aggregation, and cta_head_attention (one sequence, one head, end to end).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/fused_attention.h"
#include "policies/layer_policy.h"

namespace sieve {

// l hash functions over `dim`-dimensional vectors. Directions and offsets come from a
// std::mt19937_64 through explicit transforms (Box-Muller for N(0,1), 53-bit mantissa for U(0,1)),
// so the same seed gives the same family with any standard library.
class LshFamily {
 public:
  LshFamily() = default;
  LshFamily(int64_t dim, int l, double w, uint64_t seed);
  LshFamily(std::vector<float> directions, std::vector<double> offsets, int64_t dim, double w);  // explicit (tests)

  int64_t dim() const { return dim_; }
  int l() const { return static_cast<int>(offsets_.size()); }
  double w() const { return w_; }
  const float* direction(int k) const { return directions_.data() + static_cast<size_t>(k) * static_cast<size_t>(dim_); }
  double offset(int k) const { return offsets_[static_cast<size_t>(k)]; }

  // floor((<x, a_k> + b_k) / w), from an already computed projection <x, a_k>. Clamped to the
  // int64 range so a tiny w cannot overflow.
  int64_t code(double projection, int k) const;
  // The whole code of one vector: codes[k] for k < l.
  void hash(const float* x, int64_t* codes) const;

 private:
  std::vector<float> directions_;  // [l, dim]
  std::vector<double> offsets_;    // [l]
  int64_t dim_ = 0;
  double w_ = 1.0;
};

// A cluster table: table[i] is the cluster of item i; clusters are numbered in order of first
// appearance (0, 1, ...), so the result does not depend on hash-map iteration order.
struct Clustering {
  std::vector<int32_t> table;
  int32_t clusters = 0;
};

// Items with equal l-dimensional codes (codes[i * l .. i * l + l)) share a cluster. One pass over an
// open-addressing hash map keyed by the whole code (the paper's cluster tree gives the same table).
Clustering cluster_codes(const int64_t* codes, int64_t n, int l);
void cluster_codes(const int64_t* codes, int64_t n, int l, Clustering& out);  // reuses out's buffer

// Centroids: out[c] = mean of rows x_i (stride x_stride, dim columns) with table[i] == c.
// out is [clusters, dim], row stride dim.
void cluster_means(const float* x, int64_t x_stride, int64_t dim, const Clustering& clustering, float* out);

// Key tokens with the same (CT1, CT2) pair have the same recovered score in every row (eq. 6) and
// the same recovered value (eq. 4), so the aggregation runs over the distinct pairs, each weighted
// by its token count: the same sums as the paper's per-token loop (Fig. 6), in P <= n steps.
struct KeyPairs {
  std::vector<int32_t> ct1, ct2, count;  // [P]: the pair's LSH_1 and LSH_2 clusters, its tokens
  std::vector<int32_t> of_token;         // [n]: the pair of key token j
};
KeyPairs key_pairs(const int32_t* ct1, const int32_t* ct2, int64_t n);

// Probability aggregation (the paper's Fig. 6) for all compressed query rows c < k0 at once:
//   s_cp = Sbar[c, ct1_p] + Sbar[c, k1 + ct2_p]  (eq. 6), m_c = max_p s_cp, e_cp = exp(s_cp - m_c),
//   AP[c, ct1_p] += count_p e_cp, AP[c, k1 + ct2_p] += count_p e_cp  (each e lands twice, Fig. 6
//   lines 9-10), Z_c = sum_j AP[c, j] / 2 = sum over key tokens of e (the softmax denominator).
// The paper's Fig. 6 subtracts "the max" without saying which; we use the exact row max of the
// recovered scores (any constant cancels; this one keeps every exponent <= 0).
// Layout is transposed ("column" layout, k0 contiguous): sbar_t and ap_t are [k1 + k2, ld], ld >= k0
// (a multiple of 16 lets every row run in whole 16-float vectors: then columns k0 .. round-up(k0, 16)
// must hold finite scores, and their ap_t entries are scratch); ap_t is overwritten, z gets [k0].
// If e_t is not null it receives e as [P, ld]; key token j's probability from query cluster c is
// e_t[of_token[j] * ld + c] / z[c].
void aggregate_probabilities(const float* sbar_t, int64_t ld, int32_t k0, int32_t k1, int32_t k2, const KeyPairs& pairs,
                             float* ap_t, double* z, float* e_t = nullptr);

// Multiply-adds per (sequence, head), as the paper's section III-D counts them, and the dense ones
// for the same n, so RL and RA are exact ratios of what was computed.
struct CtaCounts {
  double linear_macs = 0;          // (k0 + 2 (k1 + k2)) dw d      dense: 3 n dw d
  double attention_macs = 0;       // 2 k0 (k1 + k2) d             dense: 2 n^2 d
  double dense_linear_macs = 0;
  double dense_attention_macs = 0;
  double overhead_ops = 0;         // hashing MACs + centroid and probability aggregation adds
  void add(const CtaCounts& o) {
    linear_macs += o.linear_macs, attention_macs += o.attention_macs, dense_linear_macs += o.dense_linear_macs;
    dense_attention_macs += o.dense_attention_macs, overhead_ops += o.overhead_ops;
  }
};

// One sequence and one head. x: the layer's input rows (n of them, dim dw, stride x_stride);
// projections: <x_i, a> for the 3 l directions of LSH_0, LSH_1, LSH_2 in that order (row i at
// projections + i * proj_stride), computed by the caller in one GEMM for all heads.
// w_q / w_kv: the head's [dw, d] query and [dw, 2d] key|value weight slices (row stride w_stride);
// b_q / b_kv their biases.
struct CtaHeadInput {
  const float* x = nullptr;
  int64_t x_stride = 0, n = 0, dim = 0, head_dim = 0;
  const float* projections = nullptr;
  int64_t proj_stride = 0;
  const LshFamily* lsh[3] = {nullptr, nullptr, nullptr};  // LSH_0, LSH_1, LSH_2 (same l and w)
  const float* w_q = nullptr;
  const float* w_kv = nullptr;
  int64_t w_stride = 0;
  const float* b_q = nullptr;
  const float* b_kv = nullptr;
  float scale = 1.0f;
};

// Token compression (sections III-A, III-B) of one head's input: the three cluster tables and the
// centroids c0 = C0 [k0, dw] and ccat = [C1; C2] [k1 + k2, dw] (eq. 2); for the attention, the
// distinct key pairs and the query clusters' sizes (shared by every head that uses this clustering).
struct CtaCompressed {
  Clustering ct0, ct1, ct2;
  std::vector<float> c0, ccat;
  KeyPairs pairs;
  std::vector<int32_t> count0;  // [k0]: tokens per query cluster
};
// `out`'s buffers are reused across calls (no allocation per head once warm).
void cta_compress(const CtaHeadInput& in, CtaCompressed& out);

struct CtaHeadResult {
  int32_t k0 = 0, k1 = 0, k2 = 0;
  CtaCounts counts;
};

// Writes O_i = Obar[CT0 i] to out (row stride out_stride, head_dim columns); stats as in
// fused_attention, from the recovered probabilities P_ij = e_{CT0 i, j} / Z_{CT0 i}.
CtaHeadResult cta_head_attention(const CtaHeadInput& in, float* out, int64_t out_stride, HeadStatistics stats);

// Eq. 5-8 for one head, from its compressed tables and projected centroids: Qbar row c at
// qbar + c * q_stride ([d]), Kbar row j at kvbar + j * kv_stride and Vbar row j right after it.
// Fills k0/k1/k2 and the counts of the attention part (attention_macs, dense_attention_macs,
// aggregation work in overhead_ops); the caller adds the linear and hashing terms.
CtaHeadResult cta_attend(const CtaCompressed& compressed, int64_t n, int64_t d, float scale, const float* qbar,
                         int64_t q_stride, const float* kvbar, int64_t kv_stride, float* out, int64_t out_stride,
                         HeadStatistics stats);

// The CTA settings of a model: one LSH_0/1/2 triple per (layer, head), drawn from `seed`,
// layer, head and level, so restricting `layers` does not change the other layers' hashes.
struct CtaConfig {
  double w = 2.0;
  int l = 6;
  uint64_t seed = 0;
  std::vector<uint8_t> enabled;  // [layer]
  // share=layer: one LSH_0/1/2 triple and one clustering per layer, used by every head (not the
  // paper's per-head reading): the centroids are projected by two GEMMs over all heads' columns
  // (query centroids on Q, key/value centroids on K|V: the same MACs as per head, in two large
  // products instead of 2 x heads small ones), and hashing and centroid means cost 1/heads as
  // much. Each head still attends on its own Q/K/V.
  bool shared = false;

  struct Layer {
    std::vector<LshFamily> lsh;  // [head * 3 + level]; shared: [level]
    // All heads' directions transposed, [dw, heads * 3 l], head h's columns at h * 3 l (shared:
    // [dw, 3 l]):
    // one GEMM gives every projection <x_i, a> the layer needs.
    std::vector<float> directions_t;
    bool shared = false;  // CtaConfig::shared
  };
  std::vector<Layer> layers;  // [layer]; empty Layer where CTA is off

  static CtaConfig make(double w, int l, uint64_t seed, std::vector<uint8_t> enabled, int64_t hidden, int heads,
                        bool shared = false);
  bool on(int layer) const { return layer >= 0 && static_cast<size_t>(layer) < enabled.size() && enabled[static_cast<size_t>(layer)]; }
};

// What CTA computed during forward calls: per example (RL, RA) and per layer (k0, k1, k2).
struct CtaStats {
  std::vector<CtaCounts> per_example;  // appended per forward input; all layers, CTA or not
  std::vector<double> k0, k1, k2, n;   // [layer]: sums over (example, head) of CTA heads
  std::vector<int64_t> heads;          // [layer]: number of (example, head) pairs summed
  void add(const CtaStats& other);
  bool empty() const { return per_example.empty(); }
};

// "cta:w=2,l=6[,seed=S][,layers=2-5]": the attention backend, carried in the policy chain so it
// composes with token and head pruning ("spatten:tokens=0.3+cta:w=2"). It prunes nothing itself.
class CtaBackend : public LayerPolicy {
 public:
  explicit CtaBackend(CtaConfig config) : config_(std::move(config)) {}
  std::string describe() const override;
  const CtaConfig* attention_backend(int layer) const override { return config_.on(layer) ? &config_ : nullptr; }
  const CtaConfig& config() const { return config_; }

 private:
  CtaConfig config_;
};

}  // namespace sieve
