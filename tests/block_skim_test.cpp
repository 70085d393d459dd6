// Block-Skim's input: the diagonal blocks of every head's attention map, as the encoder hands them
// to a policy, against the naive masked reference (tiny random BERT), with nothing pruned and after
// tokens left; and the block bookkeeping by hand. The predictors against PyTorch's modules, one
// block at a time and batched, and a batch skimming what each window alone skims.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <set>

#include "kernels/conv3x3.h"
#include "kernels/cpu_features.h"
#include "model/bert_encoder.h"
#include "model/question_answerer.h"
#include "model/text_model.h"
#include "policies/block_skim.h"
#include "policies/layer_policy.h"
#include "policies/policy_spec.h"
#include "reference_data.h"
#include "tiny_bert.h"
#include "util/error.h"

namespace sieve {
namespace {

// Records what each layer exposes; at layer 0 it drops the positions in `drop`.
class RecordingBlocks : public LayerPolicy {
 public:
  RecordingBlocks(int64_t size, std::set<int32_t> drop, std::vector<uint8_t> layers = {})
      : size_(size), drop_(std::move(drop)), layers_(std::move(layers)) {}
  std::string describe() const override { return "record diagonal blocks"; }
  PolicyNeeds needs() const override {
    PolicyNeeds n;
    n.diagonal_block_size = size_;
    n.diagonal_block_layers = layers_;
    return n;
  }
  void after_attention(const AttentionLayerView& view, PruneDecision& decision) override {
    const bool asked = layers_.empty() || (static_cast<size_t>(view.layer) < layers_.size() && layers_[static_cast<size_t>(view.layer)]);
    EXPECT_EQ(view.diagonal_block_size, asked ? size_ : 0) << "layer " << view.layer;
    blocks.emplace_back(view.diagonal_blocks.begin(), view.diagonal_blocks.end());
    positions.push_back(view.sequences[0].positions);
    if (view.layer != 0) return;
    for (size_t r = 0; r < view.sequences[0].positions.size(); ++r)
      if (drop_.count(view.sequences[0].positions[r])) decision.keep_token[0][r] = 0;
  }
  std::vector<std::vector<DiagonalBlocks>> blocks;   // [layer][sequence]
  std::vector<std::vector<int32_t>> positions;       // [layer]: sequence 0's rows

