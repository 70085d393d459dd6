// The int8 option: per-token activation quantization (hand-computed cases, AVX-512 against
// portable), per-channel weight quantization, the s8 x s8 -> s32 GEMM exactly against an integer
// reference (packed and run-time-shape paths, strided blocks), the fp32-out GEMM against a
// double-precision reference on the same quantized inputs, and the encoder in int8 against itself
// in fp32 and under "prune nothing". Also the packed bf16 path against the run-time-shape one, and
// the blocked-rows paths of both against one pass per step.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <thread>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/int8_gemm_amx.h"
#include "kernels/row_kernels.h"
#include "model/bert_encoder.h"
#include "policies/policy_spec.h"
#include "precision_helpers.h"
#include "test_helpers.h"
#include "tiny_bert.h"
#include "util/error.h"

namespace sieve {
namespace {

using testing::random_normal;

Tensor random_matrix(int64_t rows, int64_t cols, unsigned seed, float scale = 1.0f) {
  Tensor w({rows, cols});
  const auto v = random_normal(static_cast<size_t>(rows * cols), seed, scale);
  std::copy(v.begin(), v.end(), w.data());
  return w;
}

TEST(Int8Quantization, HandComputedRow) {
  // max |x| = 2.54: scale 0.02, so x / 0.02 = 127, -63.5 (tie: to even, -64), 0.5 (tie: 0), 1.5 (2), -127.
  const std::vector<float> x{2.54f, -1.27f, 0.01f, 0.03f, -2.54f};
  for (const RowKernels* k : {&portable::kRowKernels, &row_kernels()}) {
    std::vector<int8_t> q(x.size());
    const float scale = k->quantize_int8(x.data(), q.data(), static_cast<int64_t>(x.size()));
    EXPECT_FLOAT_EQ(scale, 2.54f / 127.0f);
    EXPECT_EQ(q, (std::vector<int8_t>{127, -64, 0, 2, -127}));
    const std::vector<float> zeros(5, 0.0f);  // a zero row: scale 0, codes 0, no division by zero
    EXPECT_EQ(k->quantize_int8(zeros.data(), q.data(), 5), 0.0f);
    EXPECT_EQ(q, std::vector<int8_t>(5, 0));
  }
}

TEST(Int8Quantization, Avx512AndPortableAgreeBitForBit) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (int64_t n : {1, 15, 16, 17, 63, 64, 65, 130, 384, 1000}) {
    auto x = random_normal(static_cast<size_t>(n), 5, 3.0f);
    // The row's largest magnitude in the last element for some lengths: in the tail after the
    // 64-float main loop, which keeps four separate maxima.
    if (n % 2 == 1) x.back() = -40.0f;
    std::vector<int8_t> a(x.size()), b(x.size());
    const float sa = avx512::kRowKernels.quantize_int8(x.data(), a.data(), n);
    const float sb = portable::kRowKernels.quantize_int8(x.data(), b.data(), n);
    EXPECT_EQ(sa, sb);
    EXPECT_EQ(a, b) << "n = " << n;
    for (size_t i = 0; i < x.size(); ++i) EXPECT_LE(std::abs(a[i] * sa - x[i]), sa / 2 * 1.0001f);

    std::vector<int32_t> acc(x.size());
    std::vector<float> col_scales(x.size()), out_a(x.size(), 1.5f), out_b(x.size(), 1.5f);
    for (size_t i = 0; i < x.size(); ++i) acc[i] = static_cast<int32_t>(i * 7919 % 20001) - 10000, col_scales[i] = 0.01f + i * 1e-4f;
    const auto bias = random_normal(static_cast<size_t>(n), 6, 1.0f);
    for (bool accumulate : {false, true}) {
      avx512::kRowKernels.dequantize_int32(acc.data(), 0.3f, col_scales.data(), out_a.data(), accumulate, {}, n);
      portable::kRowKernels.dequantize_int32(acc.data(), 0.3f, col_scales.data(), out_b.data(), accumulate, {}, n);
      EXPECT_EQ(out_a, out_b);
      avx512::kRowKernels.dequantize_int32(acc.data(), 0.3f, col_scales.data(), out_a.data(), accumulate, {.bias = bias.data()}, n);
      portable::kRowKernels.dequantize_int32(acc.data(), 0.3f, col_scales.data(), out_b.data(), accumulate, {.bias = bias.data()}, n);
      EXPECT_EQ(out_a, out_b);
    }
  }
}

// The fused epilogue (bias, bias + GELU) equals dequantizing and then running bias_add / bias_gelu
// over the row, bit for bit, in each kernel set; the sets' GELUs differ only by their erf's error.
TEST(Int8Quantization, FusedEpilogueEqualsSeparatePasses) {
  std::vector<const RowKernels*> sets{&portable::kRowKernels};
  if (cpu_has_avx512()) sets.push_back(&avx512::kRowKernels);
  for (int64_t n : {1, 17, 384, 1536}) {
    std::vector<int32_t> acc(static_cast<size_t>(n));
    std::vector<float> col_scales(acc.size());
    for (size_t i = 0; i < acc.size(); ++i) acc[i] = static_cast<int32_t>(i * 7919 % 20001) - 10000, col_scales[i] = 1e-4f + i * 1e-6f;
    const auto bias = random_normal(acc.size(), 7, 1.0f);
    std::vector<std::vector<float>> gelu_outputs;
    for (const RowKernels* k : sets) {
      for (bool accumulate : {false, true}) {
        for (bool gelu : {false, true}) {
          std::vector<float> fused(acc.size(), 0.25f), separate(acc.size(), 0.25f);
          k->dequantize_int32(acc.data(), 0.7f, col_scales.data(), fused.data(), accumulate, {.bias = bias.data(), .gelu = gelu}, n);
          k->dequantize_int32(acc.data(), 0.7f, col_scales.data(), separate.data(), accumulate, {}, n);
          gelu ? k->bias_gelu(separate.data(), bias.data(), n) : k->bias_add(separate.data(), bias.data(), n);
          EXPECT_EQ(fused, separate) << "n = " << n << " accumulate " << accumulate << " gelu " << gelu;
          if (gelu && !accumulate) gelu_outputs.push_back(fused);
        }
      }
    }
    for (size_t s = 1; s < gelu_outputs.size(); ++s)
      for (size_t i = 0; i < acc.size(); ++i) EXPECT_NEAR(gelu_outputs[s][i], gelu_outputs[0][i], 1e-6f * (1 + std::abs(gelu_outputs[0][i])));
  }
}

TEST(Int8Quantization, WeightsPerOutputChannel) {
  Tensor w = random_matrix(30, 9, 11);
  for (int64_t r = 0; r < 30; ++r) w.data()[r * 9 + 4] = 0.0f;  // an all-zero column: scale 0, codes 0
  w.data()[2 * 9 + 1] = -5.0f;                                 // column 1's largest magnitude
  const Int8Matrix q = to_int8(w);
  ASSERT_EQ(q.rows, 30);
  ASSERT_EQ(q.cols, 9);
  EXPECT_FLOAT_EQ(q.scales[1], 5.0f / 127.0f);
  EXPECT_EQ(q.row(2)[1], -127);
  EXPECT_EQ(q.scales[4], 0.0f);
  for (int64_t c = 0; c < 9; ++c) {
    float max_abs = 0;
    for (int64_t r = 0; r < 30; ++r) max_abs = std::max(max_abs, std::abs(w.data()[r * 9 + c]));
    EXPECT_FLOAT_EQ(q.scales[c], max_abs / 127.0f);
    for (int64_t r = 0; r < 30; ++r) {
      EXPECT_LE(std::abs(q.row(r)[c] * q.scales[c] - w.data()[r * 9 + c]), q.scales[c] / 2 * 1.0001f + 1e-12f);
      EXPECT_GE(q.row(r)[c], -127);
    }
  }
}

class GemmInt8Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!int8_gemm_available()) GTEST_SKIP() << "no exact int8 matmul (AVX-512 VNNI) on this CPU";
  }
};

