// Sentence embeddings under pruning (model/text_embedder.h, eval/embedding_eval.h) on the default
// model: nothing pruned equals dense exactly for both poolings, chunking, bad options, and the
// STS-B Spearman pinned against transformers + mean pooling (build/reference/stsb, from
// tools/make_reference.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/embedding_eval.h"
#include "eval/tune.h"
#include "model/text_embedder.h"
#include "reference_data.h"
#include "util/error.h"

namespace sieve {
namespace {

const std::vector<std::string> kTexts = {
    "A man is playing a guitar.", "The stock market fell sharply today after the announcement.", "ok",
    "Sieve skips the work that does not matter: tokens, heads and whole layers that stopped contributing."};

class EmbeddingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir = testing::reference_model_dir();
    SIEVE_REQUIRE_FILE(dir / "config.json");
    model_ = std::make_unique<TextModel>(TextModel::load(dir));
  }
  std::vector<std::vector<float>> embed(const std::string& spec, PrunedPooling pooling,
                                        const std::vector<std::string>& texts = kTexts, EmbedStats* stats = nullptr) {
    EmbedderOptions o;
    o.policy = spec, o.pruned_pooling = pooling;
    return TextEmbedder(*model_, o).embed(texts, stats);
  }
  std::unique_ptr<TextModel> model_;
};

TEST_F(EmbeddingTest, DenseEqualsTheModelsEmbedding) {
  std::vector<TextPair> pairs;
  for (const auto& t : kTexts) pairs.push_back({t, ""});
  const EncodedBatch batch = model_->encode(pairs);
  const auto outputs = model_->encoder().forward(batch.inputs);
  const auto vectors = embed("dense", PrunedPooling::Survivors);
  for (size_t i = 0; i < kTexts.size(); ++i) EXPECT_EQ(vectors[i], model_->embedding(outputs[i])) << i;
}

TEST_F(EmbeddingTest, PruningNothingEqualsDenseExactlyForEveryPooling) {
  const auto dense = embed("dense", PrunedPooling::Survivors);
  for (PrunedPooling pooling : {PrunedPooling::Survivors, PrunedPooling::Frozen})
    for (const char* spec : {"dense", "spatten:tokens=1,heads=1", "ltp:final=0", "spatten:tokens=1,at=next+ltp:final=0"})
      EXPECT_EQ(embed(spec, pooling), dense) << spec << " " << pruned_pooling_name(pooling);
}

TEST_F(EmbeddingTest, PruningChangesEmbeddingsAndPoolingsDiffer) {
  EmbedStats stats;
  const auto dense = embed("dense", PrunedPooling::Survivors);
  const auto survivors = embed("spatten:tokens=0.3,start=0", PrunedPooling::Survivors, kTexts, &stats);
  const auto frozen = embed("spatten:tokens=0.3,start=0", PrunedPooling::Frozen);
  EXPECT_NE(survivors[3], dense[3]);
  EXPECT_NE(frozen[3], survivors[3]);
  EXPECT_EQ(survivors[2], dense[2]);  // "ok" is [CLS] ok [SEP]: one prunable token, kept as the last non-special
  EXPECT_LT(stats.forward.tokens_per_layer.back(), stats.tokens_in);
  for (const auto& v : frozen) {
    double norm = 0;
    for (float x : v) norm += static_cast<double>(x) * x;
    EXPECT_NEAR(norm, 1.0, 1e-5);  // still normalized as the model declares
  }
}

