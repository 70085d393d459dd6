// Early exit: the entropy formula by hand, tau = 0 equals dense exactly, the light and block exit
// heads against independent computations, batched exits against one-at-a-time, bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include <algorithm>
#include <set>

#include "model/bert_encoder.h"
#include "model/exit_heads.h"
#include "util/error.h"
#include "policies/early_exit.h"
#include "policies/policy_spec.h"
#include "reference_data.h"
#include "tiny_bert.h"
#include <nlohmann/json.hpp>

namespace sieve {
namespace {

using testing::TinyBertShape;

TEST(NormalizedEntropy, HandComputedValues) {
  const std::vector<float> uniform2{0.0f, 0.0f}, uniform3{1.5f, 1.5f, 1.5f};
  EXPECT_NEAR(normalized_entropy(uniform2), 1.0, 1e-12);
  EXPECT_NEAR(normalized_entropy(uniform3), 1.0, 1e-12);
  // p = (0.75, 0.25): -(0.75 ln 0.75 + 0.25 ln 0.25) / ln 2 = 0.811278124459...
  const std::vector<float> three_to_one{static_cast<float>(std::log(3.0)), 0.0f};
  EXPECT_NEAR(normalized_entropy(three_to_one), 0.8112781244591328, 1e-6);
  // p = (0.5, 0.25, 0.25): 1.5 ln 2 / ln 3 = 0.946394630357...
  const std::vector<float> half_quarter{static_cast<float>(std::log(2.0)), 0.0f, 0.0f};
  EXPECT_NEAR(normalized_entropy(half_quarter), 0.9463946303571863, 1e-6);
  const std::vector<float> certain{100.0f, -100.0f};
  EXPECT_LT(normalized_entropy(certain), 1e-80);
  EXPECT_GE(normalized_entropy(certain), 0.0);
  const std::vector<float> one{1.0f};
  EXPECT_THROW(normalized_entropy(one), Error);
}

class EarlyExitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_tiny_bert("exit", shape_);
    encoder_ = std::make_unique<BertEncoder>(BertEncoder::load(dir_));
    const auto file = SafetensorsFile::open(dir_ / "model.safetensors");
    for (const auto& n : file.names()) weights_.emplace(n, file.load_f32(n));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Exits after layers 0..L-2 with the model's own pooler and classifier; "block" exits are copies
  // of the model's last layer, so the block exit after layer L-2 recomputes exactly the last layer.
  ExitHeads write_exits(const std::string& variant) {
    const auto exits_dir = dir_ / ("exits-" + variant);
    std::filesystem::create_directories(exits_dir);
    std::vector<std::pair<std::string, const Tensor*>> list;
    std::vector<std::string> names;
    for (int l = 0; l + 1 < shape_.layers; ++l) {
      const std::string p = "exit." + std::to_string(l) + ".";
      for (const char* n : {"pooler.dense.weight", "pooler.dense.bias"})
        list.emplace_back(p + "pooler." + std::string(n).substr(13), &weights_.at(n));
      for (const char* n : {"classifier.weight", "classifier.bias"}) list.emplace_back(p + n, &weights_.at(n));
      if (variant == "block") {
        const std::string last = "encoder.layer." + std::to_string(shape_.layers - 1) + ".";
        for (const auto& [name, tensor] : weights_)
          if (name.rfind(last, 0) == 0) list.emplace_back(p + "block." + name.substr(last.size()), &tensor);
      }
    }
    write_safetensors(exits_dir / "exits.safetensors", list);
    std::ofstream(exits_dir / "exits.json")
        << R"({"format": "sieve-exits", "version": 1, "variant": ")" << variant << R"(", "num_labels": )" << shape_.labels
        << R"(, "hidden_size": )" << shape_.hidden << R"(, "layers": [0, 1], "block": {"num_attention_heads": )"
        << shape_.heads << R"(, "intermediate_size": )" << shape_.intermediate << R"(, "layer_norm_eps": 1e-12}})";
    return ExitHeads::load(exits_dir, encoder_->config());
  }