// The integer core, exact: whole weights (packed path) at several row counts, and column/row
// blocks read with strides (run-time-shape path), against a plain integer triple loop.
TEST_F(GemmInt8Test, IntegerProductsAreExact) {
  const int64_t k = 72, n = 48;
  const Int8Matrix w = to_int8(random_matrix(k, n, 21));
  ASSERT_TRUE(w.packed);
  for (int64_t m : {1, 3, 16, 37}) {
    std::vector<int8_t> a(static_cast<size_t>(m * k));
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 255) - 127);
    auto reference = [&](int64_t row0, int64_t col0, int64_t kk, int64_t nn, int64_t i, int64_t j) {
      int64_t sum = 0;
      for (int64_t p = 0; p < kk; ++p) sum += int64_t{a[i * k + p]} * w.row(row0 + p)[col0 + j];
      return sum;
    };
    std::vector<int32_t> c(static_cast<size_t>(m * n));
    gemm_s8s8s32(m, n, k, a.data(), k, {w.row(0), n, w.scales.data(), w.packed.get()}, c.data(), n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(c[i * n + j], reference(0, 0, k, n, i, j)) << m << ": " << i << "," << j;
    // A block: rows 8.., columns 16..16+20, A read with stride k, C with stride 25.
    const int64_t row0 = 8, col0 = 16, kk = 40, nn = 20, ldc = 25;
    std::vector<int32_t> block(static_cast<size_t>(m * ldc), -1);
    gemm_s8s8s32(m, nn, kk, a.data(), k, {w.row(row0) + col0, n, w.scales.data() + col0}, block.data(), ldc);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < nn; ++j) ASSERT_EQ(block[i * ldc + j], reference(row0, col0, kk, nn, i, j));
      for (int64_t j = nn; j < ldc; ++j) ASSERT_EQ(block[i * ldc + j], -1);  // untouched
    }
  }
  // The largest products: every code +-127, K = 1024 (|sum| = 16.5 million, far inside int32).
  const int64_t big_k = 1024;
  Tensor ones({big_k, 4});
  for (int64_t i = 0; i < ones.size(); ++i) ones.data()[i] = (i % 4 == 1) ? -1.0f : 1.0f;
  const Int8Matrix extreme = to_int8(ones);
  std::vector<int8_t> a(static_cast<size_t>(2 * big_k), -127);
  std::vector<int32_t> c(8);
  gemm_s8s8s32(2, 4, big_k, a.data(), big_k, {extreme.row(0), 4, extreme.scales.data(), extreme.packed.get()}, c.data(), 4);
  EXPECT_EQ(c, (std::vector<int32_t>{-16516096, 16516096, -16516096, -16516096, -16516096, 16516096, -16516096, -16516096}));
}

