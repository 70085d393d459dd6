// Compressed Token Attention (attention/cta.h): hashing, the cluster table, two-level residual
// clustering, probability aggregation against a naive reconstruction of eq. 6-7, w -> 0 equal to
// dense attention (one head and the whole encoder), composition with cascade pruning, the spec.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "attention/cta.h"
#include "model/bert_encoder.h"
#include "policies/policy_spec.h"
#include "test_helpers.h"
#include "tiny_bert.h"
#include "util/error.h"

namespace sieve {
namespace {

using testing::TinyBertShape;

// A [rows, cols] row-major matrix of N(0, scale^2) values.
std::vector<float> random_matrix(int64_t rows, int64_t cols, unsigned seed, float scale = 1.0f) {
  return testing::random_normal(static_cast<size_t>(rows * cols), seed, scale);
}

TEST(CtaHashing, HandComputedCodes) {
  // a1 = (1, 0, 0), a2 = (0, 1, 1), b = (0.5, 0.25), w = 1 and 0.5.
  const std::vector<float> a{1, 0, 0, 0, 1, 1};
  const LshFamily f1(a, {0.5, 0.25}, 3, 1.0), f2(a, {0.5, 0.25}, 3, 0.5);
  const float x[3] = {1.2f, 0.3f, -1.0f};  // <x,a1> = 1.2, <x,a2> = -0.7
  int64_t c[2];
  f1.hash(x, c);
  EXPECT_EQ(c[0], 1);   // floor(1.7)
  EXPECT_EQ(c[1], -1);  // floor(-0.45)
  f2.hash(x, c);
  EXPECT_EQ(c[0], 3);   // floor(3.4)
  EXPECT_EQ(c[1], -1);  // floor(-0.9)
  const float y[3] = {-2.6f, 4.0f, 0.0f};  // <y,a1> = -2.6, <y,a2> = 4
  f1.hash(y, c);
  EXPECT_EQ(c[0], -3);  // floor(-2.1)
  EXPECT_EQ(c[1], 4);   // floor(4.25)
  // Tiny widths do not overflow.
  EXPECT_EQ(LshFamily(a, {0.0, 0.0}, 3, 1e-300).code(1.0, 0), static_cast<int64_t>(9.0e18));
}

TEST(CtaHashing, ReproducibleBySeedAndDistributed) {
  const LshFamily a(4096, 6, 2.0, 42), b(4096, 6, 2.0, 42), c(4096, 6, 2.0, 43);
  bool differs = false;
  for (int k = 0; k < 6; ++k) {
    EXPECT_EQ(a.offset(k), b.offset(k));
    EXPECT_GE(a.offset(k), 0.0);
    EXPECT_LT(a.offset(k), 2.0);
    differs |= a.offset(k) != c.offset(k);
    double mean = 0, var = 0;
    for (int64_t i = 0; i < 4096; ++i) {
      ASSERT_EQ(a.direction(k)[i], b.direction(k)[i]);
      differs |= a.direction(k)[i] != c.direction(k)[i];
      mean += a.direction(k)[i];
      var += static_cast<double>(a.direction(k)[i]) * a.direction(k)[i];
    }
    mean /= 4096, var = var / 4096 - mean * mean;
    EXPECT_NEAR(mean, 0.0, 0.1);
    EXPECT_NEAR(var, 1.0, 0.1);
  }
  EXPECT_TRUE(differs);
  // The same spec gives the same hashes in every parse.
  const CtaConfig x = CtaConfig::make(1.5, 6, 7, {1, 0, 1}, 32, 2), y = CtaConfig::make(1.5, 6, 7, {1, 1, 1}, 32, 2);
  EXPECT_TRUE(x.layers[1].lsh.empty());
  ASSERT_EQ(x.layers[2].directions_t, y.layers[2].directions_t);  // other layers do not shift the draws
  EXPECT_NE(y.layers[1].directions_t, y.layers[2].directions_t);
}

TEST(CtaClustering, EqualCodesShareAClusterNumberedByFirstAppearance) {
  const std::vector<int64_t> codes{5, 1, 2, 2, 5, 1, 5, 2, 2, 2, -7, 0};
  const Clustering c = cluster_codes(codes.data(), 6, 2);
  EXPECT_EQ(c.clusters, 4);
  EXPECT_EQ(c.table, (std::vector<int32_t>{0, 1, 0, 2, 1, 3}));
  // Many items: a table equal to a std::map-based grouping.
  std::mt19937 rng(3);
  std::vector<int64_t> big(3000 * 3);
  for (auto& v : big) v = static_cast<int64_t>(rng() % 4) - 2;
  const Clustering b = cluster_codes(big.data(), 3000, 3);
  std::map<std::vector<int64_t>, int32_t> seen;
  for (int i = 0; i < 3000; ++i) {
    const std::vector<int64_t> key(big.begin() + i * 3, big.begin() + i * 3 + 3);
    const auto [it, fresh] = seen.emplace(key, static_cast<int32_t>(seen.size()));
    ASSERT_EQ(b.table[static_cast<size_t>(i)], it->second);
  }
  EXPECT_EQ(b.clusters, static_cast<int32_t>(seen.size()));
}

// cluster_codes packs small codes into one 64-bit key (64 / l bits a value) and keeps a general
// map for the rest: both give the grouping by whole code, at the edges of the packed range too.
TEST(CtaClustering, PackedAndGeneralPathsGroupByWholeCode) {
  std::mt19937_64 rng(5);
  auto grouping = [](const std::vector<int64_t>& codes, int64_t n, int l) {
    std::map<std::vector<int64_t>, int32_t> seen;
    std::vector<int32_t> table;
    for (int64_t i = 0; i < n; ++i) {
      const std::vector<int64_t> key(codes.begin() + i * l, codes.begin() + (i + 1) * l);
      table.push_back(seen.emplace(key, static_cast<int32_t>(seen.size())).first->second);
    }
    return table;
  };
  struct Case { int l; std::vector<int64_t> values; };  // codes drawn from `values`
  const int64_t big = int64_t{1} << 40;
  const std::vector<Case> cases{
      {6, {-512, -511, 0, 1, 510, 511}},                 // 10-bit fields: the edges still pack
      {6, {-512, 0, 511, 512}},                          // 512 does not fit: general path
      {6, {-513, -1, 0}},                                // nor does -513
      {2, {-(int64_t{1} << 31), 0, (int64_t{1} << 31) - 1}},  // 32-bit fields (key pairs)
      {2, {-big, 0, big}},
      {1, {std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()}},  // the code is the key
      {20, {-1, 0, 1}},                                  // 3-bit fields are too narrow: general path
  };
  for (const Case& c : cases) {
    const int64_t n = 500;
    std::vector<int64_t> codes(static_cast<size_t>(n * c.l));
    for (auto& v : codes) v = c.values[rng() % c.values.size()];
    const Clustering got = cluster_codes(codes.data(), n, c.l);
    const std::vector<int32_t> want = grouping(codes, n, c.l);
    EXPECT_EQ(got.table, want) << "l = " << c.l << ", largest value " << c.values.back();
    EXPECT_EQ(got.clusters, *std::max_element(want.begin(), want.end()) + 1);
  }
  // Codes that differ only in a high field, or only by one field's sign, stay apart.
  const std::vector<int64_t> near{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, -1, 1, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0};
  EXPECT_EQ(cluster_codes(near.data(), 4, 6).clusters, 4);
}

// Inputs for one head: n tokens of dimension dw drawn around a few cluster centres.
struct HeadFixture {
  int64_t n = 40, dw = 24, d = 8;
  std::vector<float> x, wqkv, bqkv, proj;
  LshFamily lsh[3];
  CtaHeadInput in;

