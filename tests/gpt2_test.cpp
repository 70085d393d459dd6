// The GPT-2 decoder and its generation-stage policies:
//  - against transformers on the random GPT-2 fixture (logits, greedy generation);
//  - on a tiny random GPT-2 written here: prefill + steps equal full recompute, "prune nothing" is
//    bit-identical to dense, policies against naive references, bad inputs, the CLI.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>

#include "eval/perplexity.h"
#include "gpt2_reference.h"
#include "test_helpers.h"
#include "model/gpt2_decoder.h"
#include "model/safetensors.h"
#include "model/sampling.h"
#include "policies/generation_policy.h"
#include "policies/policy_spec.h"
#include "tokenizers/byte_bpe.h"
#include "util/half.h"
#include "util/error.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// A tiny random GPT-2 in Hugging Face's layout (Conv1D weights [in, out], "transformer." prefix).

struct TinyGpt2 {
  int layers = 2, embd = 32, heads = 4, vocab = 97, positions = 48;
  bool prefix = true;
  // Tensors whose shape a test wants wrong: name -> shape.
  std::map<std::string, std::vector<int64_t>> override_shapes;
  std::vector<std::string> omit;
};

fs::path make_tiny_gpt2(const std::string& name, const TinyGpt2& s, const std::string& model_type = "gpt2") {
  const fs::path dir = fs::temp_directory_path() / ("sieve-gpt2-" + name + "-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 0.3f);
  std::map<std::string, Tensor> tensors;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, float offset = 0.0f) {
    if (std::find(s.omit.begin(), s.omit.end(), n) != s.omit.end()) return;
    if (s.override_shapes.count(n)) shape = s.override_shapes.at(n);
    Tensor t(shape);
    for (int64_t i = 0; i < t.size(); ++i) t.data()[i] = offset + dist(rng);
    tensors.emplace((s.prefix ? "transformer." : "") + n, std::move(t));
  };
  const int64_t E = s.embd;
  add("wte.weight", {s.vocab, E});
  add("wpe.weight", {s.positions, E});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    add(p + "ln_1.weight", {E}, 1.0f);
    add(p + "ln_1.bias", {E});
    add(p + "attn.c_attn.weight", {E, 3 * E});
    add(p + "attn.c_attn.bias", {3 * E});
    add(p + "attn.c_proj.weight", {E, E});
    add(p + "attn.c_proj.bias", {E});
    add(p + "ln_2.weight", {E}, 1.0f);
    add(p + "ln_2.bias", {E});
    add(p + "mlp.c_fc.weight", {E, 4 * E});
    add(p + "mlp.c_fc.bias", {4 * E});
    add(p + "mlp.c_proj.weight", {4 * E, E});
    add(p + "mlp.c_proj.bias", {E});
  }
  add("ln_f.weight", {E}, 1.0f);
  add("ln_f.bias", {E});
  std::vector<std::pair<std::string, const Tensor*>> list;
  for (const auto& [n, t] : tensors) list.emplace_back(n, &t);
  write_safetensors(dir / "model.safetensors", list);
  std::ofstream(dir / "config.json") << json{{"model_type", model_type}, {"n_layer", s.layers}, {"n_embd", s.embd},
                                             {"n_head", s.heads}, {"vocab_size", s.vocab}, {"n_positions", s.positions},
                                             {"n_inner", nullptr}, {"layer_norm_epsilon", 1e-5},
                                             {"activation_function", "gelu_new"}}.dump();
  return dir;
}

class TinyGpt2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = make_tiny_gpt2("shared", TinyGpt2{});
    model_ = new Gpt2Decoder(Gpt2Decoder::load(dir_));
  }
  static void TearDownTestSuite() {
    delete model_;
    fs::remove_all(dir_);
  }
  static std::vector<int32_t> prompt(size_t n, unsigned seed = 3) {
    std::mt19937 rng(seed);
    std::vector<int32_t> ids(n);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % 97);
    return ids;
  }
  // Greedy decoding; every step's logits are appended to `logits`.
  static std::vector<int32_t> greedy(GenerationPolicy& policy, const std::vector<int32_t>& ids, int tokens,
                                     std::vector<std::vector<float>>* logits = nullptr,
                                     std::unique_ptr<DecodingSession>* keep = nullptr) {
    auto session = std::make_unique<DecodingSession>(*model_, policy);
    std::vector<float> l = session->prefill(ids);
    std::vector<int32_t> out;
    for (int t = 0; t < tokens; ++t) {
      if (logits) logits->push_back(l);
      out.push_back(static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin()));
      if (t + 1 < tokens) l = session->step(out.back());
    }
    if (keep) *keep = std::move(session);
    return out;
  }
  static inline fs::path dir_;
  static inline Gpt2Decoder* model_ = nullptr;
};

TEST_F(TinyGpt2Test, PrefillThenStepsEqualFullRecompute) {
  const auto ids = prompt(30);
  auto dense = parse_generation_spec("dense");
  Tensor full;
  DecodingSession all(*model_, *dense);
  all.prefill(ids, &full);
  ASSERT_EQ(full.dim(0), 30);
  DecodingSession incremental(*model_, *dense);
  std::vector<float> logits = incremental.prefill(std::span(ids).first(7));
  float max_error = 0.0f;
  for (size_t t = 7;; ++t) {
    for (int64_t v = 0; v < full.dim(1); ++v) max_error = std::max(max_error, std::abs(logits[static_cast<size_t>(v)] - full.row(static_cast<int64_t>(t) - 1)[v]));
    if (t == ids.size()) break;
    logits = incremental.step(ids[t]);
  }
  EXPECT_LT(max_error, 1e-4f);
}

TEST_F(TinyGpt2Test, PoliciesThatPruneNothingAreBitIdenticalToDense) {
  auto dense = parse_generation_spec("dense");
  std::vector<std::vector<float>> dense_logits;
  const auto ids = prompt(5);
  const auto expected = greedy(*dense, ids, 40, &dense_logits);
  for (const char* spec : {"kv_prune:keep=1", "kv_prune:keep=1,recent=0", "value_prune:k=48", "value_prune:k=48,renorm=0",
                           "kv_prune:keep=1+value_prune:k=1000"}) {
    auto policy = parse_generation_spec(spec);
    std::vector<std::vector<float>> logits;
    EXPECT_EQ(greedy(*policy, ids, 40, &logits), expected) << spec;
    EXPECT_TRUE(logits == dense_logits) << spec << ": logits differ from dense";
  }
}