// The fp32-out GEMM is the exact integer product scaled by the row's and column's scales: equal to
// a double-precision reference on the same quantized inputs up to the final float rounding.
TEST_F(GemmInt8Test, MatchesDoubleReferenceOnQuantizedInputs) {
  const int64_t m = 9, k = 64, n = 40;
  const Tensor a = random_matrix(m, k, 31, 2.0f);
  const Int8Matrix w = to_int8(random_matrix(k, n, 32, 0.1f));
  std::vector<int8_t> qa(static_cast<size_t>(m * k));
  std::vector<float> sa(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) sa[i] = portable::kRowKernels.quantize_int8(a.data() + i * k, qa.data() + i * k, k);
  for (const PackedWeights* packed : {w.packed.get(), static_cast<const PackedWeights*>(nullptr)}) {
    std::vector<float> c(static_cast<size_t>(m * n), 0.25f), c_acc(c.size(), 0.25f);
    gemm_int8(m, n, k, {a.data(), k}, {w.row(0), n, w.scales.data(), packed}, c.data(), n);
    gemm_int8(m, n, k, {a.data(), k}, {w.row(0), n, w.scales.data(), packed}, c_acc.data(), n, 1.0f);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t p = 0; p < k; ++p) dot += double(qa[i * k + p]) * w.row(p)[j];
        const double ref = dot * sa[i] * w.scales[j];
        EXPECT_NEAR(c[i * n + j], ref, 1e-6 * std::abs(ref) + 1e-9) << i << "," << j;
        EXPECT_NEAR(c_acc[i * n + j], ref + 0.25, 1e-6 * std::abs(ref) + 1e-6) << i << "," << j;
      }
  }
  std::vector<float> c(static_cast<size_t>(m * n));
  EXPECT_THROW(gemm_int8(m, n, k, {a.data(), k}, {w.row(0), n, w.scales.data()}, c.data(), n, 0.5f), Error);
}