  HeadFixture(double w, unsigned seed = 11) {
    const auto centres = random_matrix(5, dw, seed, 2.0f);
    const auto noise = random_matrix(n, dw, seed + 1, 0.05f);
    x.resize(static_cast<size_t>(n * dw));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < dw; ++c) x[i * dw + c] = centres[(i % 5) * dw + c] + noise[i * dw + c];
    wqkv = random_matrix(dw, 3 * d, seed + 2, 0.3f);
    bqkv = random_matrix(1, 3 * d, seed + 3, 0.3f);
    const int l = 6;
    proj.assign(static_cast<size_t>(n * 3 * l), 0.0f);
    for (int level = 0; level < 3; ++level) {
      lsh[level] = LshFamily(dw, l, w, seed * 10 + level);
      for (int64_t i = 0; i < n; ++i)
        for (int k = 0; k < l; ++k) {
          double dot = 0;
          for (int64_t c = 0; c < dw; ++c) dot += static_cast<double>(lsh[level].direction(k)[c]) * x[i * dw + c];
          proj[i * 3 * l + level * l + k] = static_cast<float>(dot);
        }
    }
    in.x = x.data(), in.x_stride = dw, in.n = n, in.dim = dw, in.head_dim = d;
    in.projections = proj.data(), in.proj_stride = 3 * l;
    for (int level = 0; level < 3; ++level) in.lsh[level] = &lsh[level];
    in.w_q = wqkv.data(), in.w_kv = wqkv.data() + d, in.w_stride = 3 * d;
    in.b_q = bqkv.data(), in.b_kv = bqkv.data() + d;
    in.scale = 1.0f / std::sqrt(static_cast<float>(d));
  }