TEST_F(TinyGpt2Test, SixteenBitProgressiveQuantizationFollowsDense) {
  // Quantization is lossy at any width, so "nothing lost" for progressive means threshold=1 (every
  // head fetches its LSBs); at 8 + 8 bits the logits stay within 1e-3 and the tokens are dense's.
  auto dense = parse_generation_spec("dense");
  std::vector<std::vector<float>> dense_logits, logits;
  const auto ids = prompt(5);
  const auto expected = greedy(*dense, ids, 40, &dense_logits);
  auto policy = parse_generation_spec("progressive:msb=8,lsb=8,threshold=1");
  std::unique_ptr<DecodingSession> session;
  EXPECT_EQ(greedy(*policy, ids, 40, &logits, &session), expected);
  float max_error = 0.0f;
  for (size_t t = 0; t < logits.size(); ++t)
    for (size_t v = 0; v < logits[t].size(); ++v) max_error = std::max(max_error, std::abs(logits[t][v] - dense_logits[t][v]));
  EXPECT_LT(max_error, 1e-3f);
  EXPECT_EQ(session->traffic().lsb_refetches, session->traffic().head_reads);
  EXPECT_DOUBLE_EQ(session->traffic().key_bits / session->traffic().key_elements, 16.0);
}

TEST_F(TinyGpt2Test, KvPruningKeepsTheRatioAndNeverRevivesATokenEndToEnd) {
  auto policy = parse_generation_spec("kv_prune:keep=0.5");
  DecodingSession session(*model_, *policy);
  std::vector<float> logits = session.prefill(prompt(10));
  std::vector<int32_t> alive(session.cache().positions().begin(), session.cache().positions().end());
  EXPECT_EQ(session.cache().size(), 5);
  for (int t = 0; t < 30; ++t) {
    logits = session.step(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    const auto positions = session.cache().positions();
    EXPECT_EQ(session.cache().size(), static_cast<int64_t>(std::ceil(0.5 * static_cast<double>(session.cache().tokens_seen()))));
    EXPECT_EQ(positions.back(), session.cache().tokens_seen() - 1) << "the newest token is always kept";
    for (size_t i = 0; i + 1 < positions.size(); ++i) {
      EXPECT_LT(positions[i], positions[i + 1]);
      // Every cached token was either cached after the previous step or is the new one.
      if (positions[i] != session.cache().tokens_seen() - 1)
        EXPECT_TRUE(std::binary_search(alive.begin(), alive.end(), positions[i])) << "position " << positions[i] << " came back";
    }
    alive.assign(positions.begin(), positions.end());
  }
}

TEST_F(TinyGpt2Test, TrafficCountsWhatEachPolicyReads) {
  const int64_t layers = 2, heads = 4, d = 8;
  auto run_one_step = [&](const std::string& spec) {
    auto policy = parse_generation_spec(spec);
    DecodingSession session(*model_, *policy);
    session.prefill(prompt(9));
    session.step(1);  // 10 visible tokens
    return session.traffic();
  };
  const KvTraffic dense = run_one_step("dense");
  EXPECT_DOUBLE_EQ(dense.key_bytes, layers * heads * 10 * d * 4.0);
  EXPECT_DOUBLE_EQ(dense.value_bytes, layers * heads * 10 * d * 4.0);
  const KvTraffic values = run_one_step("value_prune:k=3");
  EXPECT_DOUBLE_EQ(values.key_bytes, dense.key_bytes);
  EXPECT_DOUBLE_EQ(values.value_bytes, layers * heads * 3 * d * 4.0);
  const KvTraffic msb_only = run_one_step("progressive:msb=4,lsb=4,threshold=0");
  EXPECT_EQ(msb_only.lsb_refetches, 0);
  EXPECT_DOUBLE_EQ(msb_only.key_bits / msb_only.key_elements, 4.0);
  EXPECT_DOUBLE_EQ(msb_only.key_bytes, layers * heads * 10 * (d * 4 / 8.0 + 4.0));  // codes + one fp32 scale per row
  EXPECT_DOUBLE_EQ(msb_only.value_bytes, layers * heads * 10 * (d * 8 / 8.0 + 4.0));
}

TEST_F(TinyGpt2Test, PerplexityEqualsTheFullRecomputeLikelihood) {
  const auto ids = prompt(40, 9);
  auto dense = parse_generation_spec("dense");
  Tensor full;
  DecodingSession session(*model_, *dense);
  session.prefill(ids, &full);
  double nll = 0.0;
  for (size_t t = 1; t < ids.size(); ++t) {
    const float* row = full.row(static_cast<int64_t>(t) - 1);
    const float top = *std::max_element(row, row + full.dim(1));
    double sum = 0.0;
    for (int64_t v = 0; v < full.dim(1); ++v) sum += std::exp(static_cast<double>(row[v] - top));
    nll += std::log(sum) - (row[ids[t]] - top);
  }
  const PerplexityResult r = evaluate_perplexity(*model_, ids, *dense, 48, 48);
  EXPECT_EQ(r.tokens_scored, 39);
  EXPECT_NEAR(r.perplexity, std::exp(nll / 39.0), 1e-4 * r.perplexity);
  // Sliding windows score every token once, too.
  EXPECT_EQ(evaluate_perplexity(*model_, ids, *dense, 16, 8).tokens_scored, 39);
  EXPECT_THROW(evaluate_perplexity(*model_, ids, *dense, 49, 8), Error);
  EXPECT_THROW(evaluate_perplexity(*model_, ids, *dense, 16, 17), Error);
}

TEST_F(TinyGpt2Test, BadInputsAreErrors) {
  auto dense = parse_generation_spec("dense");
  DecodingSession empty(*model_, *dense);
  EXPECT_THROW(empty.prefill({}), Error);
  EXPECT_THROW(empty.step(1), Error);
  DecodingSession bad_id(*model_, *dense);
  EXPECT_THROW(bad_id.prefill(std::vector<int32_t>{1, 97}), Error);
  DecodingSession too_long(*model_, *dense);
  EXPECT_THROW(too_long.prefill(prompt(49)), Error);
  DecodingSession full(*model_, *dense);
  full.prefill(prompt(48));
  EXPECT_TRUE(full.full());
  EXPECT_THROW(full.step(1), Error);
}

TEST(Gpt2Loading, WrongShapesMissingTensorsAndBadConfigsAreErrors) {
  auto expect_error = [](const fs::path& dir, const std::string& part) {
    try {
      Gpt2Decoder::load(dir);
      ADD_FAILURE() << "loaded " << dir;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
  };
  // nn.Linear's [out, in] where Conv1D's [in, out] belongs.
  expect_error(make_tiny_gpt2("linear-layout", TinyGpt2{.override_shapes = {{"h.1.attn.c_attn.weight", {96, 32}}}}), "c_attn");
  expect_error(make_tiny_gpt2("short-wpe", TinyGpt2{.override_shapes = {{"wpe.weight", {47, 32}}}}), "wpe");
  expect_error(make_tiny_gpt2("no-ln-f", TinyGpt2{.omit = {"ln_f.bias"}}), "ln_f.bias");
  expect_error(make_tiny_gpt2("bert", TinyGpt2{}, "bert"), "model_type");
  expect_error(make_tiny_gpt2("heads", TinyGpt2{.heads = 5}), "n_head");
  const fs::path typed = make_tiny_gpt2("string-field", TinyGpt2{});
  std::ofstream(typed / "config.json") << R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 32, "n_head": 4,
      "vocab_size": 97, "n_positions": 48, "activation_function": 3})";
  expect_error(typed, "config.json");
  // Bare GPT2Model names (no "transformer.") load too.
  const fs::path bare = make_tiny_gpt2("bare", TinyGpt2{.prefix = false});
  EXPECT_EQ(Gpt2Decoder::load(bare).config().n_layer, 2);
  fs::remove_all(bare);
  EXPECT_THROW(Gpt2Decoder::load("/nonexistent/gpt2"), Error);
}