 private:
  int64_t size_;
  std::set<int32_t> drop_;
  std::vector<uint8_t> layers_;
};

TEST(DiagonalBlocks, BlocksFollowPositionsAndSpecialTokens) {
  PackedSequence s;
  // [CLS] q q [SEP] c c c c c c c [SEP], with positions 6 and 7 gone: blocks of 3 from position 4.
  s.positions = {0, 1, 2, 3, 4, 5, 8, 9, 10, 11};
  s.is_special = {1, 1, 1, 1, 0, 0, 0, 0, 0, 1};
  const DiagonalBlocks b = make_diagonal_blocks(s, 4, 3, 2);
  EXPECT_EQ(b.number, (std::vector<int32_t>{0, 1, 2}));  // positions 4-5 (of 4-6) | 8-9 (of 7-9) | 10
  EXPECT_EQ(b.first_row, (std::vector<int32_t>{4, 6, 8}));
  EXPECT_EQ(b.end_row, (std::vector<int32_t>{6, 8, 9}));
  EXPECT_EQ(b.row_block, (std::vector<int32_t>{-1, -1, -1, -1, 0, 0, 1, 1, 2, -1}));
  EXPECT_EQ(b.probs.size(), 2u * 3 * 3 * 3);
  // A special token inside a block's span splits it into two entries with the same number.
  PackedSequence pair;
  pair.positions = {0, 1, 2, 3, 4, 5};
  pair.is_special = {1, 0, 0, 1, 0, 1};
  const DiagonalBlocks split = make_diagonal_blocks(pair, 1, 8, 1);
  EXPECT_EQ(split.number, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(split.first_row, (std::vector<int32_t>{1, 4}));
  EXPECT_EQ(split.end_row, (std::vector<int32_t>{3, 5}));
}

TEST(DiagonalBlocks, EncoderHandsPoliciesTheReferenceProbabilities) {
  testing::TinyBertShape shape;  // 2 layers, 4 heads of 16
  const auto dir = testing::make_tiny_bert("diagonal-blocks", shape);
  const BertEncoder encoder = BertEncoder::load(dir);
  const testing::MaskedReference reference(dir, shape);
  EncoderInput in;
  for (int t = 0; t < 40; ++t) in.ids.push_back(5 + (t * 37) % 110);
  in.is_special.assign(in.ids.size(), 0);
  for (int t : {0, 1, 2, 3, 39}) in.is_special[static_cast<size_t>(t)] = 1;  // [CLS] q q [SEP] ... [SEP]
  constexpr int64_t kSize = 8;

  for (const std::set<int32_t>& drop : {std::set<int32_t>{}, std::set<int32_t>{12, 13, 14, 15, 16, 17, 18, 19, 22, 35}}) {
    RecordingBlocks policy(kSize, drop);
    encoder.forward(std::span(&in, 1), {&policy});
    ASSERT_EQ(policy.blocks.size(), 2u);
    std::vector<std::set<int>> alive, heads(2, std::set<int>{0, 1, 2, 3});
    for (const auto& layer_positions : policy.positions) alive.emplace_back(layer_positions.begin(), layer_positions.end());
    testing::MaskedReference::Probabilities probs;
    reference.forward(in.ids, alive, heads, nullptr, &probs);
    size_t checked = 0;
    for (size_t l = 0; l < 2; ++l) {
      const DiagonalBlocks& b = policy.blocks[l][0];
      const std::vector<int32_t>& pos = policy.positions[l];
      // Layer 1 after the drop: block 1 (positions 12-19) is gone, block 2 lost position 22.
      if (!drop.empty() && l == 1) EXPECT_EQ(b.number, (std::vector<int32_t>{0, 2, 3, 4}));
      else EXPECT_EQ(b.number, (std::vector<int32_t>{0, 1, 2, 3, 4}));
      for (int h = 0; h < 4; ++h)
        for (int64_t k = 0; k < b.blocks(); ++k)
          for (int64_t i = 0; i < kSize; ++i)
            for (int64_t j = 0; j < kSize; ++j) {
              const float got = b.probs[static_cast<size_t>(((h * b.blocks() + k) * kSize + i) * kSize + j)];
              const int64_t qi = b.first_row[static_cast<size_t>(k)] + i, kj = b.first_row[static_cast<size_t>(k)] + j;
              const int64_t end = b.end_row[static_cast<size_t>(k)];
              if (qi >= end || kj >= end) {
                EXPECT_EQ(got, 0.0f);
                continue;
              }
              const double want = probs[l][static_cast<size_t>(h)][static_cast<size_t>(pos[static_cast<size_t>(qi)])]
                                       [static_cast<size_t>(pos[static_cast<size_t>(kj)])];
              EXPECT_NEAR(got, want, 1e-5) << "layer " << l << " head " << h << " block " << k;
              ++checked;
            }
    }
    EXPECT_GT(checked, 500u);
  }
}

TEST(DiagonalBlocks, OnlyTheLayersAskedForGetBlocks) {
  testing::TinyBertShape shape;  // 2 layers
  const auto dir = testing::make_tiny_bert("diagonal-blocks-layers", shape);
  const BertEncoder encoder = BertEncoder::load(dir);
  EncoderInput in;
  for (int t = 0; t < 30; ++t) in.ids.push_back(5 + (t * 37) % 110);
  in.is_special.assign(in.ids.size(), 0);
  in.is_special.front() = in.is_special.back() = 1;
  RecordingBlocks every(8, {}), second(8, {}, {0, 1});
  encoder.forward(std::span(&in, 1), {&every});
  encoder.forward(std::span(&in, 1), {&second});
  ASSERT_EQ(second.blocks.size(), 2u);
  EXPECT_TRUE(second.blocks[0].empty());  // layer 0 was not asked for
  ASSERT_EQ(second.blocks[1].size(), 1u);
  EXPECT_EQ(second.blocks[1][0].probs, every.blocks[1][0].probs);
  EXPECT_EQ(second.blocks[1][0].number, every.blocks[1][0].number);

  // A chain asks for the union of its policies' layers; one asking for every layer wins.
  PolicyChain two;
  two.add(std::make_unique<RecordingBlocks>(8, std::set<int32_t>{}, std::vector<uint8_t>{0, 1}));
  two.add(std::make_unique<RecordingBlocks>(8, std::set<int32_t>{}, std::vector<uint8_t>{0, 0, 1}));
  EXPECT_EQ(two.needs().diagonal_block_layers, (std::vector<uint8_t>{0, 1, 1}));
  EXPECT_FALSE(two.needs().diagonal_blocks_in(0));
  EXPECT_TRUE(two.needs().diagonal_blocks_in(2));
  EXPECT_FALSE(two.needs().diagonal_blocks_in(3));
  PolicyChain with_all;
  with_all.add(std::make_unique<RecordingBlocks>(8, std::set<int32_t>{}, std::vector<uint8_t>{0, 1}));
  with_all.add(std::make_unique<RecordingBlocks>(8, std::set<int32_t>{}));
  EXPECT_TRUE(with_all.needs().diagonal_block_layers.empty());
  EXPECT_TRUE(with_all.needs().diagonal_blocks_in(0));
}

TEST(DiagonalBlocks, PoliciesAskingDifferentSizesAreRefused) {
  PolicyChain chain;
  chain.add(std::make_unique<RecordingBlocks>(8, std::set<int32_t>{}));
  chain.add(std::make_unique<RecordingBlocks>(16, std::set<int32_t>{}));
  EXPECT_THROW(chain.needs(), Error);
}

// The direct AVX-512 convolution against a naive one in double precision: odd channel counts (a
// last pass of fewer than four output channels), every supported size, values of both signs so
// that ReLU cuts some, and the borders (zero padding) included.
TEST(BlockSkim, DirectConvolutionEqualsNaiveConvolution) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t channels : {1, 3, 5, 12}) {
    for (int64_t size : {16, 32, 48, 64}) {
      ASSERT_TRUE(conv3x3_avx512_fits(size));
      std::vector<float> in(static_cast<size_t>(channels * size * size)), weight(static_cast<size_t>(channels * channels * 9));
      std::vector<float> scale(static_cast<size_t>(channels)), shift(static_cast<size_t>(channels));
      for (auto* v : {&in, &weight, &shift})
        for (float& x : *v) x = uniform(rng);
      for (float& x : scale) x = 1.5f + uniform(rng);  // positive, as BatchNorm's usually is: ReLU cuts about half
      const int64_t half = size / 2;
      std::vector<float> got(static_cast<size_t>(channels * half * half), -1.0f);
      avx512::conv3x3_scale_relu_pool(in.data(), weight.data(), scale.data(), shift.data(), channels, size, got.data());
      const auto at = [&](int64_t c, int64_t y, int64_t x) -> double {
        return y < 0 || x < 0 || y >= size || x >= size ? 0.0 : in[static_cast<size_t>((c * size + y) * size + x)];
      };
      double worst = 0.0;
      int64_t zeros = 0;
      for (int64_t co = 0; co < channels; ++co)
        for (int64_t py = 0; py < half; ++py)
          for (int64_t px = 0; px < half; ++px) {
            double pooled = 0.0;
            for (int64_t y = 2 * py; y < 2 * py + 2; ++y)
              for (int64_t x = 2 * px; x < 2 * px + 2; ++x) {
                double acc = 0.0;
                for (int64_t ci = 0; ci < channels; ++ci)
                  for (int64_t dy = -1; dy <= 1; ++dy)
                    for (int64_t dx = -1; dx <= 1; ++dx)
                      acc += weight[static_cast<size_t>(((co * channels + ci) * 3 + dy + 1) * 3 + dx + 1)] * at(ci, y + dy, x + dx);
                pooled += std::max(0.0, acc * scale[static_cast<size_t>(co)] + shift[static_cast<size_t>(co)]);
              }
            const double want = pooled / 4;
            zeros += want == 0.0;
            worst = std::max(worst, std::abs(want - got[static_cast<size_t>((co * half + py) * half + px)]));
          }
      EXPECT_LT(worst, 1e-4) << channels << " channels, size " << size;
      EXPECT_LT(zeros, channels * half * half) << "ReLU cut everything: the test would not see the convolution";
    }
  }
  // Sizes outside the kernel's table are refused, not read past it (callers ask conv3x3_avx512_fits first).
  for (int64_t size : {0, 8, 24, 80}) {
    EXPECT_FALSE(conv3x3_avx512_fits(size)) << size;
    std::vector<float> buffer(static_cast<size_t>(80 * 80));
    EXPECT_THROW(avx512::conv3x3_scale_relu_pool(buffer.data(), buffer.data(), buffer.data(), buffer.data(), 1, size, buffer.data()),
                 Error);
  }
}

// The predictors against PyTorch (tools/make_qa_reference.py: train_qa.py's module with random
// weights and BatchNorm statistics), fed the attention maps of the QA windows.
TEST(BlockSkim, PredictorsEqualThePyTorchModules) {
  const auto path = testing::reference_dir() / "qa" / "qa_reference.json";
  SIEVE_REQUIRE_FILE(path);
  std::ifstream in(path);
  const nlohmann::json reference = nlohmann::json::parse(in);
  const TextModel model = TextModel::load(testing::reference_dir() / "qa" / "minilm-qa");
  ASSERT_NE(model.block_skim(), nullptr);
  const BlockSkimModules& modules = *model.block_skim();
  const int64_t size = reference.at("blockskim").at("block_size").get<int64_t>();
  ASSERT_EQ(modules.block_size(), size);
  const int heads = static_cast<int>(model.encoder().config().num_attention_heads);
  size_t compared = 0;
  float worst = 0.0f;
  for (const auto& c : reference.at("blockskim").at("cases")) {
    const auto& ref_case = reference.at("cases")[c.at("case").get<size_t>()];
    QaOptions options;
    const auto windows = make_qa_windows(model.tokenizer(), {ref_case.at("question").get<std::string>(), ref_case.at("context").get<std::string>()}, 0, options);
    RecordingBlocks recorder(size, {});
    model.encoder().forward(std::span(&windows[0].input, 1), {&recorder});
    const auto& logits = c.at("logits");
    ASSERT_EQ(recorder.blocks.size(), logits.size());
    std::vector<float> tile(static_cast<size_t>(heads * size * size));
    for (size_t l = 0; l < logits.size(); ++l) {
      const DiagonalBlocks& b = recorder.blocks[l][0];
      ASSERT_EQ(static_cast<size_t>(b.blocks()), logits[l].size()) << "layer " << l;
      // Each block alone, and all blocks of the layer in one batched call (the policy's way).
      std::vector<float> tiles(static_cast<size_t>(b.blocks() * heads * size * size));
      for (int64_t k = 0; k < b.blocks(); ++k) {
        for (int h = 0; h < heads; ++h)
          std::copy_n(b.probs.data() + (h * b.blocks() + k) * size * size, size * size, tile.data() + h * size * size);
        std::copy(tile.begin(), tile.end(), tiles.begin() + k * heads * size * size);
        const auto z = modules.logits(static_cast<int>(l), tile.data());
        for (size_t e = 0; e < 2; ++e) worst = std::max(worst, std::abs(z[e] - logits[l][static_cast<size_t>(k)][e].get<float>()));
        ++compared;
      }
      const auto batched = modules.logits(static_cast<int>(l), tiles.data(), b.blocks());
      ASSERT_EQ(batched.size(), static_cast<size_t>(b.blocks()));
      for (int64_t k = 0; k < b.blocks(); ++k)
        for (size_t e = 0; e < 2; ++e)
          worst = std::max(worst, std::abs(batched[static_cast<size_t>(k)][e] - logits[l][static_cast<size_t>(k)][e].get<float>()));
    }
  }
  EXPECT_GT(compared, 30u);
  EXPECT_LT(worst, 2e-4f);
  std::printf("Block-Skim predictors: %zu (layer, block) logit pairs, max error %.2e\n", compared, static_cast<double>(worst));
}

// The policy scores the blocks of all sequences of a batch together, in chunks: a batch must skim
// exactly what each window alone skims (12 questions -> well over one chunk of 16 blocks).
TEST(BlockSkim, BatchedSkimsWhatEachWindowAloneSkims) {
  const auto path = testing::reference_dir() / "qa" / "qa_reference.json";
  SIEVE_REQUIRE_FILE(path);
  std::ifstream in(path);
  const nlohmann::json reference = nlohmann::json::parse(in);
  const TextModel model = TextModel::load(testing::reference_dir() / "qa" / "minilm-qa");
  std::vector<QaQuery> queries;
  for (size_t c = 0; c < 12; ++c)
    queries.push_back({reference.at("cases")[c].at("question").get<std::string>(), reference.at("cases")[c].at("context").get<std::string>()});
  for (const char* spec : {"blockskim:threshold=0.5", "blockskim:threshold=0.5,at=ffn"}) {
    QaOptions one, batched;
    one.policy = batched.policy = spec;
    one.batch_size = 1;
    batched.batch_size = 12;
    EmbedStats one_stats, batched_stats;
    const auto alone = QuestionAnswerer(model, one).answer(queries, &one_stats);
    const auto together = QuestionAnswerer(model, batched).answer(queries, &batched_stats);
    EXPECT_EQ(one_stats.forward.tokens_per_layer, batched_stats.forward.tokens_per_layer) << spec;
    const int64_t computed = std::accumulate(one_stats.forward.tokens_per_layer.begin(), one_stats.forward.tokens_per_layer.end(), int64_t{0});
    EXPECT_LT(computed, one_stats.tokens_in * static_cast<int64_t>(one_stats.forward.tokens_per_layer.size())) << spec << ": nothing skimmed";
    for (size_t q = 0; q < queries.size(); ++q) {
      ASSERT_EQ(alone[q].size(), together[q].size()) << spec << " question " << q;
      for (size_t k = 0; k < alone[q].size(); ++k) {
        EXPECT_EQ(alone[q][k].text, together[q][k].text) << spec << " question " << q;
        EXPECT_NEAR(alone[q][k].score, together[q][k].score, 1e-4) << spec << " question " << q;
      }
    }
  }
}

TEST(BlockSkim, SkimmingNothingEqualsDenseAndSkimmingAllLeavesNoAnswer) {
  const auto dir = testing::reference_dir() / "qa" / "minilm-qa";
  SIEVE_REQUIRE_FILE(dir / "blockskim" / "blockskim.json");
  const TextModel model = TextModel::load(dir);
  const QaQuery query{"Which team won the game?",
                      "The game was played in the rain. After a long first half with no score, the Broncos took the lead "
                      "and held it until the end, so the Broncos won the game by ten points in front of a full stadium."};
  const auto answer = [&](const std::string& spec, EmbedStats* stats) {
    QaOptions options;
    options.policy = spec;
    return QuestionAnswerer(model, options).answer({query}, stats)[0];
  };
  EmbedStats dense_stats, none_stats, all_stats;
  const auto dense = answer("dense", &dense_stats);
  const auto none = answer("blockskim:threshold=0", &none_stats);
  ASSERT_EQ(none.size(), dense.size());
  for (size_t k = 0; k < dense.size(); ++k) {
    EXPECT_EQ(none[k].text, dense[k].text);
    EXPECT_EQ(none[k].score, dense[k].score);  // bit for bit: nothing skimmed
  }
  EXPECT_EQ(none_stats.forward.tokens_per_layer, dense_stats.forward.tokens_per_layer);
  // threshold 1: every context block goes after layer 0, so no span is left to answer with.
  EXPECT_TRUE(answer("blockskim:threshold=1", &all_stats).empty());
  EXPECT_LT(all_stats.forward.tokens_per_layer[1], dense_stats.forward.tokens_per_layer[1]);
  EXPECT_EQ(all_stats.forward.tokens_per_layer[0], dense_stats.forward.tokens_per_layer[0]);
  // at=ffn drops them before layer 0's FFN already.
  EmbedStats ffn_stats;
  answer("blockskim:threshold=1,at=ffn", &ffn_stats);
  EXPECT_LT(ffn_stats.forward.tokens_per_layer[0], dense_stats.forward.tokens_per_layer[0]);
}

TEST(BlockSkim, SpecErrorsAreClear) {
  const auto dir = testing::reference_dir() / "qa" / "minilm-qa";
  SIEVE_REQUIRE_FILE(dir / "blockskim" / "blockskim.json");
  const TextModel model = TextModel::load(dir);
  const auto message = [&](const std::string& spec, const BlockSkimModules* modules) {
    try {
      parse_policy_spec(spec, model.encoder().config(), nullptr, modules);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("blockskim:threshold=0.5", nullptr).find("tools/train_qa.py"), std::string::npos);
  EXPECT_NE(message("blockskim:threshold=1.5", model.block_skim()).find("outside [0, 1]"), std::string::npos);
  EXPECT_NE(message("blockskim:layers=9", model.block_skim()).find("layer"), std::string::npos);
  EXPECT_NE(message("blockskim:at=later", model.block_skim()).find("at=later"), std::string::npos);
  EXPECT_EQ(message("blockskim:threshold=0.4,layers=0-3+spatten:tokens=0.5", model.block_skim()), "no error");
}

TEST(BlockSkim, DamagedPredictorFilesAreRefused) {
  const auto dir = testing::reference_dir() / "qa" / "minilm-qa";
  SIEVE_REQUIRE_FILE(dir / "blockskim" / "blockskim.json");
  const ModelConfig config = ModelConfig::load(dir / "config.json");
  const auto bad = std::filesystem::temp_directory_path() / ("sieve-blockskim-" + std::to_string(::getpid()));
  std::filesystem::create_directories(bad);
  std::filesystem::copy_file(dir / "blockskim" / "blockskim.safetensors", bad / "blockskim.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  const auto message = [&](const std::string& json_text) {
    std::ofstream(bad / "blockskim.json") << json_text;
    try {
      BlockSkimModules::load(bad, config);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(R"({"format": "sieve-blockskim", "version": 1, "block_size": 32, "layers": 6, "heads": 12, "bn_eps": 1e-5})"), "no error");
  EXPECT_NE(message(R"({"block_size": 32})").find("sieve-blockskim"), std::string::npos);
  EXPECT_NE(message(R"({"format": "sieve-blockskim", "block_size": 30, "layers": 6, "heads": 12, "bn_eps": 1e-5})").find("multiple of 4"), std::string::npos);
  EXPECT_NE(message(R"({"format": "sieve-blockskim", "block_size": 32, "layers": 6, "heads": 8, "bn_eps": 1e-5})").find("heads"), std::string::npos);
  EXPECT_NE(message(R"({"format": "sieve-blockskim", "block_size": 32, "layers": 60, "heads": 12, "bn_eps": 1e-5})").find("layers"), std::string::npos);
  EXPECT_NE(message(R"({"format": "sieve-blockskim", "block_size": 16, "layers": 6, "heads": 12, "bn_eps": 1e-5})").find("fc.weight"), std::string::npos);
  EXPECT_NE(message(R"({"format": "sieve-blockskim", "block_size": 32, "layers": 6, "heads": 12, "bn_eps": -1})").find("bn_eps"), std::string::npos);
  std::filesystem::remove_all(bad);
}

}  // namespace
}  // namespace sieve