TEST_F(EmbeddingTest, ChunkingEqualsTruncationForShortTextsAndCoversLongOnes) {
  EmbedderOptions chunked;
  chunked.long_inputs = LongInputMode::Chunk;
  chunked.max_length = 16, chunked.chunk_overlap = 4;
  EmbedderOptions truncated = chunked;
  truncated.long_inputs = LongInputMode::Truncate;
  const std::vector<std::string> short_texts = {"A man is playing a guitar."};
  EXPECT_EQ(TextEmbedder(*model_, chunked).embed(short_texts), TextEmbedder(*model_, truncated).embed(short_texts));

  // 40 words of one token each: 38 text tokens in windows of 14 overlapping by 4 -> starts 0, 10, 20, 30.
  std::string text;
  for (int i = 0; i < 40; ++i) text += (i ? " " : "") + std::string(i % 2 ? "cat" : "dog");
  EmbedStats stats;
  const auto whole = TextEmbedder(*model_, chunked).embed({text}, &stats);
  ASSERT_EQ(stats.sequences, 4u);
  EXPECT_TRUE(stats.truncated_inputs.empty());
  // The same by hand: each window's mean-pooled vector weighted by its tokens, then normalized.
  const Encoding e = model_->tokenizer().encode(text, 1000);
  ASSERT_EQ(e.ids.size(), 42u);
  std::vector<double> sum(whole[0].size(), 0.0);
  double weight = 0;
  for (size_t begin : {0u, 10u, 20u, 30u}) {
    const size_t end = std::min<size_t>(begin + 14, 40);
    EncoderInput in;
    in.ids.push_back(model_->tokenizer().cls_id());
    in.ids.insert(in.ids.end(), e.ids.begin() + 1 + static_cast<long>(begin), e.ids.begin() + 1 + static_cast<long>(end));
    in.ids.push_back(model_->tokenizer().sep_id());
    const auto out = model_->encoder().forward(std::span(&in, 1));
    const auto pooled = model_->pooled(out[0]);
    for (size_t c = 0; c < sum.size(); ++c) sum[c] += static_cast<double>(in.ids.size()) * pooled[c];
    weight += static_cast<double>(in.ids.size());
  }
  std::vector<float> expected;
  for (double x : sum) expected.push_back(static_cast<float>(x / weight));
  model_->normalize_if_declared(expected);
  for (size_t c = 0; c < expected.size(); ++c) ASSERT_NEAR(whole[0][c], expected[c], 1e-5) << c;

  EmbedStats cut;
  TextEmbedder(*model_, truncated).embed({text}, &cut);
  EXPECT_EQ(cut.truncated_inputs, std::vector<size_t>{0});
}