  // Dense attention in double: O[i] and received[j] = sum_i P[i, j].
  void dense(std::vector<double>& out, std::vector<double>& received) const {
    std::vector<double> q(n * d), k(n * d), v(n * d);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < d; ++c) {
        double a = bqkv[c], b = bqkv[d + c], e = bqkv[2 * d + c];
        for (int64_t t = 0; t < dw; ++t) {
          a += static_cast<double>(x[i * dw + t]) * wqkv[t * 3 * d + c];
          b += static_cast<double>(x[i * dw + t]) * wqkv[t * 3 * d + d + c];
          e += static_cast<double>(x[i * dw + t]) * wqkv[t * 3 * d + 2 * d + c];
        }
        q[i * d + c] = a, k[i * d + c] = b, v[i * d + c] = e;
      }
    out.assign(static_cast<size_t>(n * d), 0.0);
    received.assign(static_cast<size_t>(n), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> s(static_cast<size_t>(n));
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += q[i * d + c] * k[j * d + c];
        s[j] = dot / std::sqrt(static_cast<double>(d));
        mx = std::max(mx, s[j]);
      }
      for (double& t : s) z += (t = std::exp(t - mx));
      for (int64_t j = 0; j < n; ++j) {
        received[j] += s[j] / z;
        for (int64_t c = 0; c < d; ++c) out[i * d + c] += s[j] / z * v[j * d + c];
      }
    }
  }
};

TEST(CtaClustering, TwoLevelResidualClustering) {
  HeadFixture f(1.5);
  CtaCompressed z;
  cta_compress(f.in, z);
  const int64_t n = f.n, dw = f.dw;
  const int32_t k1 = z.ct1.clusters, k2 = z.ct2.clusters;
  EXPECT_LT(z.ct0.clusters, n);
  EXPECT_LT(k1, n);
  EXPECT_GT(k2, 1);
  // Level 1: LSH_1 codes of the tokens themselves; level 2: LSH_2 codes of the explicit residuals
  // x - C1[CT1] (the engine gets them by linearity from <x, a>).
  std::vector<int64_t> codes1(n * 6), codes2(n * 6);
  std::vector<float> residual(n * dw);
  for (int64_t i = 0; i < n; ++i) f.lsh[1].hash(f.x.data() + i * dw, codes1.data() + i * 6);
  EXPECT_EQ(cluster_codes(codes1.data(), n, 6).table, z.ct1.table);
  std::vector<float> c1(k1 * dw);
  cluster_means(f.x.data(), dw, dw, z.ct1, c1.data());
  for (int32_t c = 0; c < k1; ++c)
    for (int64_t t = 0; t < dw; ++t) ASSERT_NEAR(z.ccat[c * dw + t], c1[c * dw + t], 1e-6);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t t = 0; t < dw; ++t) residual[i * dw + t] = f.x[i * dw + t] - c1[z.ct1.table[i] * dw + t];
    f.lsh[2].hash(residual.data() + i * dw, codes2.data() + i * 6);
  }
  const Clustering explicit2 = cluster_codes(codes2.data(), n, 6);
  EXPECT_EQ(explicit2.table, z.ct2.table);
  // C2 is the mean residual of each LSH_2 cluster, and x ~ C1[CT1] + C2[CT2] (eq. 2) is closer
  // than C1[CT1] alone.
  std::vector<float> c2(k2 * dw);
  cluster_means(residual.data(), dw, dw, explicit2, c2.data());
  double err1 = 0, err2 = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < dw; ++t) {
      const float two = z.ccat[(k1 + z.ct2.table[i]) * dw + t];
      ASSERT_NEAR(two, c2[z.ct2.table[i] * dw + t], 1e-5);
      const double r = residual[i * dw + t];
      err1 += r * r;
      err2 += (r - two) * (r - two);
    }
  EXPECT_LT(err2, err1);
}

