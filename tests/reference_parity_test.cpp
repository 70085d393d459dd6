// Sieve's dense forward against Hugging Face transformers on the default checkpoint: token ids,
// final hidden states, mean pooling and the BERT pooler, one sentence at a time and batched.
// The reference is written by tools/make_reference.py (scripts/setup.sh runs it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/text_model.h"
#include "reference_data.h"

namespace sieve {
namespace {

using nlohmann::json;

struct ReferenceSentence {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> hidden;  // [tokens][hidden]
  std::vector<float> mean_pooled, cls_pooled;
};

constexpr float kTolerance = 1e-4f;

class ReferenceParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto path = testing::reference_dir() / "hidden_states.jsonl";
    SIEVE_REQUIRE_FILE(path);
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      const json j = json::parse(line);
      ReferenceSentence s;
      s.text = j.at("text").get<std::string>();
      s.ids = j.at("ids").get<std::vector<int32_t>>();
      s.hidden = j.at("last_hidden_state").get<std::vector<std::vector<float>>>();
      s.mean_pooled = j.at("mean_pooled").get<std::vector<float>>();
      if (j.contains("cls_pooled")) s.cls_pooled = j.at("cls_pooled").get<std::vector<float>>();
      sentences_.push_back(std::move(s));
    }
    ASSERT_GE(sentences_.size(), 50u) << "the reference should cover at least 50 sentences";
    model_ = std::make_unique<TextModel>(TextModel::load(testing::reference_model_dir()));
  }

  // The reference tokenizes up to the position limit, not sentence-transformers' 256.
  std::vector<EncoderInput> encode_all() const {
    std::vector<TextPair> texts;
    for (const auto& s : sentences_) texts.push_back({s.text, ""});
    return model_->encode(texts, static_cast<size_t>(model_->encoder().config().max_position_embeddings)).inputs;
  }

  // Max abs error of one sequence's output against its reference (hidden states and poolings).
  float max_error(const ReferenceSentence& ref, const SequenceOutput& out) const {
    float err = 0.0f;
    EXPECT_EQ(out.hidden.dim(0), static_cast<int64_t>(ref.hidden.size()));
    for (size_t t = 0; t < ref.hidden.size() && static_cast<int64_t>(t) < out.hidden.dim(0); ++t)
      for (size_t c = 0; c < ref.hidden[t].size(); ++c)
        err = std::max(err, std::abs(out.hidden.row(static_cast<int64_t>(t))[c] - ref.hidden[t][c]));
    const auto mean = BertEncoder::mean_pool(out);
    for (size_t c = 0; c < mean.size(); ++c) err = std::max(err, std::abs(mean[c] - ref.mean_pooled[c]));
    if (!ref.cls_pooled.empty()) {
      const auto pooled = model_->encoder().pooler_output(out);
      for (size_t c = 0; c < pooled.size(); ++c) err = std::max(err, std::abs(pooled[c] - ref.cls_pooled[c]));
    }
    return err;
  }

  std::vector<ReferenceSentence> sentences_;
  std::unique_ptr<TextModel> model_;
};

TEST_F(ReferenceParity, TokenIdsMatch) {
  const auto inputs = encode_all();
  for (size_t i = 0; i < sentences_.size(); ++i) EXPECT_EQ(inputs[i].ids, sentences_[i].ids) << sentences_[i].text;
}

TEST_F(ReferenceParity, HiddenStatesMatchOneSentenceAtATime) {
  const auto inputs = encode_all();
  float worst = 0.0f;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto out = model_->encoder().forward(std::span(&inputs[i], 1));
    const float err = max_error(sentences_[i], out[0]);
    EXPECT_LT(err, kTolerance) << sentences_[i].text;
    worst = std::max(worst, err);
  }
  std::cout << "[ parity   ] unbatched: " << inputs.size() << " sentences, max abs error " << worst << "\n";
}

TEST_F(ReferenceParity, HiddenStatesMatchBatched) {
  // All sentences in one packed batch (3 to 300 tokens), and in batches of 8.
  const auto inputs = encode_all();
  for (size_t batch : {inputs.size(), size_t{8}}) {
    float worst = 0.0f;
    for (size_t start = 0; start < inputs.size(); start += batch) {
      const size_t n = std::min(batch, inputs.size() - start);
      const auto out = model_->encoder().forward(std::span(inputs.data() + start, n));
      ASSERT_EQ(out.size(), n);
      for (size_t i = 0; i < n; ++i) {
        const float err = max_error(sentences_[start + i], out[i]);
        EXPECT_LT(err, kTolerance) << "batch " << batch << ": " << sentences_[start + i].text;
        worst = std::max(worst, err);
      }
    }
    std::cout << "[ parity   ] batch " << batch << ": max abs error " << worst << "\n";
  }
}

}  // namespace
}  // namespace sieve