TEST_F(EmbeddingTest, BadOptionsGiveClearErrors) {
  auto error_of = [&](EmbedderOptions o) {
    try {
      TextEmbedder embedder(*model_, o);
      embedder.embed({"text"});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EmbedderOptions o;
  o.policy = "spatten:tokens=2";
  EXPECT_NE(error_of(o).find("outside [0, 1]"), std::string::npos);
  o.policy = "nonsense";
  EXPECT_NE(error_of(o).find("unknown policy"), std::string::npos);
  o = {};
  o.long_inputs = LongInputMode::Chunk, o.max_length = 16, o.chunk_overlap = 14;
  EXPECT_NE(error_of(o).find("overlap"), std::string::npos);
  o.chunk_overlap = 2, o.max_length = 100000;
  EXPECT_NE(error_of(o).find("limit"), std::string::npos);
  o = {};
  o.batch_size = 0;
  EXPECT_NE(error_of(o).find("batch size"), std::string::npos);
  EXPECT_THROW(parse_pruned_pooling("mean"), Error);
  EXPECT_THROW(parse_long_input_mode("split"), Error);
  EXPECT_THROW(TextEmbedder(*model_, {}).embed({"bad \xff utf-8"}), Error);
}

TEST(Correlation, MatchesHandComputedValues) {
  // Ranks of x with ties: 1, 2.5, 2.5, 4; y = 1..4. Pearson of those ranks = 0.9486833.
  EXPECT_NEAR(spearman_correlation({1, 5, 5, 9}, {10, 20, 30, 40}), 0.9486832980505138, 1e-12);
  EXPECT_NEAR(spearman_correlation({3, 1, 2}, {30, 10, 20}), 1.0, 1e-12);
  EXPECT_NEAR(spearman_correlation({3, 1, 2}, {10, 30, 20}), -1.0, 1e-12);
  EXPECT_NEAR(pearson_correlation({1, 2, 3}, {2, 4, 7}), 0.9933992677987828, 1e-12);
  EXPECT_NEAR(cosine({1, 0}, {1, 1}), 1 / std::sqrt(2.0), 1e-12);
}

// The dense Spearman on STS-B validation equals what transformers + mean pooling gives.
TEST_F(EmbeddingTest, StsbSpearmanMatchesTransformers) {
  const auto dir = testing::reference_dir() / "stsb";
  SIEVE_REQUIRE_FILE(dir / "reference.json");
  std::ifstream in(dir / "reference.json");
  const nlohmann::json ref = nlohmann::json::parse(in);
  const auto pairs = load_pair_file(dir / "pairs.tsv");
  ASSERT_EQ(pairs.size(), ref.at("pairs").get<size_t>());
  const auto results = evaluate_embeddings(*model_, pairs, {}, {});
  ASSERT_TRUE(results[0].scored);
  EXPECT_NEAR(results[0].spearman, ref.at("spearman").get<double>(), 5e-4);
  EXPECT_NEAR(results[0].pearson, ref.at("pearson").get<double>(), 1e-5);
  const auto cosines = ref.at("cosines").get<std::vector<double>>();
  for (size_t i = 0; i < pairs.size(); ++i) ASSERT_NEAR(results[0].pair_cosines[i], cosines[i], 1e-5) << "pair " << i;
}

// sieve tune with --metric spearman on real pairs: a budget of 0 returns dense or a setting that
// loses nothing, and labelled rows with Spearman (or pairs with accuracy) are refused.
TEST_F(EmbeddingTest, TuneOnScoredPairsRespectsTheBudget) {
  const auto dir = testing::reference_dir() / "stsb";
  SIEVE_REQUIRE_FILE(dir / "pairs.tsv");
  const auto pairs = load_pair_file(dir / "pairs.tsv");
  TuneOptions o;
  o.metric = TuneMetric::Spearman, o.budget = 0.0, o.batch_size = 32, o.limit = 120, o.first_rows = 30;
  o.specs = {"spatten:tokens=0.2,start=0", "ltp:final=0", "spatten:heads=0.5"};
  const TuneResult r = tune_policy(*model_, pairs, o);
  EXPECT_EQ(r.candidates, 3u);
  EXPECT_EQ(r.rounds.back().rows, 120u);
  EXPECT_LE(r.best.point.loss, 1e-9);
  EXPECT_TRUE(r.best.result.spec == "dense" || r.best.result.spec == "ltp:final=0") << r.best.result.spec;
  o.metric = TuneMetric::Accuracy;
  EXPECT_THROW(tune_policy(*model_, pairs, o), Error);
  o.metric = TuneMetric::Spearman;
  EXPECT_THROW(tune_policy(*model_, std::vector<LabelledExample>{{{"a", ""}, 0}}, o), Error);
  std::vector<ScoredPair> unscored{{{"a", "b"}}, {{"c", "d"}}};
  EXPECT_THROW(tune_policy(*model_, unscored, o), Error);
}

TEST(PairData, ScoresAndErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("sieve-pairs-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir / name) << body;
    return dir / name;
  };
  const auto scored = load_pair_file(write("ok.tsv", "sentence1\tsentence2\tscore\na\tb\t4.5\nc\td\t0\n"));
  ASSERT_EQ(scored.size(), 2u);
  EXPECT_EQ(scored[0].score, 4.5);
  EXPECT_TRUE(std::isnan(load_pair_file(write("r.tsv", "sentence1\tsentence2\na\tb\n"))[0].score));
  EXPECT_THROW(load_pair_file(write("bad.tsv", "sentence1\tsentence2\tscore\na\tb\tnan\n")), Error);
  EXPECT_THROW(load_pair_file(write("short.tsv", "sentence1\tsentence2\tscore\na\tb\n")), Error);
  EXPECT_THROW(load_pair_file(write("nohead.tsv", "sentence\tscore\na\t1\n")), Error);
  const EvalData labelled = load_eval_data(write("l.tsv", "sentence\tlabel\na\t1\n"));
  EXPECT_EQ(labelled.labelled.size(), 1u);
  EXPECT_TRUE(labelled.pairs.empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sieve