// Rows ld apart: k0 = 7 runs the scalar columns only, k0 = 37 two 16-float blocks and a scalar tail,
// k0 = 21 in rows padded to 32 whole blocks (the pad columns hold finite scores and are ignored).
TEST(CtaAggregation, MatchesNaiveReconstructionOfEq6And7) {
  const int64_t n = 90, d = 4;
  const int32_t k1 = 9, k2 = 4, kc = k1 + k2;
  for (auto [k0, ld] : {std::pair<int32_t, int64_t>{7, 7}, {37, 37}, {21, 32}}) {
    SCOPED_TRACE("k0 " + std::to_string(k0) + ", ld " + std::to_string(ld));
    std::mt19937 rng(5);
    std::vector<int32_t> ct0(n), ct1(n), ct2(n);
    for (int64_t j = 0; j < n; ++j) ct0[j] = j % k0, ct1[j] = static_cast<int32_t>(rng() % k1), ct2[j] = static_cast<int32_t>(rng() % k2);
    for (int32_t c = 0; c < k1; ++c) ct1[c] = c;  // every cluster non-empty
    const auto sbar = random_matrix(k0, kc, 6, 2.0f), vbar = random_matrix(kc, d, 7);
    const KeyPairs pairs = key_pairs(ct1.data(), ct2.data(), n);
    EXPECT_LT(pairs.count.size(), static_cast<size_t>(n));  // some tokens share (CT1, CT2)
    std::vector<float> sbar_t(kc * ld, 3.0f), ap_t(kc * ld), e_t(pairs.count.size() * ld);
    for (int32_t c = 0; c < k0; ++c)
      for (int32_t j = 0; j < kc; ++j) sbar_t[j * ld + c] = sbar[c * kc + j];
    std::vector<double> half(k0);
    aggregate_probabilities(sbar_t.data(), ld, k0, k1, k2, pairs, ap_t.data(), half.data(), e_t.data());
    for (int64_t i = 0; i < n; ++i) {
      const int32_t c = ct0[i];
      // Naive: recovered scores (eq. 6), softmax over all n keys, recovered values (eq. 4).
      std::vector<double> s(n), o(d, 0.0);
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j] = double(sbar[c * kc + ct1[j]]) + sbar[c * kc + k1 + ct2[j]]);
      for (double& t : s) z += (t = std::exp(t - mx));
      for (int64_t j = 0; j < n; ++j)
        for (int64_t t = 0; t < d; ++t) o[t] += s[j] / z * (double(vbar[ct1[j] * d + t]) + vbar[(k1 + ct2[j]) * d + t]);
      // CTA: AP row, then AP Vbar / (sum AP / 2) (eq. 7-8).
      double total = 0;
      for (int32_t j = 0; j < kc; ++j) total += ap_t[j * ld + c];
      EXPECT_NEAR(half[c], total / 2, 1e-6 * total);
      EXPECT_NEAR(half[c], z, 1e-5 * z);  // max subtracted exactly as the naive one does
      for (int64_t j = 0; j < n; ++j) ASSERT_NEAR(e_t[pairs.of_token[j] * ld + c] / half[c], s[j] / z, 1e-6);
      for (int64_t t = 0; t < d; ++t) {
        double ob = 0;
        for (int32_t j = 0; j < kc; ++j) ob += double(ap_t[j * ld + c]) * vbar[j * d + t];
        ASSERT_NEAR(ob / half[c], o[t], 1e-5) << "query " << i;
      }
    }
  }
}