  std::vector<EncoderInput> inputs(size_t count) const {
    std::mt19937 rng(3);
    std::vector<EncoderInput> v;
    for (size_t i = 0; i < count; ++i) {
      EncoderInput in;
      in.ids.push_back(2);
      for (size_t t = 0; t < 3 + (i * 7) % 20; ++t) in.ids.push_back(5 + static_cast<int32_t>(rng() % 100));
      in.ids.push_back(3);
      v.push_back(std::move(in));
    }
    return v;
  }

  TinyBertShape shape_{.layers = 3, .hidden = 32, .heads = 4, .intermediate = 64, .vocab = 120, .positions = 64, .labels = 3};
  std::filesystem::path dir_;
  std::unique_ptr<BertEncoder> encoder_;
  std::map<std::string, Tensor> weights_;
};

TEST_F(EarlyExitTest, TauZeroIsExactlyDense) {
  for (const char* variant : {"light", "block"}) {
    const ExitHeads heads = write_exits(variant);
    auto policy = parse_policy_spec("exit:tau=0", encoder_->config(), &heads);
    const auto in = inputs(6);
    const auto dense = encoder_->forward(in);
    ForwardStats dense_stats, stats;
    encoder_->forward(in, {}, &dense_stats);
    const auto out = encoder_->forward(in, {policy.get()}, &stats);
    for (size_t i = 0; i < in.size(); ++i) {
      EXPECT_EQ(out[i].exit_layer, shape_.layers);
      EXPECT_EQ(encoder_->classify(out[i]), encoder_->classify(dense[i])) << variant;  // bit-identical
    }
    EXPECT_EQ(stats.flops, dense_stats.flops) << "tau = 0 must not even run the exits";
  }
}

TEST_F(EarlyExitTest, LightExitIsPoolerAndClassifierOnTheClsRow) {
  const ExitHeads heads = write_exits("light");
  auto policy = parse_policy_spec("exit:tau=1", encoder_->config(), &heads);  // everyone exits at once
  const auto in = inputs(4);
  ForwardStats stats;
  const auto out = encoder_->forward(in, {policy.get()}, &stats);
  const int H = shape_.hidden, N = shape_.labels;
  for (const auto& o : out) {
    ASSERT_EQ(o.exit_layer, 1);
    ASSERT_EQ(o.exit_logits.size(), static_cast<size_t>(N));
    std::vector<double> pooled(static_cast<size_t>(H));
    for (int r = 0; r < H; ++r) {
      double acc = weights_.at("pooler.dense.bias").data()[r];
      for (int c = 0; c < H; ++c) acc += static_cast<double>(weights_.at("pooler.dense.weight").data()[r * H + c]) * o.hidden.row(0)[c];
      pooled[static_cast<size_t>(r)] = std::tanh(acc);
    }
    for (int k = 0; k < N; ++k) {
      double acc = weights_.at("classifier.bias").data()[k];
      for (int c = 0; c < H; ++c) acc += weights_.at("classifier.weight").data()[k * H + c] * pooled[static_cast<size_t>(c)];
      EXPECT_NEAR(o.exit_logits[static_cast<size_t>(k)], acc, 1e-5);
      EXPECT_EQ(encoder_->classify(o)[static_cast<size_t>(k)], o.exit_logits[static_cast<size_t>(k)]);
    }
  }
  EXPECT_GT(stats.flops, 0.0);
}

TEST_F(EarlyExitTest, BlockExitComputingOnlyTheClsRowEqualsTheFullLayer) {
  // The block after layer L-2 is a copy of layer L-1, so its logits must equal the dense model's.
  const ExitHeads heads = write_exits("block");
  const auto in = inputs(5);
  const auto dense = encoder_->forward(in);
  auto stop_before_last = parse_policy_spec("exit:tau=1", encoder_->config(), &heads);
  // Run dense up to layer L-2 by exiting there: exits after layer 0 are skipped by asking directly.
  for (size_t i = 0; i < in.size(); ++i) {
    // The output of layer L-2 is what the engine returns for a 2-layer prefix: get it via a policy
    // that only exits at layer L-2.
    struct ExitAt : LayerPolicy {
      int at;
      explicit ExitAt(int a) : at(a) {}
      std::string describe() const override { return "exit-at"; }
      void after_layer(const LayerOutputView& v, ExitDecision& d) override {
        if (v.layer == at) std::fill(d.exit_now.begin(), d.exit_now.end(), 1);
      }
    } exit_at(shape_.layers - 2);
    const auto prefix = encoder_->forward(std::span(&in[i], 1), {&exit_at});
    double flops = 0.0;
    const auto logits = heads.logits(shape_.layers - 2, prefix[0].hidden.data(), prefix[0].hidden.dim(0), &flops);
    const auto expected = encoder_->classify(dense[i]);
    for (size_t k = 0; k < expected.size(); ++k) EXPECT_NEAR(logits[k], expected[k], 1e-4) << "input " << i;
    // Only the [CLS] row's Q/attention/FFN: far less than a full layer on n rows.
    const double n = static_cast<double>(prefix[0].hidden.dim(0)), H = shape_.hidden, I = shape_.intermediate;
    EXPECT_LT(flops, 2.0 * n * (4 * H * H + 2 * H * I));
  }
  (void)stop_before_last;
}

TEST_F(EarlyExitTest, BatchedExitsMatchOneAtATime) {
  const ExitHeads heads = write_exits("block");
  const auto in = inputs(12);
  // Pick tau at the median entropy of the first exit, so the batch splits.
  std::vector<double> u;
  for (const auto& x : in) {
    struct ExitAt0 : LayerPolicy {
      std::string describe() const override { return "exit-0"; }
      void after_layer(const LayerOutputView&, ExitDecision& d) override { std::fill(d.exit_now.begin(), d.exit_now.end(), 1); }
    } at0;
    const auto o = encoder_->forward(std::span(&x, 1), {&at0});
    double f = 0;
    u.push_back(normalized_entropy(heads.logits(0, o[0].hidden.data(), o[0].hidden.dim(0), &f)));
  }
  std::vector<double> sorted = u;
  std::sort(sorted.begin(), sorted.end());
  const double tau = (sorted[5] + sorted[6]) / 2;
  EarlyExitPolicy policy(heads, tau);
  const auto batched = encoder_->forward(in, {&policy});
  std::set<int> layers_seen;
  for (size_t i = 0; i < in.size(); ++i) {
    EarlyExitPolicy single_policy(heads, tau);
    const auto single = encoder_->forward(std::span(&in[i], 1), {&single_policy});
    EXPECT_EQ(batched[i].exit_layer, single[0].exit_layer);
    EXPECT_EQ(batched[i].exit_layer == 1, u[i] <= tau);
    const auto a = encoder_->classify(batched[i]), b = encoder_->classify(single[0]);
    for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-5);
    layers_seen.insert(batched[i].exit_layer);
  }
  EXPECT_GE(layers_seen.size(), 2u) << "the batch should have split";
}

