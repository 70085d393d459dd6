// E.T. tile-sparse GEMM (issue 22): against a double-precision product of the same masked weights
// and against the dense GEMM, both kernel sets, every sparsity from 0 to 100 %, odd shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/tile_sparse_gemm.h"
#include "model/bert_encoder.h"
#include "model/safetensors.h"
#include "policies/policy_spec.h"
#include "precision_helpers.h"
#include "test_helpers.h"
#include "tiny_bert.h"
#include "util/error.h"
#include "util/half.h"

namespace sieve {
namespace {

using testing::random_normal;

// Wt [k, n] with each tile_k x 16 tile zeroed with probability `sparsity`.
Tensor masked_weight(int64_t k, int64_t n, int64_t tile_k, double sparsity, unsigned seed) {
  Tensor w({k, n});
  const auto values = random_normal(static_cast<size_t>(k * n), seed, 0.2f);
  std::copy(values.begin(), values.end(), w.data());
  std::mt19937 rng(seed + 1);
  std::bernoulli_distribution zero(sparsity);
  for (int64_t j0 = 0; j0 < n; j0 += 16)
    for (int64_t k0 = 0; k0 < k; k0 += tile_k) {
      if (!zero(rng)) continue;
      for (int64_t r = k0; r < std::min(k, k0 + tile_k); ++r)
        for (int64_t j = j0; j < std::min(n, j0 + 16); ++j) w.row(r)[j] = 0.0f;
    }
  return w;
}

std::vector<double> reference_product(int64_t m, const std::vector<float>& a, const Tensor& w) {
  const int64_t k = w.dim(0), n = w.dim(1);
  std::vector<double> c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += static_cast<double>(a[i * k + p]) * w.row(p)[j];
  return c;
}

struct Shape {
  int64_t m, k, n, tile_k;
};

class TileSparseGemmTest : public ::testing::TestWithParam<std::tuple<Shape, double>> {};

TEST_P(TileSparseGemmTest, EqualsDenseProductOnTheSameMaskedWeights) {
  const auto [shape, sparsity] = GetParam();
  const auto [m, k, n, tile_k] = shape;
  const Tensor w = masked_weight(k, n, tile_k, sparsity, static_cast<unsigned>(m * 131 + k * 7 + n));
  const auto a = random_normal(static_cast<size_t>(m * k), 3);
  const TileSparseMatrix sparse = to_tile_sparse(w, tile_k);
  EXPECT_NEAR(sparse.sparsity(), tile_sparsity(w, tile_k), 1e-12);
  const auto expected = reference_product(m, a, w);

  std::vector<float> dense(static_cast<size_t>(m * n));
  gemm(m, n, k, {a.data(), k}, {w.data(), n}, dense.data(), n);
  using Kernel = void (*)(int64_t, MatrixRef, const TileSparseMatrix&, const TileBlock&, int64_t, int64_t, float*, int64_t,
                          bool);
  std::vector<std::pair<const char*, Kernel>> kernels = {{"portable", portable::tile_sparse_blocks}};
  if (cpu_has_avx512()) kernels.push_back({"avx512", avx512::tile_sparse_blocks});
  for (auto [name, kernel] : kernels) {
    std::vector<float> c(static_cast<size_t>(m * n), -7.0f);  // every output must be written
    kernel(m, {a.data(), k}, sparse, {0, k, 0, n}, 0, sparse.column_blocks(), c.data(), n, false);
    for (size_t i = 0; i < c.size(); ++i) {
      ASSERT_NEAR(c[i], expected[i], 1e-4 * (1.0 + std::fabs(expected[i]))) << name << " at " << i;
      ASSERT_NEAR(c[i], dense[i], 1e-4 * (1.0 + std::fabs(dense[i]))) << name << " at " << i;
    }
  }
  std::vector<float> c(static_cast<size_t>(m * n));
  gemm_tile_sparse(m, {a.data(), k}, sparse, c.data(), n);  // the dispatching, threaded entry
  for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], expected[i], 1e-4 * (1.0 + std::fabs(expected[i])));
}

// Values rounded to bf16 the way gemm_bf16 and gemm_tile_sparse_bf16 round them.
std::vector<float> rounded_to_bf16(const float* x, int64_t n) {
  std::vector<uint16_t> bits(static_cast<size_t>(n));
  row_kernels().to_bf16(x, bits.data(), n);
  std::vector<float> out(bits.size());
  std::transform(bits.begin(), bits.end(), out.begin(), bf16_to_f32);
  return out;
}