TEST(CtaAttention, HeadWithTinyWidthEqualsDense) {
  HeadFixture f(1e-6);
  std::vector<double> want, want_received;
  f.dense(want, want_received);
  std::vector<float> out(f.n * f.d), received(f.n, 0.0f);
  float magnitude = 0;
  const CtaHeadResult r = cta_head_attention(f.in, out.data(), f.d, {received.data(), &magnitude});
  EXPECT_EQ(r.k0, f.n);
  EXPECT_EQ(r.k1, f.n);
  EXPECT_EQ(r.k2, 1);  // every residual is exactly zero
  double mag = 0;
  for (int64_t i = 0; i < f.n * f.d; ++i) {
    ASSERT_NEAR(out[i], want[i], 1e-4) << i;
    mag += std::fabs(want[i]);
  }
  for (int64_t j = 0; j < f.n; ++j) ASSERT_NEAR(received[j], want_received[j], 1e-4);
  EXPECT_NEAR(magnitude, mag, 1e-3 * mag);
  // Dense-equivalent cost: RL = (n + 2 (n + 1)) / 3n, RA = n (n + 1) / n^2.
  EXPECT_DOUBLE_EQ(r.counts.linear_macs, double(f.n + 2 * (f.n + 1)) * f.dw * f.d);
  EXPECT_DOUBLE_EQ(r.counts.attention_macs, 2.0 * f.n * (f.n + 1) * f.d);
  EXPECT_DOUBLE_EQ(r.counts.dense_linear_macs, 3.0 * f.n * f.dw * f.d);
  EXPECT_DOUBLE_EQ(r.counts.dense_attention_macs, 2.0 * f.n * f.n * f.d);
}

TEST(CtaAttention, WideBucketsCompressAndAreConstantPerQueryCluster) {
  HeadFixture f(4.0);
  std::vector<float> out(f.n * f.d);
  const CtaHeadResult r = cta_head_attention(f.in, out.data(), f.d, {});
  EXPECT_LT(r.k0, f.n / 2);
  EXPECT_LT(r.k1 + r.k2, f.n);
  EXPECT_LT(r.counts.linear_macs, r.counts.dense_linear_macs);
  EXPECT_LT(r.counts.attention_macs, r.counts.dense_attention_macs);
  CtaCompressed z;
  cta_compress(f.in, z);
  for (int64_t i = 0; i < f.n; ++i)
    for (int64_t j = 0; j < f.n; ++j)
      if (z.ct0.table[i] == z.ct0.table[j])
        for (int64_t c = 0; c < f.d; ++c) ASSERT_EQ(out[i * f.d + c], out[j * f.d + c]);  // O_i = Obar[CT0 i]
}

std::vector<EncoderInput> sample_inputs(int vocab) {
  std::vector<EncoderInput> inputs;
  for (int len : {2, 5, 9, 16, 31, 40}) {
    EncoderInput in;
    in.ids.push_back(2);
    for (int i = 1; i + 1 < len; ++i) in.ids.push_back(5 + (i * 37 + len * 11) % (vocab - 5));
    in.ids.push_back(3);
    inputs.push_back(in);
  }
  return inputs;
}

class CtaEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_tiny_bert("cta", shape_);
    encoder_ = std::make_unique<BertEncoder>(BertEncoder::load(dir_));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void expect_same(const std::vector<SequenceOutput>& a, const std::vector<SequenceOutput>& b, double tol, const std::string& what) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].positions, b[i].positions) << what << " input " << i;
      for (int64_t e = 0; e < a[i].hidden.size(); ++e)
        ASSERT_NEAR(a[i].hidden.data()[e], b[i].hidden.data()[e], tol) << what << " input " << i;
    }
  }

  TinyBertShape shape_{3, 64, 4, 128, 120, 64, 0};
  std::filesystem::path dir_;
  std::unique_ptr<BertEncoder> encoder_;
};

TEST_F(CtaEncoderTest, TinyWidthEqualsDense) {
  const auto inputs = sample_inputs(shape_.vocab);
  const auto dense = encoder_->forward(inputs);
  auto cta = parse_policy_spec("cta:w=1e-6", encoder_->config());
  ForwardStats stats;
  const auto out = encoder_->forward(inputs, {cta.get()}, &stats);
  expect_same(out, dense, 1e-4, "cta:w=1e-6");
  ASSERT_EQ(stats.cta.per_example.size(), inputs.size());
  for (int l = 0; l < shape_.layers; ++l) {
    EXPECT_EQ(stats.cta.heads[l], static_cast<int64_t>(inputs.size()) * shape_.heads);
    EXPECT_EQ(stats.cta.k0[l], stats.cta.n[l]);
    EXPECT_EQ(stats.cta.k1[l], stats.cta.n[l]);
    EXPECT_EQ(stats.cta.k2[l], stats.cta.heads[l]);
  }
}