// ---------------------------------------------------------------------------------------------
// Policies against naive references, on a hand-made cache.

struct NaiveCase {
  int64_t n = 11, d = 8;
  int heads = 2;
  std::vector<float> query;
  KvCache cache;
};

NaiveCase make_cache(std::optional<SplitQuantization> q) {
  NaiveCase c;
  c.cache = KvCache(1, c.heads, c.d, 16, q);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t s = 0; s < c.n; ++s)
    for (int64_t i = 0; i < c.heads * c.d; ++i) c.cache.key(0, s)[i] = 2.0f * dist(rng), c.cache.value(0, s)[i] = dist(rng);
  // The last token is the new one: written and quantized, not yet committed (attend_new_tokens' contract).
  c.cache.quantize_new_rows(0, c.n);
  c.cache.commit(c.n - 1);
  for (int64_t i = 0; i < c.d; ++i) c.query.push_back(dist(rng));
  return c;
}

// Double-precision attention of head 1 over keys/values given by the accessors, reading only
// the values of `rows` (all when empty), optionally renormalized.
template <typename Key, typename Value>
std::vector<double> naive_attention(const NaiveCase& c, Key key, Value value, size_t top_k, bool renorm) {
  std::vector<double> p(static_cast<size_t>(c.n));
  double mx = -1e300, sum = 0;
  for (int64_t j = 0; j < c.n; ++j) {
    double s = 0;
    for (int64_t i = 0; i < c.d; ++i) s += c.query[static_cast<size_t>(i)] * key(j, i);
    p[static_cast<size_t>(j)] = s / std::sqrt(static_cast<double>(c.d));
    mx = std::max(mx, p[static_cast<size_t>(j)]);
  }
  for (double& x : p) sum += (x = std::exp(x - mx));
  for (double& x : p) x /= sum;
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  order.resize(std::min(top_k, order.size()));
  double kept = 0;
  for (size_t j : order) kept += p[j];
  std::vector<double> out(static_cast<size_t>(c.d), 0.0);
  for (size_t j : order)
    for (int64_t i = 0; i < c.d; ++i) out[static_cast<size_t>(i)] += (renorm ? p[j] / kept : p[j]) * value(static_cast<int64_t>(j), i);
  return out;
}

// The new token's query (the same for both heads) in the generation stage; head 1's output.
std::vector<float> run_attention(const NaiveCase& c, GenerationPolicy&& policy, KvTraffic& traffic) {
  std::vector<float> queries(c.query), context(static_cast<size_t>(c.heads * c.d));
  queries.insert(queries.end(), c.query.begin(), c.query.end());
  attend_new_tokens(c.cache, 0, {queries.data(), c.heads * c.d}, 1, c.heads, policy, DecodeStage::Generation, context.data(),
                    c.heads * c.d, traffic);
  return {context.begin() + c.d, context.end()};
}

void expect_near(const std::vector<float>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-5) << what << " element " << i;
}

TEST(GenerationPolicies, LocalValuePruningMatchesNaiveTopK) {
  NaiveCase c = make_cache(std::nullopt);
  auto key = [&](int64_t j, int64_t i) { return static_cast<double>(c.cache.key(0, j)[c.d + i]); };
  auto value = [&](int64_t j, int64_t i) { return static_cast<double>(c.cache.value(0, j)[c.d + i]); };
  for (int k : {1, 3, 7, 11, 50})
    for (bool renorm : {false, true}) {
      KvTraffic traffic;
      const auto got = run_attention(c, LocalValuePruner(k, renorm), traffic);
      expect_near(got, naive_attention(c, key, value, static_cast<size_t>(k), renorm), "k=" + std::to_string(k));
      EXPECT_DOUBLE_EQ(traffic.value_bytes, c.heads * std::min<int64_t>(k, c.n) * c.d * 4.0);  // both heads alike
    }
}

TEST(GenerationPolicies, ProgressiveQuantizationMatchesNaiveDequantization) {
  const SplitQuantization q{4, 4};
  NaiveCase c = make_cache(q);
  auto code_value = [&](const int16_t* codes, float scale, int64_t i, bool msb_only) {
    const int code = codes[c.d + i];
    if (!msb_only) return static_cast<double>(code) * scale;
    const int msb = static_cast<int>(std::floor(code / 16.0));
    return (msb * 16 + 8) * static_cast<double>(scale);
  };
  auto value = [&](int64_t j, int64_t i) { return code_value(c.cache.value_codes(0, j), c.cache.value_scale(0, j, 1), i, false); };
  for (double threshold : {0.0, 1.0}) {
    const bool msb_only = threshold == 0.0;
    auto key = [&](int64_t j, int64_t i) { return code_value(c.cache.key_codes(0, j), c.cache.key_scale(0, j, 1), i, msb_only); };
    KvTraffic traffic;
    const auto got = run_attention(c, ProgressiveQuantization(q, threshold), traffic);
    expect_near(got, naive_attention(c, key, value, 1000, false), "threshold " + std::to_string(threshold));
    EXPECT_EQ(traffic.lsb_refetches, msb_only ? 0 : c.heads);  // both heads alike
    EXPECT_DOUBLE_EQ(traffic.key_bits, c.heads * c.n * c.d * (msb_only ? 4.0 : 8.0));
  }
  // The decision follows the max probability of the MSB pass.
  const ProgressiveQuantization policy(q, 0.5);
  EXPECT_TRUE(policy.needs_key_lsbs(std::vector<float>{0.3f, 0.3f, 0.4f}));
  EXPECT_FALSE(policy.needs_key_lsbs(std::vector<float>{0.6f, 0.4f}));
}