TEST_F(EarlyExitTest, ComposesWithTokenPruning) {
  const ExitHeads heads = write_exits("light");
  auto pyramid = parse_policy_spec("ltp:final=0.2+exit:tau=0.9", encoder_->config(), &heads);
  ForwardStats stats, dense_stats;
  const auto in = inputs(8);
  encoder_->forward(in, {}, &dense_stats);
  const auto out = encoder_->forward(in, {pyramid.get()}, &stats);
  EXPECT_EQ(out.size(), in.size());
  EXPECT_LT(stats.flops, dense_stats.flops);
}

TEST_F(EarlyExitTest, BadSpecsAndFilesAreRejected) {
  EXPECT_THROW(parse_policy_spec("exit:tau=0.3", encoder_->config(), nullptr), Error);
  const ExitHeads heads = write_exits("light");
  EXPECT_THROW(parse_policy_spec("exit:tau=1.5", encoder_->config(), &heads), Error);
  EXPECT_THROW(parse_policy_spec("exit", encoder_->config(), &heads), Error);
  EXPECT_THROW(parse_policy_spec("exit:tau=0.1,depth=3", encoder_->config(), &heads), Error);
  const auto bad = dir_ / "exits-bad";
  std::filesystem::create_directories(bad);
  EXPECT_THROW(ExitHeads::load(bad, encoder_->config()), Error);  // no exits.json
  std::ofstream(bad / "exits.json") << R"({"format": "sieve-exits", "variant": "light", "num_labels": 3, "hidden_size": 7, "layers": [0]})";
  EXPECT_THROW(ExitHeads::load(bad, encoder_->config()), Error);  // wrong hidden size
  std::ofstream(bad / "exits.json", std::ios::trunc) << "{not json";
  EXPECT_THROW(ExitHeads::load(bad, encoder_->config()), Error);
  std::filesystem::copy_file(dir_ / "exits-light" / "exits.safetensors", bad / "exits.safetensors");
  std::ofstream(bad / "exits.json", std::ios::trunc)
      << R"({"format": "sieve-exits", "variant": "light", "num_labels": 3, "hidden_size": 32, "layers": [0, 2]})";
  EXPECT_THROW(ExitHeads::load(bad, encoder_->config()), Error);  // no exit after the last layer
}