TEST_F(CtaEncoderTest, SharedClusteringWithTinyWidthEqualsDense) {
  const auto inputs = sample_inputs(shape_.vocab);
  const auto dense = encoder_->forward(inputs);
  auto cta = parse_policy_spec("cta:w=1e-6,share=layer", encoder_->config());
  ForwardStats stats;
  expect_same(encoder_->forward(inputs, {cta.get()}, &stats), dense, 1e-4, "cta:w=1e-6,share=layer");
  EXPECT_EQ(stats.cta.k0[0], stats.cta.n[0]);
  // With head pruning too: equal to the pruner alone.
  auto alone = parse_policy_spec("spatten:tokens=0.4,heads=0.5,start=0", encoder_->config());
  auto both = parse_policy_spec("spatten:tokens=0.4,heads=0.5,start=0+cta:w=1e-6,share=layer", encoder_->config());
  expect_same(encoder_->forward(inputs, {both.get()}), encoder_->forward(inputs, {alone.get()}), 1e-4, "shared + pruning");
}

TEST_F(CtaEncoderTest, SharedClusteringIsTheSameForEveryHead) {
  const auto inputs = sample_inputs(shape_.vocab);
  auto cta = parse_policy_spec("cta:w=12,share=layer", encoder_->config());
  ForwardStats stats;
  encoder_->forward(inputs, {cta.get()}, &stats);
  // Per-layer sums over (example, head) are heads x the per-example sums: every head saw the same k's.
  double k0 = 0, n = 0;
  for (int l = 0; l < shape_.layers; ++l) {
    k0 += stats.cta.k0[l], n += stats.cta.n[l];
    for (double v : {stats.cta.k0[l], stats.cta.k1[l], stats.cta.k2[l]}) EXPECT_EQ(static_cast<int64_t>(v) % shape_.heads, 0);
  }
  EXPECT_LT(k0, n);
  EXPECT_EQ(cta->describe(), "cta(w=12, l=6, seed=0, share=layer)");
}

// Per head and share=layer alike: each head's linear MACs are (k0 + 2 (k1 + k2)) dw d (share=layer
// projects the query centroids on the Q columns only and the key/value centroids on K|V only).
TEST_F(CtaEncoderTest, WiderBucketsCompressAndCountExactly) {
  const auto inputs = sample_inputs(shape_.vocab);
  ForwardStats dense_stats;
  encoder_->forward(inputs, {}, &dense_stats);
  for (const char* spec : {"cta:w=8", "cta:w=8,share=layer"}) {
    SCOPED_TRACE(spec);
    ForwardStats stats;
    auto cta = parse_policy_spec(spec, encoder_->config());
    const auto out = encoder_->forward(inputs, {cta.get()}, &stats);
    ASSERT_EQ(out.size(), inputs.size());
    double k0 = 0, n = 0, kmacs = 0;
    const double d = shape_.hidden / shape_.heads;
    for (int l = 0; l < shape_.layers; ++l) {
      k0 += stats.cta.k0[l], n += stats.cta.n[l];
      kmacs += (stats.cta.k0[l] + 2 * (stats.cta.k1[l] + stats.cta.k2[l])) * shape_.hidden * d;
    }
    EXPECT_LT(k0, n);
    double linear = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const CtaCounts& c = stats.cta.per_example[i];
      const double len = static_cast<double>(inputs[i].ids.size());
      EXPECT_DOUBLE_EQ(c.dense_linear_macs, shape_.layers * shape_.heads * 3.0 * len * shape_.hidden * d);
      EXPECT_DOUBLE_EQ(c.dense_attention_macs, shape_.layers * shape_.heads * 2.0 * len * len * d);
      EXPECT_LE(c.linear_macs, c.dense_linear_macs * (len + 2 * (len + 1)) / (3 * len) + 1e-6);
      linear += c.linear_macs;
    }
    EXPECT_NEAR(linear, kmacs, 1e-9 * kmacs);
    // FLOPs: QKV and attention replaced by CTA's own counts; output projection and FFN unchanged.
    double cta_flops = 0;
    for (const auto& c : stats.cta.per_example) cta_flops += 2 * (c.linear_macs + c.attention_macs) + c.overhead_ops;
    double qkv_attn = 0;
    for (const auto& c : stats.cta.per_example) qkv_attn += 2 * (c.dense_linear_macs + c.dense_attention_macs);
    EXPECT_NEAR(stats.flops, dense_stats.flops - qkv_attn + cta_flops, 1e-6 * dense_stats.flops);
  }
}

