// Kernels: the AVX-512 row kernels and fused attention against plain references.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "attention/fused_attention.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/row_kernels.h"
#include "kernels/tile_sparse_gemm.h"  // cpu_has_avx512_bf16, amx::available
#include "test_helpers.h"

namespace sieve {
namespace {

using testing::random_normal;

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Plain reference for the row kernels, written independently of row_kernels_portable.cpp.
double reference_gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

class RowKernelsTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override {
    if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: only the portable path runs";
  }
};

TEST_P(RowKernelsTest, GeluMatchesErfDefinition) {
  const int64_t n = GetParam();
  auto x = random_normal(static_cast<size_t>(n), 1, 3.0f), bias = random_normal(static_cast<size_t>(n), 2);
  std::vector<float> expected(x.size());
  for (size_t i = 0; i < x.size(); ++i) expected[i] = static_cast<float>(reference_gelu(static_cast<double>(x[i]) + bias[i]));
  auto fast = x, portable_out = x;
  avx512::kRowKernels.bias_gelu(fast.data(), bias.data(), n);
  portable::kRowKernels.bias_gelu(portable_out.data(), bias.data(), n);
  EXPECT_LT(max_abs_diff(fast, expected), 2e-6f);
  EXPECT_LT(max_abs_diff(portable_out, expected), 2e-6f);
}

TEST_P(RowKernelsTest, TanhMatchesDefinition) {
  const int64_t n = GetParam();
  auto x = random_normal(static_cast<size_t>(n), 11, 6.0f), bias = random_normal(static_cast<size_t>(n), 12);
  x.front() = 0.0f;  // exact zero and a saturated value at the ends
  if (n > 1) x.back() = 60.0f;
  std::vector<float> expected(x.size());
  for (size_t i = 0; i < x.size(); ++i) expected[i] = static_cast<float>(std::tanh(static_cast<double>(x[i]) + bias[i]));
  auto fast = x, portable_out = x;
  avx512::kRowKernels.bias_tanh(fast.data(), bias.data(), n);
  portable::kRowKernels.bias_tanh(portable_out.data(), bias.data(), n);
  EXPECT_LT(max_abs_diff(fast, expected), 1e-6f);
  EXPECT_LT(max_abs_diff(portable_out, expected), 1e-6f);
}

// Quantized KV codes (progressive quantization): MSBs = ((code >> shift) << shift) + offset, in
// double against both paths; arithmetic shift, so negative codes floor.
TEST_P(RowKernelsTest, CodeDotAndAxpyMatchDefinition) {
  const int64_t n = GetParam();
  const auto a = random_normal(static_cast<size_t>(n), 21);
  std::vector<int16_t> codes(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) codes[static_cast<size_t>(i)] = static_cast<int16_t>((i * 37 % 255) - 127);
  for (auto [shift, offset] : {std::pair{0, 0}, {2, 2}, {4, 8}}) {
    double expected = 0;
    for (int64_t i = 0; i < n; ++i)
      expected += a[static_cast<size_t>(i)] * static_cast<double>(((codes[static_cast<size_t>(i)] >> shift) << shift) + offset);
    const double tolerance = 1e-4 * (1.0 + std::abs(expected)) * std::sqrt(static_cast<double>(n));
    EXPECT_NEAR(avx512::kRowKernels.dot_codes(a.data(), codes.data(), shift, offset, n), expected, tolerance) << shift;
    EXPECT_NEAR(portable::kRowKernels.dot_codes(a.data(), codes.data(), shift, offset, n), expected, tolerance) << shift;
  }
  if (n > 0) EXPECT_EQ(portable::kRowKernels.dot_codes(a.data(), codes.data(), 2, 2, 1), a[0] * static_cast<float>((-127 >> 2 << 2) + 2));
  auto fast = a, slow = a;
  avx512::kRowKernels.axpy_codes(0.5f, codes.data(), fast.data(), n);
  portable::kRowKernels.axpy_codes(0.5f, codes.data(), slow.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(fast[static_cast<size_t>(i)], a[static_cast<size_t>(i)] + 0.5f * codes[static_cast<size_t>(i)]);
  EXPECT_LT(max_abs_diff(fast, slow), 1e-6f);
}

// Many queries against rows of codes with one scale per group (the quantized KV cache's grouped
// scoring and value sums), both paths against the definition in double: every query count the
// AVX-512 path specializes (1-4) and one above, groups of 16, 32 and the whole row.
TEST_P(RowKernelsTest, CodeRowsMatchDefinition) {
  const int64_t n = GetParam();
  if (n == 0) return;
  const int64_t row_count = 37, stride = n + 5;  // strided rows, as a head's columns in the cache
  std::vector<int16_t> codes(static_cast<size_t>(row_count * stride));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<int16_t>((static_cast<int64_t>(i) * 53 % 255) - 127);
  for (int64_t group : {int64_t{16}, int64_t{32}, n}) {
    if (n % group != 0) continue;
    const int64_t groups = n / group;
    const auto scales = random_normal(static_cast<size_t>(row_count * groups), 31);
    const CodeRows rows{codes.data(), stride, scales.data(), groups, group};
    for (int count : {1, 3, 4, 6}) {
      const auto queries = random_normal(static_cast<size_t>(count * n), 32);
      const auto weights = random_normal(static_cast<size_t>(count * row_count), 33);
      for (auto [shift, offset] : {std::pair{0, 0}, {4, 8}}) {
        std::vector<float> fast(static_cast<size_t>(count * row_count)), slow = fast;
        avx512::kRowKernels.dot_codes_rows(queries.data(), n, count, rows, row_count, shift, offset, n, fast.data(), row_count);
        portable::kRowKernels.dot_codes_rows(queries.data(), n, count, rows, row_count, shift, offset, n, slow.data(), row_count);
        for (int k = 0; k < count; ++k)
          for (int64_t j = 0; j < row_count; ++j) {
            double expected = 0;
            for (int64_t i = 0; i < n; ++i) {
              const int32_t code = codes[static_cast<size_t>(j * stride + i)];
              expected += static_cast<double>(scales[static_cast<size_t>(j * groups + i / group)]) *
                          queries[static_cast<size_t>(k * n + i)] * (((code >> shift) << shift) + offset);
            }
            const double tolerance = 1e-4 * (1.0 + std::abs(expected)) * std::sqrt(static_cast<double>(n));
            const size_t at = static_cast<size_t>(k * row_count + j);
            EXPECT_NEAR(fast[at], expected, tolerance) << "group " << group << " count " << count << " row " << j;
            EXPECT_NEAR(slow[at], expected, tolerance) << "group " << group << " count " << count << " row " << j;
          }
      }
      // Value sums over rows [5, 30), added to what the outputs held.
      std::vector<float> fast(static_cast<size_t>(count * n), 1.0f), slow = fast;
      avx512::kRowKernels.axpy_codes_rows(weights.data(), row_count, count, rows, 5, 30, n, fast.data(), n);
      portable::kRowKernels.axpy_codes_rows(weights.data(), row_count, count, rows, 5, 30, n, slow.data(), n);
      for (int k = 0; k < count; ++k)
        for (int64_t i = 0; i < n; ++i) {
          double expected = 1.0;
          for (int64_t j = 5; j < 30; ++j)
            expected += static_cast<double>(weights[static_cast<size_t>(k * row_count + j)]) *
                        scales[static_cast<size_t>(j * groups + i / group)] * codes[static_cast<size_t>(j * stride + i)];
          const size_t at = static_cast<size_t>(k * n + i);
          EXPECT_NEAR(fast[at], expected, 1e-4 * (1.0 + std::abs(expected)) * 5) << "group " << group << " count " << count;
          EXPECT_NEAR(slow[at], expected, 1e-4 * (1.0 + std::abs(expected)) * 5) << "group " << group << " count " << count;
        }
    }
  }
}

TEST_P(RowKernelsTest, LayerNormAndSoftmaxAgreeAcrossPaths) {
  const int64_t n = GetParam();
  auto x = random_normal(static_cast<size_t>(n), 3, 2.0f), bias = random_normal(static_cast<size_t>(n), 4);
  auto res = random_normal(static_cast<size_t>(n), 5), g = random_normal(static_cast<size_t>(n), 6);
  auto b = random_normal(static_cast<size_t>(n), 7);
  auto fast = x, slow = x;
  avx512::kRowKernels.bias_residual_layernorm(fast.data(), bias.data(), res.data(), g.data(), b.data(), 1e-12f, n);
  portable::kRowKernels.bias_residual_layernorm(slow.data(), bias.data(), res.data(), g.data(), b.data(), 1e-12f, n);
  EXPECT_LT(max_abs_diff(fast, slow), 1e-5f);

  auto s1 = random_normal(static_cast<size_t>(n), 8, 5.0f), s2 = s1;
  avx512::kRowKernels.softmax(s1.data(), n);
  portable::kRowKernels.softmax(s2.data(), n);
  EXPECT_LT(max_abs_diff(s1, s2), 1e-6f);
  double sum = 0;
  for (float v : s1) sum += v;
  EXPECT_NEAR(sum, 1.0, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Widths, RowKernelsTest, ::testing::Values(1, 15, 16, 17, 384, 1000));

TEST(Gemm, TransposedSwapsRowsAndColumns) {
  Tensor w({2, 3});
  for (int i = 0; i < 6; ++i) w.data()[i] = static_cast<float>(i);
  const Tensor t = transposed(w);
  ASSERT_EQ(t.dim(0), 3);
  ASSERT_EQ(t.dim(1), 2);
  EXPECT_EQ(t.data()[0 * 2 + 1], 3.0f);  // t[0][1] = w[1][0]
  EXPECT_EQ(t.data()[2 * 2 + 0], 2.0f);  // t[2][0] = w[0][2]
}

TEST(Gemm, MatchesNaiveProductWithStridesAndBeta) {
  const int64_t m = 7, n = 5, k = 9, lda = 11, ldb = 13;
  auto a = random_normal(static_cast<size_t>(m * lda), 9), b = random_normal(static_cast<size_t>(k * ldb), 10);
  std::vector<float> c(static_cast<size_t>(m * n), 1.0f);
  gemm(m, n, k, {a.data(), lda}, {b.data(), ldb}, c.data(), n, 0.5f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.5;
      for (int64_t t = 0; t < k; ++t) dot += static_cast<double>(a[i * lda + t]) * b[t * ldb + j];
      EXPECT_NEAR(c[i * n + j], dot, 1e-4);
    }
}

// Naive attention with the full probability matrix, the definition the fused kernel must meet.
struct NaiveAttention {
  std::vector<float> out, received;
  float magnitude = 0.0f;
  std::vector<double> probs;  // [n][n]
};
// x rounded to bf16 (nearest even, the row kernels' rounding) and back.
float round_to_bf16(float x) {
  uint16_t bits;
  portable::kRowKernels.to_bf16(&x, &bits, 1);
  const uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float y;
  std::memcpy(&y, &widened, sizeof y);
  return y;
}

// bf16_operands: the definition of the bf16-products kernel: Q, K * scale (scaled in fp32), the
// probabilities and V rounded to bf16 (nearest even) before their products.
NaiveAttention naive_attention(const std::vector<float>& qkv, int64_t n, int64_t d, int64_t stride,
                               bool bf16_operands = false) {
  NaiveAttention r{std::vector<float>(static_cast<size_t>(n * d), 0.0f), std::vector<float>(static_cast<size_t>(n), 0.0f)};
  r.probs.resize(static_cast<size_t>(n * n));
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto round = [&](float x) { return bf16_operands ? round_to_bf16(x) : x; };
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> p(static_cast<size_t>(n));
    double mx = -1e30, sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0;
      for (int64_t c = 0; c < d; ++c)
        dot += bf16_operands ? static_cast<double>(round(qkv[i * stride + c])) * round(qkv[j * stride + d + c] * scale)
                             : static_cast<double>(qkv[i * stride + c]) * qkv[j * stride + d + c];
      p[j] = bf16_operands ? dot : dot / std::sqrt(static_cast<double>(d));
      mx = std::max(mx, p[j]);
    }
    for (auto& v : p) sum += (v = std::exp(v - mx));
    for (int64_t j = 0; j < n; ++j) {
      p[j] /= sum;
      r.probs[static_cast<size_t>(i * n + j)] = p[j];
      r.received[j] += static_cast<float>(p[j]);
      const double pj = round(static_cast<float>(p[j]));
      for (int64_t c = 0; c < d; ++c) r.out[i * d + c] += static_cast<float>(pj * round(qkv[j * stride + 2 * d + c]));
    }
  }
  for (float v : r.out) r.magnitude += std::fabs(v);
  return r;
}

// Block-Skim's diagonal blocks: row 0 in none (a special token), then entries of up to 6 rows in
// tiles of 8, so each tile has a border the kernel must leave alone.
struct DiagonalBlocksFixture {
  static constexpr int64_t kTile = 8, kRows = 6;
  std::vector<int32_t> row_block, first_row, end_row;
  std::vector<float> tiles;
  explicit DiagonalBlocksFixture(int64_t n) : row_block(static_cast<size_t>(n), -1) {
    for (int64_t r = 1; r < n; r += kRows) {
      first_row.push_back(static_cast<int32_t>(r));
      end_row.push_back(static_cast<int32_t>(std::min(n, r + kRows)));
      for (int64_t i = r; i < end_row.back(); ++i) row_block[static_cast<size_t>(i)] = static_cast<int32_t>(first_row.size() - 1);
    }
    tiles.assign(first_row.size() * kTile * kTile, -1.0f);
  }
  DiagonalBlocksOut out() { return {row_block.data(), first_row.data(), end_row.data(), kTile, tiles.data()}; }
  void expect_probabilities(const std::vector<double>& probs, int64_t n, double tolerance, const char* kernel) const {
    for (size_t b = 0; b < first_row.size(); ++b)
      for (int64_t i = 0; i < kTile; ++i)
        for (int64_t j = 0; j < kTile; ++j) {
          const float got = tiles[(b * kTile + static_cast<size_t>(i)) * kTile + static_cast<size_t>(j)];
          const int64_t qi = first_row[b] + i, kj = first_row[b] + j;
          if (qi < end_row[b] && kj < end_row[b]) EXPECT_NEAR(got, probs[static_cast<size_t>(qi * n + kj)], tolerance) << kernel << " " << b << " " << i << " " << j;
          else EXPECT_EQ(got, -1.0f) << kernel << ": outside block " << b << " at " << i << ", " << j;
        }
  }
};

class FusedAttentionTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

TEST_P(FusedAttentionTest, MatchesNaiveAttentionAndStatistics) {
  const auto [n, d] = GetParam();
  const int64_t stride = 3 * d + 5;  // q | k | v | unrelated columns, as in the packed QKV buffer
  const auto qkv = random_normal(static_cast<size_t>(n * stride), 11);
  const NaiveAttention expected = naive_attention(qkv, n, d, stride);
  for (bool use_portable : {true, false}) {
    if (!use_portable && !cpu_has_avx512()) continue;
    std::vector<float> out(static_cast<size_t>(n * d)), received(static_cast<size_t>(n), 0.0f);
    float magnitude = 0.0f;
    HeadView view{qkv.data(), qkv.data() + d, qkv.data() + 2 * d, stride, out.data(), d};
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    DiagonalBlocksFixture diagonal(n);
    HeadStatistics stats{received.data(), &magnitude, diagonal.out()};
    if (use_portable) portable::fused_attention(view, n, d, scale, stats);
    else ASSERT_TRUE(avx512::fused_attention(view, n, d, scale, stats));
    const char* kernel = use_portable ? "portable" : "avx512";
    EXPECT_LT(max_abs_diff(out, expected.out), 1e-5f) << kernel;
    EXPECT_LT(max_abs_diff(received, expected.received), 1e-4f);
    EXPECT_NEAR(magnitude, expected.magnitude, 1e-3f * expected.magnitude);
    diagonal.expect_probabilities(expected.probs, n, 1e-6, kernel);
  }
}

// --precision bf16 / int8: Q.K^T and P.V on bf16 operands, with vdpbf16ps and (where the CPU has
// it) on AMX tiles. Against the definition on the same rounded operands (a probability can round
// the other way when the kernel's fp32 softmax and the double one straddle a bf16 boundary: one
// ulp, 2^-8 of it), and loosely against fp32 attention.
TEST_P(FusedAttentionTest, Bf16ProductsMatchNaiveAttentionOnRoundedOperands) {
  if (!cpu_has_avx512() || !cpu_has_avx512_bf16()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  const auto [n, d] = GetParam();
  const int64_t stride = 3 * d + 5;
  const auto qkv = random_normal(static_cast<size_t>(n * stride), 12);
  const NaiveAttention expected = naive_attention(qkv, n, d, stride, true), fp32 = naive_attention(qkv, n, d, stride);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> preferred;  // the output of the kernel the dispatcher should pick
  for (const bool tiles : {false, true}) {
    if (tiles && !amx::available()) continue;
    const char* kernel = tiles ? "amx" : "avx512bf16";
    std::vector<float> out(static_cast<size_t>(n * d), -7.0f), received(static_cast<size_t>(n), 0.0f);
    float magnitude = 0.0f;
    HeadView view{qkv.data(), qkv.data() + d, qkv.data() + 2 * d, stride, out.data(), d};
    DiagonalBlocksFixture diagonal(n);
    const HeadStatistics stats{received.data(), &magnitude, diagonal.out()};
    ASSERT_TRUE(tiles ? amx::fused_attention(view, n, d, scale, stats) : avx512bf16::fused_attention(view, n, d, scale, stats));
    EXPECT_LT(max_abs_diff(out, expected.out), 2e-3f) << kernel;
    EXPECT_LT(max_abs_diff(received, expected.received), 1e-4f) << kernel;
    EXPECT_NEAR(magnitude, expected.magnitude, 1e-3f * expected.magnitude) << kernel;
    EXPECT_LT(max_abs_diff(out, fp32.out), 5e-2f) << kernel;
    diagonal.expect_probabilities(expected.probs, n, 1e-5, kernel);
    preferred = out;
  }
  // The dispatcher takes the AMX kernel where there is one, else vdpbf16ps, when asked for bf16
  // products; without them it is the fp32 kernel.
  std::vector<float> dispatched(preferred.size());
  HeadView view{qkv.data(), qkv.data() + d, qkv.data() + 2 * d, stride, dispatched.data(), d};
  fused_attention(view, n, d, scale, {}, true);
  EXPECT_EQ(dispatched, preferred);
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedAttentionTest,
                         ::testing::Combine(::testing::Values(1, 3, 4, 5, 17, 33, 64, 129), ::testing::Values(16, 32, 48, 64, 128)));

}  // namespace
}  // namespace sieve
