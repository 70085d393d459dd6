// Each CUDA kernel against the CPU implementation it mirrors, on random inputs (the end-to-end test in
// encoder_test.cpp covers real activations). Inputs are drawn in FP16 and handed to the CPU as their
// exact FP32 images, so differences come only from the GPU's FP16 outputs and accumulation order.
#include <gtest/gtest.h>

#include <cuda_bf16.h>

#include <numeric>

#include "attention/fused_attention.h"
#include "cuda/gemm.h"
#include "cuda/host/attention_plan.h"
#include "cuda/kernels.h"
#include "cuda_test_util.h"
#include "kernels/gemm.h"
#include "kernels/row_kernels.h"

namespace sieve::cuda {
namespace {

using namespace sieve::cuda::testing;

// Which statistics the caller asks for picks the kernel: column sums need the two-pass kernel,
// none or head magnitudes alone run the one-pass kernel unless kTwoPass is forced.
enum class Stats { kAll, kNone, kMagnitudeOnly };

struct AttentionCase {
  int head_dim;
  std::vector<int64_t> lengths;
  Stats stats = Stats::kAll;
  AttentionAlgorithm algorithm = AttentionAlgorithm::kAuto;
  float input_scale = 1.0f;  // larger: sharper softmax rows, whose running max moves more often
};

class CudaFusedAttention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(CudaFusedAttention, MatchesCpuOutputColumnSumsAndMagnitudes) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  const AttentionCase& c = GetParam();
  const int heads = 3, d = c.head_dim;
  const int64_t H = heads * d;
  std::mt19937 rng(11);
  std::vector<PackedSequence> seqs;
  for (size_t s = 0; s < c.lengths.size(); ++s) {
    PackedSequence seq;
    seq.input_index = static_cast<int>(s);
    seq.positions.resize(static_cast<size_t>(c.lengths[s]));
    seq.is_special.assign(static_cast<size_t>(c.lengths[s]), 0);
    // Pruned heads: sequence 1 lost head 1, sequence 2 computes head 2 only.
    seq.heads = s == 1 ? std::vector<int32_t>{0, 2} : s == 2 ? std::vector<int32_t>{2} : std::vector<int32_t>{0, 1, 2};
    seqs.push_back(std::move(seq));
  }
  const int64_t rows = assign_offsets(seqs);
  const AttentionPlan plan = plan_attention(seqs, heads);
  const HalfData qkv = random_half(static_cast<size_t>(rows * 3 * H), rng, c.input_scale);

  auto d_qkv = to_device(qkv.h);
  DeviceBuffer<__half> d_out(static_cast<size_t>(rows * H));
  SIEVE_CUDA_CHECK(cudaMemset(d_out.get(), 0, sizeof(__half) * rows * H));
  auto d_cu = to_device(plan.cu_seqlens);
  auto d_items = to_device(plan.items);
  DeviceBuffer<float> d_received(static_cast<size_t>(plan.received_size())), d_mag(static_cast<size_t>(plan.head_magnitude_size()));
  AttentionArgs args = packed_attention_args(d_qkv.get(), d_out.get(), heads, d, d_cu.get(), d_items.get(),
                                             static_cast<int>(plan.items.size()));
  args.received = c.stats == Stats::kAll ? d_received.get() : nullptr;
  args.head_magnitude = c.stats != Stats::kNone ? d_mag.get() : nullptr;
  args.algorithm = c.algorithm;
  fused_attention(args, plan.received_size(), plan.head_magnitude_size());
  const std::vector<float> out = to_float(to_host(d_out, static_cast<size_t>(rows * H)));
  const std::vector<float> received = to_host(d_received, static_cast<size_t>(plan.received_size()));
  const std::vector<float> mag = to_host(d_mag, static_cast<size_t>(plan.head_magnitude_size()));