// The bf16 product: against the exact product of the bf16-rounded operands (each bf16 x bf16
// product is exact in fp32, so only the summation order differs), and against oneDNN's dense
// bf16 GEMM on the same weights.
TEST_P(TileSparseGemmTest, Bf16EqualsTheDenseBf16ProductOnTheSameMaskedWeights) {
  const auto [shape, sparsity] = GetParam();
  const auto [m, k, n, tile_k] = shape;
  const Tensor w = masked_weight(k, n, tile_k, sparsity, static_cast<unsigned>(m * 131 + k * 7 + n));
  const auto a = random_normal(static_cast<size_t>(m * k), 3);
  TileSparseMatrix sparse = to_tile_sparse(w, tile_k);
  EXPECT_FALSE(sparse.has_bf16);  // made only where bf16 runs
  add_bf16_tiles(sparse);
  std::vector<float> c(static_cast<size_t>(m * n));
  if (tile_k % 2 != 0) {  // an input pair would straddle two tiles: no bf16 copy
    EXPECT_FALSE(sparse.has_bf16);
    EXPECT_THROW(gemm_tile_sparse_bf16(m, {a.data(), k}, sparse, c.data(), n), Error);
    return;
  }
  ASSERT_TRUE(sparse.has_bf16);
  Tensor w16({k, n});
  const auto w_rounded = rounded_to_bf16(w.data(), w.size());
  std::copy(w_rounded.begin(), w_rounded.end(), w16.data());
  const auto expected = reference_product(m, rounded_to_bf16(a.data(), m * k), w16);

  const int64_t stride = (k + tile_k - 1) / tile_k * tile_k;  // as Bf16Rows asks
  std::vector<uint16_t> a16(static_cast<size_t>((m + 15) / 16 * 16 * stride), 0);
  for (int64_t r = 0; r < m; ++r) row_kernels().to_bf16(a.data() + r * k, a16.data() + r * stride, k);
  using Kernel = void (*)(int64_t, Bf16Rows, const TileSparseMatrix&, const TileBlock&, int64_t, int64_t, float*, int64_t,
                          bool);
  std::vector<std::pair<const char*, Kernel>> kernels = {{"portable", portable::tile_sparse_blocks_bf16}};
  if (cpu_has_avx512_bf16()) kernels.push_back({"avx512bf16", avx512bf16::tile_sparse_blocks_bf16});
  if (amx::available() && tile_k <= 32) kernels.push_back({"amx", amx::tile_sparse_blocks_bf16});
  for (auto [name, kernel] : kernels) {
    std::vector<float> out(static_cast<size_t>(m * n), -7.0f);  // every output must be written
    kernel(m, {a16.data(), stride}, sparse, {0, k, 0, n}, 0, sparse.column_blocks(), out.data(), n, false);
    for (size_t i = 0; i < out.size(); ++i)
      ASSERT_NEAR(out[i], expected[i], 1e-4 * (1.0 + std::fabs(expected[i]))) << name << " at " << i;
  }
  gemm_tile_sparse_bf16(m, {a.data(), k}, sparse, c.data(), n);  // the dispatching, threaded entry
  for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], expected[i], 1e-4 * (1.0 + std::fabs(expected[i])));
  if (!bf16_gemm_available()) return;
  const Bf16Matrix dense16 = to_bf16(w);
  std::vector<float> dense(static_cast<size_t>(m * n));
  gemm_bf16(m, n, k, {a.data(), k}, {dense16.row(0), n}, dense.data(), n);
  for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], dense[i], 1e-4 * (1.0 + std::fabs(dense[i]))) << i;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, TileSparseGemmTest,
    ::testing::Combine(::testing::Values(Shape{1, 64, 64, 16}, Shape{13, 37, 45, 16}, Shape{30, 384, 384, 16},
                                         Shape{25, 96, 1536 / 8, 8}, Shape{7, 50, 33, 5}, Shape{40, 129, 17, 32}),
                       ::testing::Values(0.0, 0.1, 0.5, 0.7, 0.8, 0.9, 1.0)));