// Rotated, grouped, full-range codes (not SpAtten's; llama.cpp's q4_0 blocks after a Hadamard
// rotation): the reference dequantizes each code group with its own scale, rotates the row back to
// the model's coordinates and attends there in double precision.
TEST(GenerationPolicies, RotatedGroupedQuantizationMatchesNaiveDequantization) {
  const SplitQuantization q{2, 2, /*rotate=*/true, /*group=*/4, /*full_range=*/true};
  NaiveCase c = make_cache(q);
  ASSERT_EQ(c.cache.scale_groups(), 2);
  auto row = [&](const int16_t* codes, auto scale_of, int64_t i, bool msb_only) {
    std::vector<float> x(static_cast<size_t>(c.d));
    for (int64_t e = 0; e < c.d; ++e) {
      const int code = codes[c.d + e];
      const double code_value = msb_only ? std::floor(code / 4.0) * 4 + 2 : code;
      x[static_cast<size_t>(e)] = static_cast<float>(code_value * scale_of(static_cast<int>(e / 4)));
    }
    inverse_hadamard_rotate(x.data(), c.d);
    return static_cast<double>(x[static_cast<size_t>(i)]);
  };
  auto value = [&](int64_t j, int64_t i) {
    return row(c.cache.value_codes(0, j), [&](int g) { return c.cache.value_scale(0, j, 1, g); }, i, false);
  };
  for (double threshold : {0.0, 1.0}) {
    const bool msb_only = threshold == 0.0;
    auto key = [&](int64_t j, int64_t i) {
      return row(c.cache.key_codes(0, j), [&](int g) { return c.cache.key_scale(0, j, 1, g); }, i, msb_only);
    };
    KvTraffic traffic;
    const auto got = run_attention(c, ProgressiveQuantization(q, threshold), traffic);
    expect_near(got, naive_attention(c, key, value, 1000, false), "threshold " + std::to_string(threshold));
    // Two fp16 scales per row of 8: (8 x bits / 8 + 2 x 2) bytes per key row, for each of the 2 heads.
    EXPECT_DOUBLE_EQ(traffic.key_bytes, c.heads * c.n * (c.d * (msb_only ? 2.0 : 4.0) / 8.0 + 4.0));
    EXPECT_DOUBLE_EQ(traffic.value_bytes, c.heads * c.n * (c.d * 4.0 / 8.0 + 4.0));
  }
  // The fp32 rows stay as written: the prompt stage reads them.
  NaiveCase plain = make_cache(std::nullopt);
  for (int64_t j = 0; j < c.n; ++j)
    for (int64_t i = 0; i < c.heads * c.d; ++i) EXPECT_EQ(c.cache.key(0, j)[i], plain.cache.key(0, j)[i]);
  // Head dimensions the options cannot serve are refused when the cache is made.
  EXPECT_THROW(KvCache(1, 1, 12, 4, SplitQuantization{4, 0, true}), Error);
  EXPECT_THROW(KvCache(1, 1, 8, 4, SplitQuantization{4, 0, false, 3}), Error);
}

// Grouped-query attention over a long quantized cache (3 query heads per KV head, 64-wide heads,
// rows in several threaded blocks), every query head against the naive dequantized reference.
TEST(GenerationPolicies, GroupedQueriesOverLongQuantizedCacheMatchNaive) {
  const int kv_heads = 2, group = 3, query_heads = kv_heads * group;
  const int64_t d = 64, n = 700;
  SplitQuantization normal{4, 0, true, 32};
  normal.normal_levels = true;
  SplitQuantization sinks = normal;
  sinks.sink_tokens = 5;
  for (const SplitQuantization q : {SplitQuantization{4, 0, true, 32, true}, SplitQuantization{6, 2}, normal, sinks}) {
    KvCache cache(1, kv_heads, d, n, q);
    std::mt19937 rng(9);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t s = 0; s < n; ++s)
      for (int64_t i = 0; i < kv_heads * d; ++i) cache.key(0, s)[i] = 2.0f * dist(rng), cache.value(0, s)[i] = dist(rng);
    cache.quantize_new_rows(0, n);
    cache.commit(n - 1);
    std::vector<float> queries(static_cast<size_t>(query_heads * d)), context(queries.size());
    for (float& x : queries) x = 0.5f * dist(rng);
    KvTraffic traffic;
    auto policy = parse_generation_spec(q.sink_tokens     ? "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,levels=normal,sinks=5"
                                        : q.normal_levels ? "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,levels=normal"
                                        : q.rotate        ? "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,fullrange=1"
                                                          : "progressive:msb=6,lsb=2,threshold=0");
    ASSERT_EQ(policy->kv_quantization()->normal_levels, q.normal_levels);
    ASSERT_EQ(policy->kv_quantization()->sink_tokens, q.sink_tokens);
    attend_new_tokens(cache, 0, {queries.data(), query_heads * d}, 1, query_heads, *policy, DecodeStage::Generation,
                      context.data(), query_heads * d, traffic);
    // Dequantized rows in the model's coordinates (MSBs only for keys: threshold 0).
    const int64_t scale_group = d / cache.scale_groups();
    auto row = [&](const int16_t* codes, auto scale_of, bool msb_only) {
      std::vector<float> x(static_cast<size_t>(d));
      for (int64_t e = 0; e < d; ++e) {
        const float code = msb_only ? q.msb_value(codes[e], 1.0f) : static_cast<float>(codes[e]);
        x[static_cast<size_t>(e)] = code * scale_of(static_cast<int>(e / scale_group));
      }
      if (q.rotate) inverse_hadamard_rotate(x.data(), d);
      return x;
    };
    for (int h = 0; h < query_heads; ++h) {
      const int g = h / group;
      std::vector<double> scores(static_cast<size_t>(n)), out(static_cast<size_t>(d), 0.0);
      double top = -1e300, sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        const auto key = row(cache.key_codes(0, j) + g * d, [&](int s) { return cache.key_scale(0, j, g, s); }, true);
        double dot = 0;
        for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(queries[static_cast<size_t>(h * d + i)]) * key[static_cast<size_t>(i)];
        scores[static_cast<size_t>(j)] = dot / 8.0;
        top = std::max(top, scores[static_cast<size_t>(j)]);
      }
      for (double& x : scores) sum += (x = std::exp(x - top));
      for (int64_t j = 0; j < n; ++j) {
        const auto value = row(cache.value_codes(0, j) + g * d, [&](int s) { return cache.value_scale(0, j, g, s); }, false);
        for (int64_t i = 0; i < d; ++i) out[static_cast<size_t>(i)] += scores[static_cast<size_t>(j)] / sum * value[static_cast<size_t>(i)];
      }
      for (int64_t i = 0; i < d; ++i)
        EXPECT_NEAR(context[static_cast<size_t>(h * d + i)], out[static_cast<size_t>(i)], 2e-5) << "head " << h << " element " << i;
    }
    if (q.normal_levels) {
      // Every key and value row read once per KV head: 4-bit codes and two fp16 scales per row; sink
      // rows (the first 5 positions) at 16 bits, and close to the fp32 rows they came from.
      const double row_bytes = d * 4.0 / 8.0 + 2 * 2.0, sink_extra = q.sink_tokens * d * 12.0 / 8.0;
      EXPECT_DOUBLE_EQ(traffic.key_bytes, kv_heads * (n * row_bytes + sink_extra));
      EXPECT_DOUBLE_EQ(traffic.value_bytes, kv_heads * (n * row_bytes + sink_extra));
      EXPECT_EQ(cache.sink_slots(n), q.sink_tokens);
      for (int64_t j = 0; j < 8; ++j) {
        std::vector<float> key(static_cast<size_t>(d));
        for (int64_t e = 0; e < d; ++e) key[static_cast<size_t>(e)] = cache.key_codes(0, j)[e] * cache.key_scale(0, j, 0, static_cast<int>(e / 32));
        inverse_hadamard_rotate(key.data(), d);
        double worst = 0;
        for (int64_t e = 0; e < d; ++e) worst = std::max(worst, static_cast<double>(std::abs(key[static_cast<size_t>(e)] - cache.key(0, j)[e])));
        if (j < q.sink_tokens) EXPECT_LT(worst, 2e-3) << "sink row " << j;
        else EXPECT_GT(worst, 2e-2) << "4-bit row " << j;
      }
    }
  }
}

