// The bf16 option: rounding to bfloat16, the bf16 GEMM against a double-precision reference on the
// same rounded inputs, and the encoder in bf16 against itself in fp32 and under "prune nothing".
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/row_kernels.h"
#include "model/bert_encoder.h"
#include "policies/policy_spec.h"
#include "util/half.h"
#include "precision_helpers.h"
#include "test_helpers.h"
#include "tiny_bert.h"
#include "util/error.h"

namespace sieve {
namespace {

float from_bf16(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

using testing::random_normal;

TEST(Bf16Rounding, HandComputedCases) {
  // 1 + 2^-8 lies halfway between bf16 1.0 (0x3F80) and 1.0078125 (0x3F81): ties go to the even one;
  // 1 + 3 * 2^-8 lies halfway between 0x3F81 and 0x3F82: again the even one, upwards this time;
  // 1 + 1.5 * 2^-8 is nearer 0x3F81 than 0x3F80.
  const std::vector<float> in{1.0f, 1.00390625f, 1.01171875f, -2.0f, 1.0f + 1.5f / 256, std::numeric_limits<float>::infinity(), 0.0f};
  const std::vector<uint16_t> expected{0x3F80, 0x3F80, 0x3F82, 0xC000, 0x3F81, 0x7F80, 0x0000};
  for (const RowKernels* k : {&portable::kRowKernels, &row_kernels()}) {
    std::vector<uint16_t> out(in.size());
    k->to_bf16(in.data(), out.data(), static_cast<int64_t>(in.size()));
    EXPECT_EQ(out, expected);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    uint16_t nan_bits = 0;
    k->to_bf16(&nan, &nan_bits, 1);
    EXPECT_TRUE(std::isnan(from_bf16(nan_bits)));
  }
}

// fp32 -> fp16 (the KV cache's per-group scales): every fp16 value survives the round trip, and
// hand-computed ties go to the even neighbour, in the normal and the subnormal range.
TEST(Fp16Rounding, RoundTripAndTies) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    if ((half & 0x7C00u) == 0x7C00u && (half & 0x03FFu) != 0) continue;  // NaN payloads
    EXPECT_EQ(f32_to_f16(f16_to_f32(half)), half) << h;
  }
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00u);      // halfway 1 / 1+2^-10: even (1)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02u);  // halfway 0x3C01 / 0x3C02: even
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFFu);                          // 65504, the largest
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00u);                          // halfway to 65536: infinity
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -25)), 0x8000u);            // halfway 0 / 2^-24: -0
  EXPECT_EQ(f32_to_f16(3 * std::ldexp(1.0f, -25)), 0x0002u);         // halfway 1 / 2 units: 2
  EXPECT_TRUE(std::isnan(round_to_f16(std::numeric_limits<float>::quiet_NaN())));
}

TEST(Bf16Rounding, Avx512AndPortableAgreeBitForBit) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (int64_t n : {1, 15, 16, 17, 1000}) {
    const auto x = random_normal(static_cast<size_t>(n), 3, 50.0f);
    std::vector<uint16_t> a(x.size()), b(x.size());
    avx512::kRowKernels.to_bf16(x.data(), a.data(), n);
    portable::kRowKernels.to_bf16(x.data(), b.data(), n);
    EXPECT_EQ(a, b) << "n = " << n;
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(from_bf16(a[i]), x[i], std::abs(x[i]) / 256);
  }
}

class GemmBf16Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!bf16_gemm_available()) GTEST_SKIP() << "oneDNN has no bf16 matmul on this CPU";
  }
};

TEST_F(GemmBf16Test, MatchesDoubleReferenceOnRoundedInputsWithStridesAndAccumulation) {
  const int64_t m = 7, k = 40, ldb = 50, col0 = 6, n = 33, ldc = 36;
  const auto a = random_normal(static_cast<size_t>(m * k), 1);
  Tensor w({k, ldb});
  const auto wv = random_normal(static_cast<size_t>(k * ldb), 2);
  std::copy(wv.begin(), wv.end(), w.data());
  const Bf16Matrix w16 = to_bf16(w);
  std::vector<uint16_t> a16(a.size());
  portable::kRowKernels.to_bf16(a.data(), a16.data(), static_cast<int64_t>(a.size()));

  std::vector<float> c(static_cast<size_t>(m * ldc), 0.5f);
  gemm_bf16(m, n, k, {a.data(), k}, {w16.row(0) + col0, ldb}, c.data(), ldc);
  std::vector<float> c_acc = c;
  gemm_bf16(m, n, k, {a.data(), k}, {w16.row(0) + col0, ldb}, c_acc.data(), ldc, 1.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0;
      for (int64_t p = 0; p < k; ++p) ref += double(from_bf16(a16[i * k + p])) * from_bf16(w16.bits[p * ldb + col0 + j]);
      EXPECT_NEAR(c[i * ldc + j], ref, 1e-4) << i << "," << j;
      EXPECT_NEAR(c_acc[i * ldc + j], 2 * ref, 2e-4) << i << "," << j;
    }
  for (int64_t i = 0; i < m; ++i)  // columns past n are untouched
    for (int64_t j = n; j < ldc; ++j) EXPECT_EQ(c[i * ldc + j], 0.5f);
  EXPECT_THROW(gemm_bf16(m, n, k, {a.data(), k}, {w16.row(0), ldb}, c.data(), ldc, 0.5f), Error);
}

TEST_F(GemmBf16Test, EncoderInBf16StaysCloseToFp32AndPruneNothingIsIdentical) {
  const testing::TinyBertShape shape{3, 64, 4, 128, 120, 64, 0};
  const auto dir = testing::make_tiny_bert("bf16", shape);
  BertEncoder encoder = BertEncoder::load(dir);
  const std::vector<EncoderInput> inputs = testing::precision_test_inputs();
  const auto fp32 = encoder.forward(inputs);
  EXPECT_THROW(encoder.forward(inputs, {nullptr, Precision::Bf16}), Error);  // no bf16 weight copies yet
  encoder.set_precision(Precision::Bf16);
  const auto bf16 = encoder.forward(inputs);
  const testing::HiddenDifference d = testing::hidden_difference(fp32, bf16);
  EXPECT_GT(d.worst, 0.0);  // it really ran in bf16
  EXPECT_LT(d.worst, 0.1);
  EXPECT_LT(d.mean, 0.02);

  using testing::expect_identical_hidden;
  auto chain = parse_policy_spec("spatten:tokens=1,heads=1", encoder.config());
  expect_identical_hidden(encoder.forward(inputs, {chain.get()}), bf16, "prune nothing");
  encoder.set_precision(Precision::Fp32);  // and back: fp32 again, bit for bit
  expect_identical_hidden(encoder.forward(inputs), fp32, "fp32 again");
  // A per-call precision (sieve tune times fp32 and bf16 settings in one run) is the same arithmetic.
  expect_identical_hidden(encoder.forward(inputs, {nullptr, Precision::Bf16}), bf16, "per-call bf16");
  EXPECT_EQ(parse_precision(precision_name(Precision::Bf16)), Precision::Bf16);
  EXPECT_THROW(parse_precision("fp16"), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sieve