// Python threads share one Encoder: the packed and run-time matmuls run from several threads at once.
// (With oneDNN's own scratchpad, one buffer for all threads, this gave garbage.)
TEST_F(GemmInt8Test, ConcurrentCallsAgreeWithSerialOnes) {
  const int64_t m = 64, k = 384, n = 768;
  const Tensor a = random_matrix(m, k, 51);
  const Tensor w = random_matrix(k, n, 52, 0.1f);
  const Int8Matrix w8 = to_int8(w);
  const Bf16Matrix w16 = bf16_gemm_available() ? to_bf16(w) : Bf16Matrix{};
  auto run = [&](int variant, std::vector<float>& c) {
    c.assign(static_cast<size_t>(m * n), 0.0f);
    if (variant == 0) gemm_int8(m, n, k, {a.data(), k}, {w8.row(0), n, w8.scales.data(), w8.packed.get()}, c.data(), n);
    if (variant == 1) gemm_int8(m, n / 2, k, {a.data(), k}, {w8.row(0) + 8, n, w8.scales.data() + 8}, c.data(), n);
    if (variant == 2) gemm_bf16(m, n, k, {a.data(), k}, {w16.row(0), n, w16.packed.get()}, c.data(), n);
  };
  const int variants = bf16_gemm_available() ? 3 : 2;
  std::vector<std::vector<float>> serial(3);
  for (int v = 0; v < variants; ++v) run(v, serial[v]);
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      std::vector<float> c;
      for (int i = 0; i < 30; ++i) {
        const int v = (t + i) % variants;
        run(v, c);
        if (c != serial[v]) ++mismatches[t];
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(8, 0));
}