// wider=: the listed layers' codes get one more bit (finer codes, counted at that width); a layer
// the model does not have is refused when the cache is made.
TEST(GenerationPolicies, WiderLayersStoreAndCountOneMoreBit) {
  const auto format = parse_generation_spec("progressive:msb=4,lsb=0,threshold=0,group=8,levels=normal,wider=1")->kv_quantization();
  ASSERT_TRUE(format.has_value());
  EXPECT_EQ(format->for_layer(0).msb_bits, 4);
  EXPECT_EQ(format->for_layer(1).msb_bits, 5);
  EXPECT_EQ(format->for_layer(7).msb_bits, 4);
  const int64_t d = 16, n = 40;
  KvCache cache(2, 1, d, n, format);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int layer = 0; layer < 2; ++layer)
    for (int64_t s = 0; s < n; ++s)
      for (int64_t i = 0; i < d; ++i) cache.key(layer, s)[i] = cache.value(layer, s)[i] = dist(rng);
  for (int layer = 0; layer < 2; ++layer) cache.quantize_new_rows(layer, n);
  cache.commit(n - 1);
  double error[2] = {0, 0};
  std::set<int16_t> levels[2];
  for (int layer = 0; layer < 2; ++layer)
    for (int64_t s = 0; s < n; ++s)
      for (int64_t i = 0; i < d; ++i) {
        const int16_t code = cache.key_codes(layer, s)[i];
        levels[layer].insert(code);
        const double e = code * cache.key_scale(layer, s, 0, static_cast<int>(i / 8)) - cache.key(layer, s)[i];
        error[layer] += e * e;
      }
  EXPECT_LE(levels[0].size(), 16u);
  EXPECT_GT(levels[1].size(), 16u);
  EXPECT_LE(levels[1].size(), 32u);
  EXPECT_LT(error[1], 0.5 * error[0]);
  auto policy = parse_generation_spec("progressive:msb=4,lsb=0,threshold=0,group=8,levels=normal,wider=1");
  for (int layer = 0; layer < 2; ++layer) {
    std::vector<float> query(static_cast<size_t>(d), 0.1f), context(static_cast<size_t>(d));
    KvTraffic traffic;
    attend_new_tokens(cache, layer, {query.data(), d}, 1, 1, *policy, DecodeStage::Generation, context.data(), d, traffic);
    const double row_bytes = d * (4.0 + layer) / 8.0 + 2 * 2.0;
    EXPECT_DOUBLE_EQ(traffic.key_bytes, n * row_bytes) << layer;
    EXPECT_DOUBLE_EQ(traffic.value_bytes, n * row_bytes) << layer;
  }
  EXPECT_THROW(KvCache(1, 1, d, n, format), Error);  // layer 1 of a 1-layer model
  EXPECT_EQ(parse_generation_spec("progressive:msb=4,lsb=0,wider=0-2/5")->describe(),
            "progressive:msb=4,lsb=0,threshold=0.1,wider=0/1/2/5");
  for (const char* bad : {"progressive:wider=x", "progressive:wider=3-1", "progressive:msb=8,lsb=0,wider=0", "progressive:wider=-1"})
    EXPECT_THROW(parse_generation_spec(bad), Error) << bad;
}

// Sink slots: the positions below the count, committed or written, and they move with kv_prune.
TEST(GenerationPolicies, SinkSlotsFollowPositions) {
  SplitQuantization q{4, 0};
  q.sink_tokens = 3;
  KvCache cache(1, 1, 8, 16, q);
  EXPECT_EQ(cache.sink_slots(2), 2);  // nothing committed: written slots 0 and 1 are positions 0, 1
  cache.commit(2);
  EXPECT_EQ(cache.sink_slots(3), 3);
  EXPECT_EQ(cache.sink_slots(5), 3);
  cache.commit(4);                                   // positions 0..5
  cache.keep_slots(std::vector<int32_t>{0, 2, 4, 5});  // positions 0, 2, 4, 5
  EXPECT_EQ(cache.sink_slots(4), 2);
  EXPECT_EQ(cache.sink_slots(1), 1);
  EXPECT_EQ(KvCache(1, 1, 8, 4, SplitQuantization{4, 0}).sink_slots(4), 0);
}