  std::vector<float> ref_out(static_cast<size_t>(rows * H), 0.0f), ref_received(received.size(), 0.0f), ref_mag(mag.size(), 0.0f);
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t n = seqs[s].length(), row0 = seqs[s].offset;
    for (int32_t h : seqs[s].heads) {
      const float* base = qkv.f.data() + row0 * 3 * H + h * 3 * d;
      HeadView view{base, base + d, base + 2 * d, 3 * H, ref_out.data() + row0 * H + h * d, H};
      HeadStatistics st{ref_received.data() + heads * row0 + h * n, &ref_mag[s * heads + static_cast<size_t>(h)]};
      fused_attention(view, n, d, args.scale, st);
    }
  }
  // Output: P is rounded to FP16 before P V (as in FlashAttention), the output itself is FP16.
  EXPECT_LT(worst_ratio(out, ref_out, 2e-3, 1e-2), 1.0);
  if (c.stats == Stats::kNone) return;
  EXPECT_LT(worst_ratio(mag, ref_mag, 1e-3, 5e-3), 1.0);
  if (c.stats == Stats::kMagnitudeOnly) return;
  // Column sums are formed from FP32 probabilities: close to the CPU's.
  EXPECT_LT(worst_ratio(received, ref_received, 1e-4, 1e-3), 1.0);
  // Rows of P sum to 1, so each live head's column sums add up to the sequence length.
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t n = seqs[s].length();
    for (int32_t h : seqs[s].heads) {
      double total = 0.0;
      for (int64_t j = 0; j < n; ++j) total += received[static_cast<size_t>(heads * seqs[s].offset + h * n + j)];
      EXPECT_NEAR(total, static_cast<double>(n), 1e-3 * static_cast<double>(n));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaFusedAttention,
    ::testing::Values(AttentionCase{32, {1, 7, 64, 65, 130}}, AttentionCase{64, {3, 31, 32, 33, 200, 384}},
                      AttentionCase{64, {512, 5, 512}}, AttentionCase{128, {17, 96, 250}},
                      AttentionCase{64, {1, 100, 384}, Stats::kNone},
                      AttentionCase{64, {1, 100, 384}, Stats::kNone, AttentionAlgorithm::kTwoPass},
                      AttentionCase{32, {1, 7, 64, 65, 130}, Stats::kNone},
                      AttentionCase{128, {17, 96, 250}, Stats::kMagnitudeOnly},
                      AttentionCase{64, {3, 31, 32, 33, 200, 384}, Stats::kMagnitudeOnly},
                      AttentionCase{64, {512, 5, 512}, Stats::kNone},
                      AttentionCase{64, {63, 64, 65, 127, 128, 129, 1000}, Stats::kNone},
                      AttentionCase{64, {63, 64, 65, 127, 128, 129, 1000}, Stats::kAll},
                      AttentionCase{128, {1, 200, 700}, Stats::kNone, AttentionAlgorithm::kAuto, 2.0f},
                      AttentionCase{64, {2, 300}, Stats::kMagnitudeOnly, AttentionAlgorithm::kAuto, 2.0f},
                      AttentionCase{32, {2, 300}, Stats::kAll, AttentionAlgorithm::kAuto, 2.0f}));

TEST(CudaFusedAttentionArgs, RejectsUnsupportedHeadDim) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  AttentionArgs args;
  args.num_items = 1;
  args.head_dim = 48;
  args.qkv_stride = args.out_stride = 144;
  EXPECT_THROW(fused_attention(args, 0, 0), Error);
}

class CudaRowKernels : public ::testing::TestWithParam<int64_t> {};