// From 2 x kGemmBlockRows rows the bf16 and int8 GEMMs run blocks of rows through every step on
// one thread each: the same call split into pieces that stay below that (one pass per step) must
// give the int8 result bit for bit (exact int32 sums, the same dequantizing pass) and the bf16 one
// to rounding; with accumulation, the bias + GELU epilogue, packed and plain weights.
TEST(GemmBlockedRows, EqualsOnePassPieces) {
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(2);  // blocking needs more than one thread
  const int64_t m = 3 * kGemmBlockRows + 17, k = 200, n = 136, piece = kGemmBlockRows + 11;
  const Tensor a = random_matrix(m, k, 61);
  const Tensor w = random_matrix(k, n, 62, 0.1f);
  const auto bias = random_normal(static_cast<size_t>(n), 63, 0.5f);
  const Int8Matrix w8 = int8_gemm_available() ? to_int8(w) : Int8Matrix{};
  const Bf16Matrix w16 = bf16_gemm_available() ? to_bf16(w) : Bf16Matrix{};
  for (bool packed : {true, false})
    for (float beta : {0.0f, 1.0f})
      for (Epilogue epilogue : {Epilogue{}, Epilogue{bias.data(), true}}) {
        if (beta == 1.0f && epilogue.bias) continue;  // (not a combination the encoder uses)
        auto run = [&](bool int8, int64_t r0, int64_t rows, std::vector<float>& c) {
          const MatrixRef x{a.data() + r0 * k, k};
          if (int8)
            gemm_int8(rows, n, k, x, {w8.row(0), n, w8.scales.data(), packed ? w8.packed.get() : nullptr}, c.data() + r0 * n,
                      n, beta, epilogue);
          else
            gemm_bf16(rows, n, k, x, {w16.row(0), n, packed ? w16.packed.get() : nullptr}, c.data() + r0 * n, n, beta,
                      epilogue);
        };
        for (bool int8 : {true, false}) {
          if (int8 ? !int8_gemm_available() : !bf16_gemm_available()) continue;
          std::vector<float> blocked(static_cast<size_t>(m * n), 0.25f), pieces = blocked;
          run(int8, 0, m, blocked);
          for (int64_t r0 = 0; r0 < m; r0 += piece) run(int8, r0, std::min(piece, m - r0), pieces);
          for (size_t e = 0; e < blocked.size(); ++e) {
            if (int8)
              ASSERT_EQ(blocked[e], pieces[e]) << "int8 packed " << packed << " beta " << beta << " at " << e;
            else
              ASSERT_NEAR(blocked[e], pieces[e], 1e-4) << "bf16 packed " << packed << " beta " << beta << " at " << e;
          }
        }
      }
  omp_set_num_threads(saved_threads);
}

// The epilogue (and int8's dequantizing pass) runs over pieces of rows split among the threads,
// so that a few rows still use both: the result must equal the GEMM without an epilogue followed by
// bias_add / bias_gelu over whole rows, bit for bit, in every precision, at row counts that split
// into pieces (1 and 3 rows of 700 columns: 3 pieces per row) and that do not.
TEST(GemmEpilogue, RowPiecesEqualWholeRowsInEveryPrecision) {
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(2);
  const int64_t k = 64, n = 700;
  const Tensor w = random_matrix(k, n, 81, 0.1f);
  const auto bias = random_normal(static_cast<size_t>(n), 82, 0.5f);
  const Int8Matrix w8 = int8_gemm_available() ? to_int8(w) : Int8Matrix{};
  const Bf16Matrix w16 = bf16_gemm_available() ? to_bf16(w) : Bf16Matrix{};
  const RowKernels& kernels = row_kernels();
  for (int64_t m : {1, 3, 40}) {
    const Tensor a = random_matrix(m, k, 83 + static_cast<unsigned>(m));
    for (int precision = 0; precision < 3; ++precision) {
      if ((precision == 1 && !bf16_gemm_available()) || (precision == 2 && !int8_gemm_available())) continue;
      for (bool gelu : {false, true}) {
        auto run = [&](Epilogue epilogue, std::vector<float>& c) {
          c.assign(static_cast<size_t>(m * n), 0.0f);
          if (precision == 0) gemm(m, n, k, {a.data(), k}, {w.data(), n}, c.data(), n, 0.0f, epilogue);
          if (precision == 1) gemm_bf16(m, n, k, {a.data(), k}, {w16.row(0), n, w16.packed.get()}, c.data(), n, 0.0f, epilogue);
          if (precision == 2)
            gemm_int8(m, n, k, {a.data(), k}, {w8.row(0), n, w8.scales.data(), w8.packed.get()}, c.data(), n, 0.0f, epilogue);
        };
        std::vector<float> fused, separate;
        run({bias.data(), gelu}, fused);
        run({}, separate);
        for (int64_t r = 0; r < m; ++r)
          gelu ? kernels.bias_gelu(separate.data() + r * n, bias.data(), n) : kernels.bias_add(separate.data() + r * n, bias.data(), n);
        ASSERT_EQ(fused, separate) << "precision " << precision << " rows " << m << " gelu " << gelu;
      }
    }
  }
  omp_set_num_threads(saved_threads);
}