// levels=normal: the table is a Lloyd-Max quantizer of its own training distribution (each level
// the mean of the values nearest to it, checked here on fresh samples), each value gets its
// nearest level, the value of largest magnitude is exact, and on Gaussian groups the squared error
// is below q4_0's evenly spaced levels at the same bits.
TEST(GenerationPolicies, NormalLevelsAreLloydMaxAndBeatUniformLevelsOnGaussianGroups) {
  const int64_t group = 32;
  const std::vector<int16_t>& grid = normal_level_grid(4, group);
  ASSERT_EQ(grid.size(), 16u);
  EXPECT_EQ(grid.front(), -kNormalLevelGrid);
  for (size_t k = 1; k < grid.size(); ++k) EXPECT_LT(grid[k - 1], grid[k]);
  EXPECT_LE(grid.back(), kNormalLevelGrid);
  EXPECT_EQ(&normal_level_grid(4, group), &grid);  // fit once
  EXPECT_THROW(normal_level_grid(1, group), Error);
  EXPECT_THROW(normal_level_grid(4, 0), Error);

  SplitQuantization normal{4, 0, false, group};
  normal.normal_levels = true;
  const SplitQuantization uniform{4, 0, false, group, /*full_range=*/true};
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(group));
  std::vector<int16_t> codes(x.size());
  std::vector<double> level_sum(grid.size(), 0.0), level_count(grid.size(), 0.0);
  double normal_error = 0, uniform_error = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    for (float& v : x) v = 0.3f * dist(rng);
    size_t largest = 0;
    for (size_t i = 0; i < x.size(); ++i)
      if (std::abs(x[i]) > std::abs(x[largest])) largest = i;
    const float scale = normal.quantize(x.data(), group, codes.data());
    const float unit = scale * kNormalLevelGrid;
    EXPECT_EQ(unit, round_to_f16(-x[largest]));  // an fp16 scale: -largest
    EXPECT_EQ(codes[largest], -kNormalLevelGrid);
    for (size_t i = 0; i < x.size(); ++i) {
      const auto at = std::find(grid.begin(), grid.end(), codes[i]);
      ASSERT_NE(at, grid.end());
      const double y = x[i] / static_cast<double>(unit) * kNormalLevelGrid;
      for (int16_t other : grid) ASSERT_LE(std::abs(y - *at), std::abs(y - other) + 1e-3) << "not the nearest level";
      if (i != largest) {
        level_sum[static_cast<size_t>(at - grid.begin())] += y;
        level_count[static_cast<size_t>(at - grid.begin())] += 1;
      }
      const double error = SplitQuantization::full_value(codes[i], scale) - x[i];
      normal_error += error * error;
    }
    const float uniform_scale = uniform.quantize(x.data(), group, codes.data());
    for (size_t i = 0; i < x.size(); ++i) {
      const double error = SplitQuantization::full_value(codes[i], uniform_scale) - x[i];
      uniform_error += error * error;
    }
  }
  // Lloyd-Max: every inner level is (close to) the mean of the fresh values it took.
  for (size_t k = 1; k < grid.size(); ++k) {
    ASSERT_GT(level_count[k], 100.0) << k;
    EXPECT_NEAR(level_sum[k] / level_count[k], grid[k], 0.01 * kNormalLevelGrid) << "level " << k;
  }
  EXPECT_LT(normal_error, 0.95 * uniform_error);
}

TEST(GenerationPolicies, HadamardRotationIsTheSignedSylvesterMatrix) {
  const int64_t n = 16;
  // Column i of the rotation is sign(i) x column i of the Sylvester-Hadamard matrix, whose entry
  // (j, i) is (-1)^popcount(i & j) / sqrt(n).
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> e(static_cast<size_t>(n), 0.0f);
    e[static_cast<size_t>(i)] = 1.0f;
    hadamard_rotate(e.data(), n);
    const float sign = e[0] > 0 ? 1.0f : -1.0f;
    for (int64_t j = 0; j < n; ++j) {
      const float sylvester = (std::popcount(static_cast<uint64_t>(i & j)) % 2 ? -1.0f : 1.0f) / 4.0f;
      EXPECT_FLOAT_EQ(e[static_cast<size_t>(j)], sign * sylvester) << i << "," << j;
    }
  }
  // Orthogonal (dot products kept) and undone by its inverse.
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> a(64), b(64);
  for (size_t i = 0; i < 64; ++i) a[i] = dist(rng), b[i] = dist(rng);
  std::vector<float> ra = a, rb = b;
  hadamard_rotate(ra.data(), 64);
  hadamard_rotate(rb.data(), 64);
  double before = 0, after = 0;
  for (size_t i = 0; i < 64; ++i) before += a[i] * b[i], after += ra[i] * rb[i];
  EXPECT_NEAR(after, before, 1e-4);
  inverse_hadamard_rotate(ra.data(), 64);
  for (size_t i = 0; i < 64; ++i) EXPECT_NEAR(ra[i], a[i], 1e-5);
}

TEST(GenerationPolicies, FullRangeCodesByHand) {
  const float x[4] = {1.0f, -2.2f, 0.5f, 4.0f};
  int16_t codes[4];
  // q4_0's rule: the largest magnitude (4) becomes code -8, so the scale is 4 / -8 = -0.5.
  const SplitQuantization full{4, 0, false, 4, true};
  EXPECT_EQ(full.quantize(x, 4, codes), -0.5f);
  EXPECT_EQ(std::vector<int16_t>(codes, codes + 4), (std::vector<int16_t>{-2, 4, -1, -8}));
  // Symmetric (SpAtten's): scale 4 / 7, codes round(x * 7 / 4).
  const SplitQuantization symmetric{4, 0};
  EXPECT_FLOAT_EQ(symmetric.quantize(x, 4, codes), 4.0f / 7.0f);
  EXPECT_EQ(std::vector<int16_t>(codes, codes + 4), (std::vector<int16_t>{2, -4, 1, 7}));
  // A group's scale is stored in fp16; one too small for fp16 leaves zero codes, not a division by 0.
  const float tiny[2] = {1e-12f, -1e-12f};
  EXPECT_EQ(full.quantize(tiny, 2, codes), 0.0f);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 0);
  const float third[1] = {1.0f / 3.0f};
  const float scale = full.quantize(third, 1, codes);
  EXPECT_EQ(scale, round_to_f16(scale));
}