TEST(TileSparseGemm, AccumulatesAndAppliesTheDenseEpilogue) {
  const int64_t m = 19, k = 64, n = 70;
  const Tensor w = masked_weight(k, n, 16, 0.6, 11);
  const auto a = random_normal(static_cast<size_t>(m * k), 4), bias = random_normal(static_cast<size_t>(n), 5);
  const TileSparseMatrix sparse = to_tile_sparse(w, 16);
  for (bool gelu : {false, true}) {
    std::vector<float> dense(static_cast<size_t>(m * n));
    gemm(m, n, k, {a.data(), k}, {w.data(), n}, dense.data(), n);
    for (int64_t r = 0; r < m; ++r)
      gelu ? row_kernels().bias_gelu(dense.data() + r * n, bias.data(), n) : row_kernels().bias_add(dense.data() + r * n, bias.data(), n);
    std::vector<float> c(static_cast<size_t>(m * n));
    gemm_tile_sparse(m, {a.data(), k}, sparse, c.data(), n, 0.0f, {.bias = bias.data(), .gelu = gelu});
    for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], dense[i], 1e-4 * (1.0 + std::fabs(dense[i])));
  }
  // beta = 1 adds to what C holds (the head-pruned output projection's accumulation).
  std::vector<float> twice(static_cast<size_t>(m * n)), once(static_cast<size_t>(m * n));
  gemm_tile_sparse(m, {a.data(), k}, sparse, once.data(), n);
  gemm_tile_sparse(m, {a.data(), k}, sparse, twice.data(), n);
  gemm_tile_sparse(m, {a.data(), k}, sparse, twice.data(), n, 1.0f);
  for (size_t i = 0; i < once.size(); ++i) ASSERT_FLOAT_EQ(twice[i], 2.0f * once[i]);
}

// Pruned heads: a column block (QKV of a run of heads) and a row block (their rows of the
// attention output) against the dense GEMM on the same slice.
TEST(TileSparseGemm, BlocksOfTheWeightEqualTheDenseSlice) {
  const int64_t m = 14, k = 96, n = 144;
  const Tensor w = masked_weight(k, n, 16, 0.5, 21);
  TileSparseMatrix sparse = to_tile_sparse(w, 16);
  add_bf16_tiles(sparse);  // (the bf16 blocks below)
  const auto a = random_normal(static_cast<size_t>(m * k), 6), bias = random_normal(static_cast<size_t>(n), 7);
  for (const TileBlock block : {TileBlock{0, k, 32, 64}, TileBlock{32, 80, 0, n}, TileBlock{16, 96, 48, 96}, TileBlock{0, k, 128, 16}}) {
    const int64_t rows = block.row1 - block.row0;
    std::vector<float> dense(static_cast<size_t>(m * block.cols)), c(dense.size());
    gemm(m, block.cols, rows, {a.data() + block.row0, k}, {w.row(block.row0) + block.col0, n}, dense.data(), block.cols);
    for (int64_t r = 0; r < m; ++r) row_kernels().bias_add(dense.data() + r * block.cols, bias.data() + block.col0, block.cols);
    ASSERT_TRUE(tile_aligned(sparse, block));
    gemm_tile_sparse(m, {a.data() + block.row0, k}, sparse, block, c.data(), block.cols, 0.0f, {.bias = bias.data() + block.col0});
    for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], dense[i], 1e-4 * (1.0 + std::fabs(dense[i]))) << i;
  }
  // The bf16 product on the same blocks, with beta = 1 (accumulating) and the GELU epilogue.
  for (const TileBlock block : {TileBlock{0, k, 32, 64}, TileBlock{32, 80, 0, n}}) {
    const int64_t rows = block.row1 - block.row0;
    Tensor slice({rows, block.cols});
    for (int64_t r = 0; r < rows; ++r)
      std::copy(w.row(block.row0 + r) + block.col0, w.row(block.row0 + r) + block.col0 + block.cols, slice.row(r));
    std::vector<float> a_block(static_cast<size_t>(m * rows));
    for (int64_t r = 0; r < m; ++r) std::copy(a.begin() + r * k + block.row0, a.begin() + r * k + block.row1, a_block.begin() + r * rows);
    const auto w16 = rounded_to_bf16(slice.data(), slice.size());
    std::copy(w16.begin(), w16.end(), slice.data());
    const auto product = reference_product(m, rounded_to_bf16(a_block.data(), m * rows), slice);
    const auto start = random_normal(static_cast<size_t>(m * block.cols), 8);
    std::vector<float> expected(start.size()), c = start;
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<float>(start[i] + product[i]);
    for (int64_t r = 0; r < m; ++r) row_kernels().bias_gelu(expected.data() + r * block.cols, bias.data() + block.col0, block.cols);
    gemm_tile_sparse_bf16(m, {a.data() + block.row0, k}, sparse, block, c.data(), block.cols, 1.0f,
                          {.bias = bias.data() + block.col0, .gelu = true});
    for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], expected[i], 1e-4 * (1.0 + std::fabs(expected[i]))) << i;
  }
  EXPECT_FALSE(tile_aligned(sparse, {0, k, 8, 16}));   // column block off the 16-column grid
  EXPECT_FALSE(tile_aligned(sparse, {4, k, 0, n}));    // row block off the tile rows
  EXPECT_FALSE(tile_aligned(sparse, {0, k + 16, 0, n}));
  std::vector<float> c(static_cast<size_t>(m * n));
  EXPECT_THROW(gemm_tile_sparse(m, {a.data(), k}, sparse, {0, k, 8, 16}, c.data(), n), Error);
}