// Sieve's own AMX int8 kernel (the FFN's first weight in the blocked path) computes the same exact
// int32 sums as oneDNN's matmul and dequantizes them with the same kernel, so it must equal
// oneDNN + the dequantizing pass bit for bit: called directly at row counts around the 16-row
// tiles and 32-row pairs, and through gemm_int8's blocked path, with each epilogue and accumulation.
TEST(GemmInt8Amx, TileKernelEqualsOneDnnPathBitForBit) {
  if (!int8_gemm_available() || !amx::int8_available()) GTEST_SKIP() << "no AMX-INT8 on this CPU";
  EXPECT_TRUE(amx::pack_int8_weights(nullptr, 100, 64).empty());  // k not a multiple of 64
  EXPECT_TRUE(amx::pack_int8_weights(nullptr, 128, 48).empty());  // n not a multiple of 32
  const RowKernels& kernels = row_kernels();
  for (auto [k, n] : {std::pair<int64_t, int64_t>{128, 96}, {192, 160}, {64, 288}}) {
    const Int8Matrix w = to_int8(random_matrix(k, n, 91, 0.1f), /*amx_copy=*/true);
    ASSERT_EQ(w.amx.size(), static_cast<size_t>(k * n));
    // The layout: tile t, chunk q, row g, byte 4 col + i holds B[64 q + 4 g + i][16 t + col].
    const int64_t chunks = k / 64;
    for (auto [t, q, g, col, i] : {std::array<int64_t, 5>{0, 0, 0, 0, 0}, {1, chunks - 1, 15, 15, 3}, {n / 16 - 1, 0, 7, 3, 2}})
      ASSERT_EQ(w.amx[((t * chunks + q) * 16 + g) * 64 + col * 4 + i], w.row(64 * q + 4 * g + i)[16 * t + col]);
    const auto bias = random_normal(static_cast<size_t>(n), 92, 0.5f);
    for (int64_t m : {1, 15, 16, 17, 31, 32, 33, 64, 200}) {
      const int64_t padded = (m + 15) / 16 * 16;
      std::vector<int8_t> codes(static_cast<size_t>(padded * k), 99);  // rows past m: anything
      std::vector<float> scales(static_cast<size_t>(m));
      const Tensor a = random_matrix(m, k, 93 + static_cast<unsigned>(m), 2.0f);
      for (int64_t r = 0; r < m; ++r) scales[r] = kernels.quantize_int8(a.data() + r * k, codes.data() + r * k, k);
      std::vector<int32_t> products(static_cast<size_t>(m * n));
      gemm_s8s8s32(m, n, k, codes.data(), k, {w.row(0), n, w.scales.data(), w.packed.get()}, products.data(), n);
      for (bool accumulate : {false, true})
        for (Epilogue epilogue : {Epilogue{}, Epilogue{bias.data(), false}, Epilogue{bias.data(), true}}) {
          std::vector<float> expected(static_cast<size_t>(m * n), 0.25f), got = expected;
          for (int64_t r = 0; r < m; ++r)
            kernels.dequantize_int32(products.data() + r * n, scales[r], w.scales.data(), expected.data() + r * n, accumulate,
                                     epilogue, n);
          amx::gemm_int8_dequantize(m, n, k, codes.data(), scales.data(), w.amx.data(), w.scales.data(), got.data(), n,
                                    accumulate, epilogue);
          ASSERT_EQ(got, expected) << k << "x" << n << " rows " << m << " accumulate " << accumulate << " gelu " << epilogue.gelu;
        }
      // Through gemm_int8 (blocks of rows from 2 x kGemmBlockRows on two threads): the AMX copy or not.
      const int saved_threads = omp_get_max_threads();
      omp_set_num_threads(2);
      std::vector<float> with_amx(static_cast<size_t>(m * n)), without = with_amx;
      gemm_int8(m, n, k, {a.data(), k}, {w.row(0), n, w.scales.data(), w.packed.get(), w.amx.data()}, with_amx.data(), n, 0.0f,
                {bias.data(), true});
      gemm_int8(m, n, k, {a.data(), k}, {w.row(0), n, w.scales.data(), w.packed.get()}, without.data(), n, 0.0f,
                {bias.data(), true});
      omp_set_num_threads(saved_threads);
      ASSERT_EQ(with_amx, without) << k << "x" << n << " rows " << m;
    }
  }
}