TEST(GenerationPolicies, SplitQuantizationReconstructsFromMsbAndLsb) {
  for (const SplitQuantization q : {SplitQuantization{4, 4}, SplitQuantization{2, 6}, SplitQuantization{8, 0}, SplitQuantization{8, 8}}) {
    std::mt19937 rng(q.msb_bits * 31 + q.lsb_bits);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    std::vector<float> x(64);
    for (float& v : x) v = dist(rng);
    std::vector<int16_t> codes(64);
    const float scale = q.quantize(x.data(), 64, codes.data());
    const float max_abs = std::abs(*std::max_element(x.begin(), x.end(), [](float a, float b) { return std::abs(a) < std::abs(b); }));
    EXPECT_FLOAT_EQ(scale * static_cast<float>(q.max_code()), max_abs);
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_LE(std::abs(codes[i]), q.max_code());
      EXPECT_LE(std::abs(SplitQuantization::full_value(codes[i], scale) - x[i]), 0.5f * scale * 1.0001f);
      // code = (msb << lsb) + lsb with 0 <= lsb < 2^lsb_bits.
      const int msb = codes[i] >> q.lsb_bits, lsb = codes[i] - msb * (1 << q.lsb_bits);
      EXPECT_GE(lsb, 0);
      EXPECT_LT(lsb, 1 << q.lsb_bits);
      EXPECT_EQ(msb * (1 << q.lsb_bits) + lsb, codes[i]);
      // The MSB-only value is the middle of the LSB range: off by at most half of it.
      const float half_range = q.lsb_bits ? static_cast<float>(1 << (q.lsb_bits - 1)) * scale : 0.0f;
      EXPECT_LE(std::abs(q.msb_value(codes[i], scale) - SplitQuantization::full_value(codes[i], scale)), half_range * 1.0001f + 1e-7f);
    }
  }
}

TEST(GenerationPolicies, KvPrunerKeepsTheNaiveTopKOfAccumulatedImportance) {
  KvCache cache(1, 1, 4, 32, std::nullopt);
  cache.commit(20);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(0.0f, 1.0f);
  std::vector<double> total(20, 0.0);
  KvCachePruner pruner(0.3, 2);
  for (int observation = 0; observation < 6; ++observation) {
    std::vector<float> p(static_cast<size_t>(observation < 3 ? 15 : 20));  // slots join over time
    for (size_t j = 0; j < p.size(); ++j) total[j] += (p[j] = dist(rng));
    pruner.observe_attention(p);
  }
  std::vector<int32_t> keep(20);
  std::iota(keep.begin(), keep.end(), 0);
  pruner.choose_cached(cache, keep);
  // Naive: the 2 newest, then the top ceil(0.3 * 20) - 2 = 4 of the rest by total importance.
  std::vector<int32_t> order(18);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return total[static_cast<size_t>(a)] > total[static_cast<size_t>(b)]; });
  std::vector<int32_t> expected(order.begin(), order.begin() + 4);
  std::sort(expected.begin(), expected.end());
  expected.push_back(18);
  expected.push_back(19);
  EXPECT_EQ(keep, expected);
  ASSERT_EQ(pruner.importance().size(), 6u);  // realigned with the slots that stay
  for (size_t i = 0; i < keep.size(); ++i)
    EXPECT_NEAR(pruner.importance()[i], total[static_cast<size_t>(keep[i])], 1e-5);
}

TEST(GenerationPolicies, SpecStrings) {
  EXPECT_EQ(parse_generation_spec("dense")->describe(), "dense");
  EXPECT_TRUE(parse_generation_spec("dense")->empty());
  EXPECT_EQ(parse_generation_spec("kv_prune:keep=0.5+value_prune:k=16+progressive:msb=4,lsb=4,threshold=0.1")->describe(),
            "kv_prune:keep=0.5,recent=1+value_prune:k=16+progressive:msb=4,lsb=4,threshold=0.1");
  EXPECT_EQ(parse_generation_spec("progressive")->describe(), "progressive:msb=4,lsb=4,threshold=0.1");
  EXPECT_TRUE(parse_generation_spec("progressive:msb=6,lsb=2")->kv_quantization().has_value());
  EXPECT_EQ(parse_generation_spec("progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,fullrange=1")->describe(),
            "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,fullrange=1");
  const auto format = parse_generation_spec("progressive:rotate=1,group=32,fullrange=1")->kv_quantization();
  ASSERT_TRUE(format.has_value());
  EXPECT_TRUE(format->rotate && format->full_range);
  EXPECT_EQ(format->group, 32);
  EXPECT_EQ(parse_generation_spec("progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,levels=normal")->describe(),
            "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,levels=normal");
  EXPECT_FALSE(parse_generation_spec("progressive:msb=4,lsb=0,levels=uniform")->kv_quantization()->normal_levels);
  EXPECT_EQ(parse_generation_spec("progressive:msb=4,lsb=0,sinks=4")->describe(), "progressive:msb=4,lsb=0,threshold=0.1,sinks=4");
  for (const char* bad : {"", "foo", "dense+", "kv_prune", "kv_prune:keep=0", "kv_prune:keep=1.5", "kv_prune:keep=x",
                          "kv_prune:keep=0.5,recent=-1", "value_prune", "value_prune:k=0", "value_prune:k=2.5",
                          "value_prune:k=3,renorm=2", "value_prune:k=3,x=1", "progressive:msb=9", "progressive:msb=0",
                          "progressive:lsb=-1", "progressive:threshold=2", "progressive:threshold", "spatten:tokens=0.5",
                          "progressive:rotate=2", "progressive:group=-1", "progressive:fullrange=yes", "progressive:msb=4,lsb=0,levels=nf4",
                          "progressive:msb=4,lsb=2,levels=normal", "progressive:msb=4,lsb=0,fullrange=1,levels=normal", "progressive:sinks=-1",
                          "kv_prune:keep=0.5+kv_prune:keep=0.3", "value_prune:k=3,k=4"}) {
    EXPECT_THROW(parse_generation_spec(bad), Error) << bad;
  }
}

TEST(Sampling, GreedyTopKAndSeeds) {
  std::vector<float> logits{0.1f, 2.0f, 1.9f, -1.0f, 2.0f};
  EXPECT_EQ(TokenSampler({}).next(logits), 1);  // the earliest maximum
  TokenSampler top1({.temperature = 1.0, .top_k = 1, .seed = 4});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(top1.next(logits), 1);
  TokenSampler a({.temperature = 1.0, .seed = 9}), b({.temperature = 1.0, .seed = 9});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.next(logits), b.next(logits));
  TokenSampler nucleus({.temperature = 1.0, .top_p = 0.3, .seed = 1});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(nucleus.next(logits), 1);  // 1 alone has p >= 0.3
  EXPECT_THROW(TokenSampler({.temperature = -1.0}), Error);
  EXPECT_THROW(TokenSampler({.top_k = -1}), Error);
  EXPECT_THROW(TokenSampler({.top_p = 0.0}), Error);
}