TEST_F(CtaEncoderTest, LayerSubsetOnlyChangesThoseLayers) {
  const auto inputs = sample_inputs(shape_.vocab);
  auto cta = parse_policy_spec("cta:w=8,layers=1-2", encoder_->config());
  ForwardStats stats;
  encoder_->forward(inputs, {cta.get()}, &stats);
  EXPECT_EQ(stats.cta.heads[0], 0);
  EXPECT_GT(stats.cta.heads[1], 0);
  EXPECT_GT(stats.cta.heads[2], 0);
  EXPECT_EQ(parse_policy_spec("cta:w=8,layers=0/2", encoder_->config())->describe(), "cta(w=8, l=6, seed=0, layers=0/2)");
}

TEST_F(CtaEncoderTest, BatchedEqualsOneByOne) {
  const auto inputs = sample_inputs(shape_.vocab);
  for (const char* spec : {"cta:w=3", "spatten:tokens=0.5,heads=0.5+cta:w=3,l=4,seed=9", "cta:w=3,share=layer+ltp:final=0.05"}) {
    auto chain = parse_policy_spec(spec, encoder_->config());
    const auto batched = encoder_->forward(inputs, {chain.get()});
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto single = encoder_->forward(std::span(inputs).subspan(i, 1), {chain.get()});
      ASSERT_EQ(single[0].positions, batched[i].positions) << spec;
      for (int64_t e = 0; e < single[0].hidden.size(); ++e)
        ASSERT_NEAR(single[0].hidden.data()[e], batched[i].hidden.data()[e], 1e-5) << spec;
    }
  }
}

TEST_F(CtaEncoderTest, ComposesWithCascadeTokenPruning) {
  const auto inputs = sample_inputs(shape_.vocab);
  for (const char* pruning : {"spatten:tokens=0.3,start=0", "spatten:tokens=0.4,heads=0.5,at=next", "ltp:final=0.05"}) {
    auto alone = parse_policy_spec(pruning, encoder_->config());
    auto with_exact_cta = parse_policy_spec(std::string(pruning) + "+cta:w=1e-6", encoder_->config());
    expect_same(encoder_->forward(inputs, {with_exact_cta.get()}), encoder_->forward(inputs, {alone.get()}), 1e-4, pruning);
  }
  // A compressing setting runs, prunes tokens and compresses what is left.
  auto both = parse_policy_spec("spatten:tokens=0.3,start=0+cta:w=4", encoder_->config());
  ForwardStats stats;
  const auto out = encoder_->forward(inputs, {both.get()}, &stats);
  EXPECT_LT(out.back().positions.size(), inputs.back().ids.size());
  EXPECT_LT(stats.cta.k0.back(), stats.cta.n.back());
  EXPECT_LT(stats.cta.n.back(), stats.cta.n.front());
}

TEST(CtaSpec, BadSpecsAreRejectedClearly) {
  const auto message = testing::policy_spec_error;
  EXPECT_NE(message("cta").find("needs w="), std::string::npos);
  EXPECT_NE(message("cta:l=6").find("needs w="), std::string::npos);
  EXPECT_NE(message("cta:w=0").find("must be a positive number"), std::string::npos);
  EXPECT_NE(message("cta:w=-2").find("must be a positive number"), std::string::npos);
  EXPECT_NE(message("cta:w=inf").find("must be a positive number"), std::string::npos);
  EXPECT_NE(message("cta:w=abc").find("not a number"), std::string::npos);
  EXPECT_NE(message("cta:w=2,l=0").find("integer in [1, 64]"), std::string::npos);
  EXPECT_NE(message("cta:w=2,l=2.5").find("integer in [1, 64]"), std::string::npos);
  EXPECT_NE(message("cta:w=2,seed=-1").find("non-negative integer"), std::string::npos);
  EXPECT_NE(message("cta:w=2,layers=6").find("in [0, 5]"), std::string::npos);
  EXPECT_NE(message("cta:w=2,layers=4-2").find("empty range"), std::string::npos);
  EXPECT_NE(message("cta:w=2,layers=x").find("not a number"), std::string::npos);
  EXPECT_NE(message("cta:w=2,bucket=3").find("unknown option"), std::string::npos);
  EXPECT_NE(message("cta:w=2+cta:w=3").find("given twice"), std::string::npos);
  EXPECT_NE(message("cta:w=2,share=model").find("expected head or layer"), std::string::npos);
  EXPECT_EQ(message("spatten:tokens=0.3+cta:w=2,l=6,seed=3,layers=0-2/5"), "no error");
}

}  // namespace
}  // namespace sieve