TEST(TileSparseGemm, CountsTilesAndRejectsBadArguments) {
  Tensor w({32, 48});  // 2 x 3 tiles of 16 x 16, all zero
  EXPECT_EQ(tile_sparsity(w), 1.0);
  w.row(17)[40] = 1.0f;  // tile (1, 2)
  const TileSparseMatrix s = to_tile_sparse(w);
  EXPECT_EQ(s.tiles(), 1);
  EXPECT_NEAR(s.sparsity(), 5.0 / 6.0, 1e-12);
  EXPECT_EQ(s.block_start, (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(s.tile_row, (std::vector<int32_t>{16}));
  EXPECT_THROW(to_tile_sparse(w, 0), Error);
  EXPECT_THROW(tile_sparsity(Tensor({2, 2, 2})), Error);
  std::vector<float> a(32, 1.0f), c(48);
  EXPECT_THROW(gemm_tile_sparse(1, {a.data(), 32}, s, c.data(), 48, 0.5f), Error);
}

// The loader's tile depth follows the grid the weight was pruned on; a dense weight stays 16 deep.
TEST(TileSparseGemm, BestTileDepthFollowsThePruningGrid) {
  EXPECT_EQ(best_tile_k(masked_weight(384, 1536, 16, 0.7, 3)), 16);
  EXPECT_EQ(best_tile_k(masked_weight(384, 1536, 8, 0.7, 3)), 8);
  EXPECT_EQ(best_tile_k(masked_weight(384, 1536, 4, 0.7, 3)), 4);
  EXPECT_EQ(best_tile_k(masked_weight(1536, 384, 4, 0.5, 4)), 4);
  EXPECT_EQ(best_tile_k(masked_weight(96, 64, 16, 0.0, 5)), 16);
  EXPECT_EQ(best_tile_k(Tensor({37, 20})), 16);  // all zero: every depth skips everything
  // Only depths that reach the minimum sparsity compete: a 4-grid mask at 50 % has ~6 % zero
  // 16-deep tiles, so at a 0.3 minimum depth 16 is out, and nothing reaches 0.6.
  const Tensor w = masked_weight(384, 1536, 4, 0.5, 6);
  EXPECT_EQ(best_tile_k(w, 0.3), 4);
  EXPECT_EQ(best_tile_k(w, 0.6), 0);
}

// A tiny checkpoint whose encoder weights lost `sparsity` of their tiles of 16 outputs x `tile_in`
// inputs (in Hugging Face's [out, in] layout, as tools/train_tile_pruning.py prunes them).
std::filesystem::path tile_pruned_bert(const testing::TinyBertShape& shape, double sparsity, int64_t tile_in = 16) {
  const auto dir = testing::make_tiny_bert("tiles", shape);
  const auto file = SafetensorsFile::open(dir / "model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& name : file.names()) tensors.emplace(name, file.load_f32(name));
  std::mt19937 rng(5);
  std::bernoulli_distribution zero(sparsity);
  for (auto& [name, t] : tensors) {
    if (name.find("encoder.layer.") == std::string::npos || name.find("dense.weight") == std::string::npos &&
                                                              name.find("attention.self.") == std::string::npos)
      continue;
    if (t.rank() != 2) continue;
    for (int64_t o0 = 0; o0 < t.dim(0); o0 += 16)
      for (int64_t i0 = 0; i0 < t.dim(1); i0 += tile_in)
        if (zero(rng))
          for (int64_t o = o0; o < o0 + 16; ++o) std::fill(t.row(o) + i0, t.row(o) + i0 + tile_in, 0.0f);
  }
  std::vector<std::pair<std::string, const Tensor*>> list;
  for (const auto& [n, t] : tensors) list.emplace_back(n, &t);
  write_safetensors(dir / "model.safetensors", list);
  return dir;
}

class TileSparseEncoder : public ::testing::TestWithParam<int64_t> {};  // the tile depth pruned on

TEST_P(TileSparseEncoder, PrunedModelEqualsTheDenseEngineOnTheSameWeights) {
  const testing::TinyBertShape shape{3, 64, 4, 128, 120, 64, 0};  // head size 16: heads sit on the tile grid
  const auto dir = tile_pruned_bert(shape, 0.6, GetParam());
  BertEncoder sparse = BertEncoder::load(dir), dense = BertEncoder::load(dir);
  sparse.set_tile_sparse(0.0);
  dense.set_tile_sparse(2.0);
  EXPECT_EQ(sparse.tile_sparse_summary().sparse_weights, 12);
  EXPECT_GT(sparse.tile_sparse_summary().skipped_tiles, 0.4);
  EXPECT_EQ(sparse.tile_sparse_summary().finest_tile_k, GetParam());
  EXPECT_EQ(sparse.tile_sparse_summary().deepest_tile_k, GetParam());
  EXPECT_EQ(dense.tile_sparse_summary().sparse_weights, 0);
  const std::vector<EncoderInput> inputs = testing::precision_test_inputs();
  // Dense, then with SpAtten's token and head pruning (pruned heads read column / row blocks of the
  // tiles) and LTP's threshold pruning: sparse weights change only the order of the arithmetic.
  for (const char* spec : {"dense", "spatten:tokens=0.5,heads=0.5", "ltp:final=0.02"}) {
    auto policy_a = parse_policy_spec(spec, sparse.config()), policy_b = parse_policy_spec(spec, dense.config());
    const auto a = sparse.forward(inputs, {policy_a.get()}), b = dense.forward(inputs, {policy_b.get()});
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].positions, b[i].positions) << spec;
      for (int64_t e = 0; e < a[i].hidden.size(); ++e)
        ASSERT_NEAR(a[i].hidden.data()[e], b[i].hidden.data()[e], 1e-4) << spec << " input " << i << " at " << e;
    }
  }
  std::filesystem::remove_all(dir);
}