TEST_P(CudaRowKernels, MatchPortableCpuKernels) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  const int64_t cols = GetParam(), rows = 37;
  std::mt19937 rng(5);
  const HalfData x = random_half(static_cast<size_t>(rows * cols), rng, 2.0f);
  const HalfData res = random_half(static_cast<size_t>(rows * cols), rng, 1.0f);
  const HalfData bias = random_half(static_cast<size_t>(cols), rng, 0.5f);
  std::vector<float> gamma(static_cast<size_t>(cols)), beta(static_cast<size_t>(cols));
  for (auto& g : gamma) g = 1.0f + 0.1f * std::normal_distribution<float>()(rng);
  for (auto& b : beta) b = 0.1f * std::normal_distribution<float>()(rng);
  const RowKernels& cpu = portable::kRowKernels;

  {  // bias + GELU
    auto d_x = to_device(x.h);
    auto d_b = to_device(bias.h);
    bias_gelu(d_x.get(), d_b.get(), rows, cols);
    const auto got = to_float(to_host(d_x, x.h.size()));
    auto ref = x.f;
    for (int64_t r = 0; r < rows; ++r) cpu.bias_gelu(ref.data() + r * cols, bias.f.data(), cols);
    EXPECT_LT(worst_ratio(got, ref, 1e-3, 2e-3), 1.0) << "bias_gelu";
  }
  {  // bias add over a strided sub-block (columns [2, cols) of each row)
    auto d_x = to_device(x.h);
    auto d_b = to_device(bias.h);
    bias_add(d_x.get() + 2, cols, d_b.get(), rows, cols - 2);
    const auto got = to_float(to_host(d_x, x.h.size()));
    auto ref = x.f;
    for (int64_t r = 0; r < rows; ++r) cpu.bias_add(ref.data() + r * cols + 2, bias.f.data(), cols - 2);
    EXPECT_LT(worst_ratio(got, ref, 1e-3, 2e-3), 1.0) << "bias_add";
  }
  for (bool with_bias : {false, true}) {  // bias + residual + LayerNorm
    auto d_x = to_device(x.h);
    auto d_b = to_device(bias.h);
    auto d_r = to_device(res.h);
    auto d_g = to_device(gamma);
    auto d_beta = to_device(beta);
    bias_residual_layernorm(d_x.get(), with_bias ? d_b.get() : nullptr, d_r.get(), d_g.get(), d_beta.get(), 1e-12f, rows, cols);
    const auto got = to_float(to_host(d_x, x.h.size()));
    auto ref = x.f;
    for (int64_t r = 0; r < rows; ++r)
      cpu.bias_residual_layernorm(ref.data() + r * cols, with_bias ? bias.f.data() : nullptr, res.f.data() + r * cols,
                                  gamma.data(), beta.data(), 1e-12f, cols);
    EXPECT_LT(worst_ratio(got, ref, 2e-3, 2e-3), 1.0) << "layernorm bias=" << with_bias;
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, CudaRowKernels, ::testing::Values(8, 34, 384, 768, 3072));

TEST(CudaEmbedding, SumsThreeTablesThenNormalizes) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  const int64_t cols = 64, vocab = 50, rows = 9;
  std::mt19937 rng(9);
  const HalfData word = random_half(static_cast<size_t>(vocab * cols), rng), pos = random_half(static_cast<size_t>(16 * cols), rng),
                 type = random_half(static_cast<size_t>(2 * cols), rng);
  std::vector<float> gamma(static_cast<size_t>(cols), 1.5f), beta(static_cast<size_t>(cols), -0.25f);
  std::vector<int32_t> ids, positions, types;
  for (int64_t r = 0; r < rows; ++r) {
    ids.push_back(static_cast<int32_t>((r * 7) % vocab));
    positions.push_back(static_cast<int32_t>(r % 5));
    types.push_back(static_cast<int32_t>(r % 2));
  }
  auto d_ids = to_device(ids), d_pos_ids = to_device(positions), d_types = to_device(types);
  auto d_word = to_device(word.h), d_pos = to_device(pos.h), d_type = to_device(type.h);
  auto d_g = to_device(gamma), d_b = to_device(beta);
  DeviceBuffer<__half> d_out(static_cast<size_t>(rows * cols));
  embed_layernorm(d_ids.get(), d_pos_ids.get(), d_types.get(), d_word.get(), d_pos.get(), d_type.get(), d_g.get(),
                  d_b.get(), 1e-12f, d_out.get(), rows, cols);
  const auto got = to_float(to_host(d_out, static_cast<size_t>(rows * cols)));
  std::vector<float> ref(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      ref[static_cast<size_t>(r * cols + c)] = word.f[static_cast<size_t>(ids[static_cast<size_t>(r)] * cols + c)] +
                                               pos.f[static_cast<size_t>(positions[static_cast<size_t>(r)] * cols + c)] +
                                               type.f[static_cast<size_t>(types[static_cast<size_t>(r)] * cols + c)];
    portable::kRowKernels.bias_residual_layernorm(ref.data() + r * cols, nullptr, nullptr, gamma.data(), beta.data(), 1e-12f, cols);
  }
  EXPECT_LT(worst_ratio(got, ref, 5e-3, 5e-3), 1.0);
}