// Exits exported by tools/train_exits.py (the fixture: MiniLM with a random head, perturbed exits)
// give the logits PyTorch computed, after every layer, for both variants.
TEST(ExitParity, MatchesPyTorchForEveryExitVariant) {
  const auto fixture = testing::reference_dir() / "exit-fixture";
  SIEVE_REQUIRE_FILE(fixture / "exits-block" / "reference.jsonl");
  const BertEncoder encoder = BertEncoder::load(fixture / "model");
  // Captures each layer's output rows of the (single) sequence.
  struct Capture : LayerPolicy {
    std::vector<std::vector<float>> rows;
    std::string describe() const override { return "capture"; }
    void after_layer(const LayerOutputView& view, ExitDecision&) override {
      const float* p = view.hidden->data();
      rows.emplace_back(p, p + view.hidden->size());
    }
  };
  for (const std::string variant : {"light", "block", "fastbert"}) {
    const auto dir = fixture / ("exits-" + variant);
    const ExitHeads heads = ExitHeads::load(dir, encoder.config());
    EXPECT_EQ(heads.variant(), variant);
    std::ifstream in(dir / "reference.jsonl");
    std::string line;
    int sentences = 0;
    while (std::getline(in, line)) {
      const auto ref = nlohmann::json::parse(line);
      EncoderInput input;
      input.ids = ref["ids"].get<std::vector<int32_t>>();
      Capture capture;
      const auto out = encoder.forward(std::span(&input, 1), {&capture});
      const auto final_logits = encoder.classify(out[0]);
      const auto want_final = ref["final_logits"].get<std::vector<float>>();
      for (size_t c = 0; c < want_final.size(); ++c) EXPECT_NEAR(final_logits[c], want_final[c], 1e-4);
      const auto want = ref["exit_logits"].get<std::vector<std::vector<float>>>();
      ASSERT_LE(want.size(), capture.rows.size());  // (no hook after the last layer)
      for (size_t l = 0; l < want.size(); ++l) {
        double flops = 0;
        const auto got = heads.logits(static_cast<int>(l), capture.rows[l].data(),
                                      static_cast<int64_t>(input.ids.size()), &flops);
        ASSERT_EQ(got.size(), want[l].size());
        for (size_t c = 0; c < got.size(); ++c)
          EXPECT_NEAR(got[c], want[l][c], 1e-4) << variant << " exit after layer " << l << ": " << ref["text"];
        EXPECT_GT(flops, 0.0);
      }
      ++sentences;
    }
    EXPECT_GE(sentences, 5) << variant;
  }
}

}  // namespace
}  // namespace sieve