TEST(GemmBf16Packed, PackedAndRuntimeShapePathsAgree) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "oneDNN has no bf16 matmul on this CPU";
  const int64_t k = 96, n = 80;
  const Bf16Matrix w = to_bf16(random_matrix(k, n, 41));
  ASSERT_TRUE(w.packed);
  for (int64_t m : {1, 5, 33}) {
    const Tensor a = random_matrix(m, k, 42);
    for (float beta : {0.0f, 1.0f}) {
      std::vector<float> packed(static_cast<size_t>(m * n), 0.5f), plain = packed;
      gemm_bf16(m, n, k, {a.data(), k}, {w.row(0), n, w.packed.get()}, packed.data(), n, beta);
      gemm_bf16(m, n, k, {a.data(), k}, {w.row(0), n}, plain.data(), n, beta);
      for (size_t e = 0; e < packed.size(); ++e) ASSERT_NEAR(packed[e], plain[e], 1e-4) << m << " " << e;
    }
  }
}

TEST_F(GemmInt8Test, EncoderInInt8StaysCloseToFp32AndPruneNothingIsIdentical) {
  const testing::TinyBertShape shape{3, 64, 4, 128, 120, 64, 0};
  const auto dir = testing::make_tiny_bert("int8", shape);
  BertEncoder encoder = BertEncoder::load(dir);
  const std::vector<EncoderInput> inputs = testing::precision_test_inputs();
  const auto fp32 = encoder.forward(inputs);
  EXPECT_THROW(encoder.forward(inputs, {nullptr, Precision::Int8}), Error);  // no int8 weight copies yet
  encoder.set_precision(Precision::Int8);
  const auto int8 = encoder.forward(inputs);
  // The stated tolerance: hidden states (LayerNorm output, unit scale) within 0.15 of fp32 at worst
  // and 0.03 on average over three layers of random weights.
  const testing::HiddenDifference d = testing::hidden_difference(fp32, int8);
  EXPECT_GT(d.worst, 0.0);  // it really ran in int8
  EXPECT_LT(d.worst, 0.15);
  EXPECT_LT(d.mean, 0.03);

  using testing::expect_identical_hidden;
  for (const char* spec : {"spatten:tokens=1,heads=1", "ltp:final=0"}) {
    std::unique_ptr<LayerPolicy> chain;
    try {
      chain = parse_policy_spec(spec, encoder.config());
    } catch (const Error&) {
      ADD_FAILURE() << spec;
      continue;
    }
    expect_identical_hidden(encoder.forward(inputs, {chain.get()}), int8, spec);
  }
  // Pruned heads read blocks of the weights (the run-time-shape path): still close to fp32.
  auto heads = parse_policy_spec("spatten:heads=0.5", encoder.config());
  auto fp32_heads = encoder.forward(inputs, {heads.get(), Precision::Fp32});
  auto int8_heads = encoder.forward(inputs, {heads.get()});
  for (size_t i = 0; i < inputs.size(); ++i)
    for (int64_t e = 0; e < fp32_heads[i].hidden.size(); ++e)
      ASSERT_NEAR(fp32_heads[i].hidden.data()[e], int8_heads[i].hidden.data()[e], 0.2);
  encoder.set_precision(Precision::Fp32);  // and back: fp32 again, bit for bit
  expect_identical_hidden(encoder.forward(inputs), fp32, "fp32 again");
  expect_identical_hidden(encoder.forward(inputs, {nullptr, Precision::Int8}), int8, "per-call int8");
  EXPECT_EQ(parse_precision(precision_name(Precision::Int8)), Precision::Int8);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sieve