TEST(CudaTopK, MatchesProtectedCpuTopK) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(21);
  const std::vector<int32_t> lengths{1, 2, 5, 64, 100, 128, 384, 512, 1000, 4096};
  std::vector<int32_t> cu{0}, keep;
  std::vector<float> scores;
  std::vector<uint8_t> special;
  int max_len = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    const int n = lengths[s];
    max_len = std::max(max_len, n);
    for (int i = 0; i < n; ++i) {
      // Coarse values: many ties, which the earlier row must win, as on the CPU.
      scores.push_back(static_cast<float>(static_cast<int>(rng() % 50)) * (s % 2 ? 0.125f : -0.5f));
      special.push_back(i == 0 || i == n - 1 ? 1 : 0);
    }
    cu.push_back(cu.back() + n);
    keep.push_back(s == 3 ? 0 : s == 4 ? n + 5 : s == 5 ? -1 : n / 3);
  }
  auto d_scores = to_device(scores);
  auto d_special = to_device(special);
  auto d_cu = to_device(cu);
  auto d_keep = to_device(keep);
  DeviceBuffer<uint8_t> d_mask(scores.size());
  DeviceBuffer<int32_t> d_rows(scores.size()), d_count(lengths.size());
  top_k_keep(d_scores.get(), d_special.get(), d_cu.get(), d_keep.get(), static_cast<int>(lengths.size()), max_len,
             d_mask.get(), d_rows.get(), d_count.get());
  const auto mask = to_host(d_mask, scores.size());
  const auto kept_rows = to_host(d_rows, scores.size());
  const auto count = to_host(d_count, lengths.size());
  for (size_t s = 0; s < lengths.size(); ++s) {
    const size_t b = static_cast<size_t>(cu[s]), n = static_cast<size_t>(lengths[s]);
    const auto expected = protected_top_k(std::span(scores).subspan(b, n), std::span(special).subspan(b, n), keep[s]);
    ASSERT_EQ(count[s], static_cast<int32_t>(expected.size())) << "sequence " << s;
    EXPECT_EQ(std::vector<int32_t>(kept_rows.begin() + static_cast<std::ptrdiff_t>(b),
                                   kept_rows.begin() + static_cast<std::ptrdiff_t>(b + expected.size())),
              expected)
        << "sequence " << s;
    std::vector<uint8_t> expected_mask(n, 0);
    for (int32_t r : expected) expected_mask[static_cast<size_t>(r)] = 1;
    EXPECT_EQ(std::vector<uint8_t>(mask.begin() + static_cast<std::ptrdiff_t>(b), mask.begin() + static_cast<std::ptrdiff_t>(b + n)),
              expected_mask);
  }
}

TEST(CudaGather, RowsAndHeadSlices) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(2);
  for (int64_t cols : {64, 6}) {
    const int64_t rows = 20;
    const HalfData src = random_half(static_cast<size_t>(rows * cols), rng);
    const std::vector<int32_t> pick{0, 3, 4, 19, 7};
    auto d_src = to_device(src.h);
    auto d_pick = to_device(pick);
    DeviceBuffer<__half> d_dst(pick.size() * static_cast<size_t>(cols));
    gather_rows(d_src.get(), d_dst.get(), d_pick.get(), static_cast<int64_t>(pick.size()), cols);
    const auto got = to_float(to_host(d_dst, pick.size() * static_cast<size_t>(cols)));
    for (size_t i = 0; i < pick.size(); ++i)
      for (int64_t c = 0; c < cols; ++c)
        ASSERT_EQ(got[i * static_cast<size_t>(cols) + static_cast<size_t>(c)], src.f[static_cast<size_t>(pick[i] * cols + c)]);
  }
  for (int64_t width : {32, 3}) {
    const int heads = 6;
    const int64_t rows = 9, ld = heads * width;
    const HalfData src = random_half(static_cast<size_t>(rows * ld), rng);
    const std::vector<int32_t> live{1, 2, 5};
    auto d_src = to_device(src.h);
    auto d_live = to_device(live);
    const int64_t dst_ld = static_cast<int64_t>(live.size()) * width;
    DeviceBuffer<__half> d_dst(static_cast<size_t>(rows * dst_ld));
    gather_head_slices(d_src.get(), ld, d_dst.get(), dst_ld, d_live.get(), static_cast<int>(live.size()), width, rows);
    const auto got = to_float(to_host(d_dst, static_cast<size_t>(rows * dst_ld)));
    for (int64_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < live.size(); ++i)
        for (int64_t c = 0; c < width; ++c)
          ASSERT_EQ(got[static_cast<size_t>(r * dst_ld + static_cast<int64_t>(i) * width + c)],
                    src.f[static_cast<size_t>(r * ld + live[i] * width + c)]);
  }
}