// ---------------------------------------------------------------------------------------------
// Against transformers on the random GPT-2 with the real vocabulary.

class Gpt2Reference : public ::testing::Test {
 protected:
  void SetUp() override {
    SIEVE_REQUIRE_FILE(testing::gpt2_model_dir() / "reference.json");
    if (!model_) {
      reference_ = new json(testing::load_gpt2_reference());
      model_ = new Gpt2Decoder(Gpt2Decoder::load(testing::gpt2_model_dir()));
    }
  }
  std::vector<int32_t> greedy(const std::string& spec, const std::vector<int32_t>& ids, size_t tokens) {
    auto policy = parse_generation_spec(spec);
    DecodingSession session(*model_, *policy);
    std::vector<float> logits = session.prefill(ids);
    std::vector<int32_t> out;
    while (out.size() < tokens) {
      out.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
      if (out.size() < tokens) logits = session.step(out.back());
    }
    return out;
  }
  static inline json* reference_ = nullptr;  // loaded once for the suite; lives until exit
  static inline Gpt2Decoder* model_ = nullptr;
};

TEST_F(Gpt2Reference, LogitsMatchTransformers) {
  auto dense = parse_generation_spec("dense");
  float max_error = 0.0f;
  for (const json& r : reference_->at("logits")) {
    const auto ids = r.at("ids").get<std::vector<int32_t>>();
    Tensor all;
    DecodingSession session(*model_, *dense);
    session.prefill(ids, &all);
    const auto positions = r.at("positions").get<std::vector<int64_t>>();
    for (size_t i = 0; i < positions.size(); ++i) {
      const auto want = r.at("logits").at(i).get<std::vector<float>>();
      ASSERT_EQ(static_cast<int64_t>(want.size()), all.dim(1));
      for (size_t v = 0; v < want.size(); ++v) max_error = std::max(max_error, std::abs(all.row(positions[i])[v] - want[v]));
    }
  }
  EXPECT_LT(max_error, 1e-3f);
  std::printf("GPT-2 logits vs transformers: max abs error %.3g\n", static_cast<double>(max_error));
}

TEST_F(Gpt2Reference, GreedyGenerationMatchesTransformers) {
  for (const json& r : reference_->at("greedy")) {
    const auto want = r.at("generated").get<std::vector<int32_t>>();
    const auto ids = r.at("prompt_ids").get<std::vector<int32_t>>();
    EXPECT_EQ(greedy("dense", ids, want.size()), want) << r.at("text");
    // Policies that lose nothing follow it too.
    EXPECT_EQ(greedy("kv_prune:keep=1+value_prune:k=128", ids, want.size()), want);
    EXPECT_EQ(greedy("progressive:msb=8,lsb=8,threshold=1", ids, want.size()), want);
  }
}

// ---------------------------------------------------------------------------------------------
// The CLI.

// The CLI under a 120 s limit (a generation on the reference model takes a few seconds).
testing::CliResult run_sieve(const std::string& args, bool with_stderr = true) {
  return testing::run_cli(args, 120, with_stderr);
}

TEST(Gpt2Cli, EmptyPromptAndUnknownOptionFailCleanly) {
  const testing::CliResult empty = run_sieve("generate --model /nonexistent ''");
  EXPECT_EQ(empty.code, 1) << empty.output;
  EXPECT_NE(empty.output.find("empty prompt"), std::string::npos) << empty.output;
  const testing::CliResult unknown = run_sieve("generate --model /nonexistent --frobnicate hi");
  EXPECT_EQ(unknown.code, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("frobnicate"), std::string::npos) << unknown.output;
  const testing::CliResult policy = run_sieve("generate --model /nonexistent --policy kv_prune:keep=2 hi");
  EXPECT_EQ(policy.code, 1) << policy.output;
  EXPECT_NE(policy.output.find("keep=2"), std::string::npos) << policy.output;
  for (const char* cmd : {"generate --help", "perplexity --help"}) EXPECT_EQ(run_sieve(cmd).code, 0) << cmd;
}

TEST(Gpt2Cli, GenerateStreamsTheGreedyContinuation) {
  SIEVE_REQUIRE_FILE(testing::gpt2_model_dir() / "reference.json");
  const json reference = testing::load_gpt2_reference();
  const json& first = reference.at("greedy").at(0);
  const ByteLevelBpe tokenizer = ByteLevelBpe::from_model_dir(testing::gpt2_model_dir());
  const auto generated = first.at("generated").get<std::vector<int32_t>>();
  const testing::CliResult r = run_sieve("generate --threads 1 --model '" + testing::gpt2_model_dir().string() + "' -n " +
                                 std::to_string(generated.size()) + " '" + first.at("text").get<std::string>() + "'",
                             false);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.output, tokenizer.decode(generated) + "\n");
}

TEST(Gpt2Cli, PerplexityWritesOneResultPerPolicy) {
  SIEVE_REQUIRE_FILE(testing::gpt2_model_dir() / "reference.json");
  const fs::path dir = fs::temp_directory_path() / ("sieve-ppl-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "text.txt") << "The history of computing is a story of abstraction layered upon abstraction. "
                                     "Early machines were programmed by rewiring panels, then by punching cards.\n";
  const testing::CliResult r = run_sieve("perplexity --threads 1 --model '" + testing::gpt2_model_dir().string() + "' --data '" +
                             (dir / "text.txt").string() + "' --window 16 --stride 8 --policy kv_prune:keep=0.5 "
                             "--policy value_prune:k=4 --json '" + (dir / "out.json").string() + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(dir / "out.json");
  const json out = json::parse(in);
  ASSERT_EQ(out.at("results").size(), 3u);
  EXPECT_EQ(out.at("results").at(0).at("policy"), "dense");
  EXPECT_DOUBLE_EQ(out.at("results").at(0).at("kv_bytes_vs_dense").get<double>(), 1.0);
  EXPECT_LT(out.at("results").at(1).at("kv_bytes_per_token").get<double>(), out.at("results").at(0).at("kv_bytes_per_token").get<double>());
  EXPECT_GT(out.at("results").at(2).at("perplexity").get<double>(), 1.0);
  fs::remove_all(dir);
  EXPECT_NE(run_sieve("perplexity --model '" + testing::gpt2_model_dir().string() + "' --data /nonexistent").code, 0);
}

}  // namespace
}  // namespace sieve