// --precision bf16 reads the bf16 tiles: against the dense bf16 engine on the same weights. Both
// round every GEMM's input to bf16, so a summation-order difference can move an activation by one
// bf16 step (2^-8 relative) and the next layers carry it: the bound (worst 0.05, mean 2e-3 on
// hidden states of magnitude ~1) is half of bf16_test's bf16-vs-fp32 one, not fp32's 1e-4.
TEST_P(TileSparseEncoder, Bf16PrunedModelEqualsTheDenseBf16Engine) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no bf16 matmul in oneDNN on this CPU";
  const testing::TinyBertShape shape{3, 64, 4, 128, 120, 64, 0};
  const auto dir = tile_pruned_bert(shape, 0.6, GetParam());
  BertEncoder sparse = BertEncoder::load(dir), dense = BertEncoder::load(dir);
  sparse.set_tile_sparse(0.0);
  dense.set_tile_sparse(2.0);
  sparse.set_precision(Precision::Bf16);
  dense.set_precision(Precision::Bf16);
  const std::vector<EncoderInput> inputs = testing::precision_test_inputs();
  for (const char* spec : {"dense", "spatten:tokens=0.5,heads=0.5"}) {
    auto policy_a = parse_policy_spec(spec, sparse.config()), policy_b = parse_policy_spec(spec, dense.config());
    const auto a = sparse.forward(inputs, {policy_a.get()}), b = dense.forward(inputs, {policy_b.get()});
    ASSERT_EQ(a.size(), b.size());
    const auto diff = testing::hidden_difference(a, b);
    EXPECT_LT(diff.worst, 0.05) << spec;
    EXPECT_LT(diff.mean, 2e-3) << spec;
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(TileDepths, TileSparseEncoder, ::testing::Values(16, 4));

TEST(TileSparseLoad, LoadPicksSparseWeightsOnlyAboveTheCrossover) {
  const testing::TinyBertShape shape{2, 64, 4, 128, 120, 64, 0};
  const auto dense_dir = testing::make_tiny_bert("tiles-dense", shape);
  EXPECT_EQ(BertEncoder::load(dense_dir).tile_sparse_summary().sparse_weights, 0);  // nothing zero: nothing changes
  const auto pruned_dir = tile_pruned_bert(shape, 0.9);
  const BertEncoder pruned = BertEncoder::load(pruned_dir);
  EXPECT_EQ(pruned.tile_sparse_summary().sparse_weights, 8);
  EXPECT_EQ(pruned.tile_sparse_summary().weights, 8);
  std::filesystem::remove_all(dense_dir);
  std::filesystem::remove_all(pruned_dir);
}

}  // namespace
}  // namespace sieve