TEST(CudaGemm, MatchesCpuGemmWithStridesAndBeta) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(4);
  const int64_t m = 37, n = 96, k = 80, lda = 88, ldb = 104, ldc = 112;
  const HalfData a = random_half(static_cast<size_t>(m * lda), rng, 0.5f);
  const HalfData b = random_half(static_cast<size_t>(k * ldb), rng, 0.5f);
  const HalfData c0 = random_half(static_cast<size_t>(m * ldc), rng, 0.5f);
  CublasGemm gemm_gpu;
  for (float beta : {0.0f, 1.0f}) {
    auto d_a = to_device(a.h), d_b = to_device(b.h), d_c = to_device(c0.h);
    gemm_gpu(m, n, k, d_a.get(), lda, d_b.get(), ldb, d_c.get(), ldc, beta);
    const auto got = to_float(to_host(d_c, c0.h.size()));
    std::vector<float> ref = c0.f;
    gemm(m, n, k, {a.f.data(), lda}, {b.f.data(), ldb}, ref.data(), ldc, beta);
    EXPECT_LT(worst_ratio(got, ref, 5e-3, 5e-3), 1.0) << "beta " << beta;
  }
  {  // FP32 output
    auto d_a = to_device(a.h), d_b = to_device(b.h);
    DeviceBuffer<float> d_c(static_cast<size_t>(m * ldc));
    gemm_gpu(m, n, k, d_a.get(), lda, d_b.get(), ldb, d_c.get(), ldc, 0.0f, GemmInput::F16, true);
    const auto got = to_host(d_c, static_cast<size_t>(m * ldc));
    std::vector<float> ref(static_cast<size_t>(m * ldc), 0.0f);
    gemm(m, n, k, {a.f.data(), lda}, {b.f.data(), ldb}, ref.data(), ldc);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t cc = 0; cc < n; ++cc)
        EXPECT_NEAR(got[static_cast<size_t>(r * ldc + cc)], ref[static_cast<size_t>(r * ldc + cc)], 1e-3);
  }
}

TEST(CudaGemm, Bf16InputsWithFp32Accumulation) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(6);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  const int64_t m = 19, n = 48, k = 64;
  std::vector<__nv_bfloat16> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n));
  std::vector<float> af(a.size()), bf(b.size());
  for (size_t i = 0; i < a.size(); ++i) af[i] = __bfloat162float(a[i] = __float2bfloat16(dist(rng)));
  for (size_t i = 0; i < b.size(); ++i) bf[i] = __bfloat162float(b[i] = __float2bfloat16(dist(rng)));
  auto d_a = to_device(a), d_b = to_device(b);
  DeviceBuffer<float> d_c(static_cast<size_t>(m * n));
  CublasGemm gemm_gpu;
  gemm_gpu(m, n, k, d_a.get(), k, d_b.get(), n, d_c.get(), n, 0.0f, GemmInput::BF16, true);
  const auto got = to_host(d_c, static_cast<size_t>(m * n));
  std::vector<float> ref(static_cast<size_t>(m * n));
  gemm(m, n, k, {af.data(), k}, {bf.data(), n}, ref.data(), n);
  EXPECT_LT(worst_ratio(got, ref, 1e-3, 1e-3), 1.0);
}

}  // namespace
}  // namespace sieve::cuda
