// The forward pass and its policy hook: dense against a naive reference, compacted pruning against a
// masked reference, "nothing pruned" bit-identical to dense, batched equal to one-by-one.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "model/bert_encoder.h"
#include "policies/cascade_pruner.h"
#include "policies/policy_spec.h"
#include "policies/threshold_pruner.h"
#include "test_helpers.h"
#include "tiny_bert.h"
#include "util/error.h"

namespace sieve {
namespace {

using testing::MaskedReference;
using testing::TinyBertShape;

// Delegates to a policy and records, per input and layer, which tokens and heads entered attention.
class RecordingPolicy : public LayerPolicy {
 public:
  explicit RecordingPolicy(LayerPolicy* inner) : inner_(inner) {}
  std::string describe() const override { return "recording"; }
  PolicyNeeds needs() const override { return inner_ ? inner_->needs() : PolicyNeeds{}; }
  void begin(std::span<const PackedSequence> seqs, int layers, int heads) override {
    alive.assign(seqs.size(), std::vector<std::set<int>>(static_cast<size_t>(layers)));
    live_heads.assign(seqs.size(), std::vector<std::set<int>>(static_cast<size_t>(layers)));
    if (inner_) inner_->begin(seqs, layers, heads);
  }
  void after_attention(const AttentionLayerView& view, PruneDecision& d) override {
    for (const auto& s : view.sequences) {
      alive[s.input_index][view.layer] = {s.positions.begin(), s.positions.end()};
      live_heads[s.input_index][view.layer] = {s.heads.begin(), s.heads.end()};
    }
    if (inner_) inner_->after_attention(view, d);
  }
  std::vector<std::vector<std::set<int>>> alive, live_heads;  // [input][layer]

 private:
  LayerPolicy* inner_;
};

std::vector<EncoderInput> sample_inputs(int vocab) {
  std::vector<EncoderInput> inputs;
  for (int len : {2, 5, 9, 16, 31, 40}) {
    EncoderInput in;
    in.ids.push_back(2);
    for (int i = 1; i + 1 < len; ++i) in.ids.push_back(5 + (i * 37 + len * 11) % (vocab - 5));
    in.ids.push_back(3);
    inputs.push_back(in);
  }
  return inputs;
}

class EncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_tiny_bert("encoder", shape_);
    encoder_ = std::make_unique<BertEncoder>(BertEncoder::load(dir_));
    reference_ = std::make_unique<MaskedReference>(dir_, shape_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs the engine with `policy`, then the masked reference with the masks the engine used, and
  // compares every row the engine returned.
  void expect_matches_masked_reference(LayerPolicy* policy, bool expect_pruning) {
    const auto inputs = sample_inputs(shape_.vocab);
    RecordingPolicy recorder(policy);
    const auto outputs = encoder_->forward(inputs, {&recorder});
    bool pruned = false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto expected = reference_->forward(inputs[i].ids, recorder.alive[i], recorder.live_heads[i]);
      const SequenceOutput& out = outputs[i];
      pruned |= out.positions.size() < inputs[i].ids.size();
      for (const auto& heads : recorder.live_heads[i]) pruned |= heads.size() < static_cast<size_t>(shape_.heads);
      for (int64_t r = 0; r < out.hidden.dim(0); ++r)
        for (int64_t c = 0; c < out.hidden.dim(1); ++c)
          ASSERT_NEAR(out.hidden.row(r)[c], expected[static_cast<size_t>(out.positions[static_cast<size_t>(r)])][static_cast<size_t>(c)], 1e-4)
              << "input " << i << " row " << r;
    }
    EXPECT_EQ(pruned, expect_pruning);
  }

  TinyBertShape shape_{3, 64, 4, 128, 120, 64, 0};
  std::filesystem::path dir_;
  std::unique_ptr<BertEncoder> encoder_;
  std::unique_ptr<MaskedReference> reference_;
};

TEST_F(EncoderTest, DenseMatchesNaiveReference) { expect_matches_masked_reference(nullptr, false); }

TEST_F(EncoderTest, CascadePruningBeforeFfnMatchesMaskedReference) {
  auto chain = parse_policy_spec("spatten:tokens=0.4,heads=0.5,at=ffn", encoder_->config());
  expect_matches_masked_reference(chain.get(), true);
}

TEST_F(EncoderTest, CascadePruningNextLayerMatchesMaskedReference) {
  auto chain = parse_policy_spec("spatten:tokens=0.3,heads=0.75,start=0,at=next", encoder_->config());
  expect_matches_masked_reference(chain.get(), true);
}

TEST_F(EncoderTest, ThresholdPruningMatchesMaskedReference) {
  auto chain = parse_policy_spec("ltp:final=0.05+spatten:heads=0.5", encoder_->config());
  expect_matches_masked_reference(chain.get(), true);
}

TEST_F(EncoderTest, NothingPrunedIsBitIdenticalToDense) {
  const auto inputs = sample_inputs(shape_.vocab);
  const auto dense = encoder_->forward(inputs);
  for (const char* spec : {"spatten:tokens=1,heads=1", "ltp:final=0", "ltp:thresholds=0/0/0", "dense",
                           "spatten:token_ratios=1/1/1,at=next+ltp:final=0"}) {
    auto chain = parse_policy_spec(spec, encoder_->config());
    const auto out = encoder_->forward(inputs, {chain.get()});
    for (size_t i = 0; i < inputs.size(); ++i) {
      ASSERT_EQ(out[i].hidden.shape(), dense[i].hidden.shape()) << spec;
      for (int64_t e = 0; e < dense[i].hidden.size(); ++e)
        ASSERT_EQ(out[i].hidden.data()[e], dense[i].hidden.data()[e]) << spec << " input " << i;
    }
  }
}

// Mean pooling under pruning against the masked reference: over the survivors, and with token
// freezing, where a token pruned at layer l counts with the state it had then (its last complete
// layer output: layer l's input when dropped before the FFN, layer l's output when dropped after).
TEST_F(EncoderTest, PooledUnderPruningMatchesMaskedReference) {
  const auto inputs = sample_inputs(shape_.vocab);
  for (const char* spec : {"spatten:tokens=0.4,heads=0.5,at=ffn", "spatten:tokens=0.3,start=0,at=next", "ltp:final=0.05"}) {
    const bool before_ffn = std::string(spec).find("at=next") == std::string::npos;
    for (bool freeze : {false, true}) {
      auto chain = parse_policy_spec(spec, encoder_->config());
      RecordingPolicy recorder(chain.get());
      ForwardOptions options{&recorder};
      options.freeze_pruned_tokens = freeze;
      const auto outputs = encoder_->forward(inputs, options);
      bool any_frozen = false;
      for (size_t i = 0; i < inputs.size(); ++i) {
        std::vector<std::vector<std::vector<double>>> layer_inputs;
        const auto final_rows = reference_->forward(inputs[i].ids, recorder.alive[i], recorder.live_heads[i], &layer_inputs);
        layer_inputs.push_back(final_rows);  // [layers] = the last layer's output
        std::vector<double> expected(static_cast<size_t>(shape_.hidden), 0.0);
        size_t counted = 0;
        for (int t = 0; t < static_cast<int>(inputs[i].ids.size()); ++t) {
          int last_alive = -1;
          for (int l = 0; l < shape_.layers; ++l)
            if (recorder.alive[i][static_cast<size_t>(l)].count(t)) last_alive = l;
          const bool survived = std::count(outputs[i].positions.begin(), outputs[i].positions.end(), t) == 1;
          const std::vector<double>* row = nullptr;
          if (survived) row = &final_rows[static_cast<size_t>(t)];
          else if (freeze) row = &layer_inputs[static_cast<size_t>(before_ffn ? last_alive : last_alive + 1)][static_cast<size_t>(t)];
          if (!row) continue;
          for (size_t c = 0; c < expected.size(); ++c) expected[c] += (*row)[c];
          ++counted;
        }
        any_frozen |= freeze && counted > outputs[i].positions.size();
        EXPECT_EQ(outputs[i].frozen_count, freeze ? static_cast<int64_t>(counted - outputs[i].positions.size()) : 0) << spec;
        const auto pooled = BertEncoder::mean_pool(outputs[i]);
        for (size_t c = 0; c < expected.size(); ++c)
          ASSERT_NEAR(pooled[c], expected[c] / static_cast<double>(counted), 1e-4) << spec << " freeze " << freeze << " input " << i;
      }
      EXPECT_EQ(any_frozen, freeze) << spec;
    }
  }
}

TEST_F(EncoderTest, FreezingWithNothingPrunedIsBitIdenticalToDense) {
  const auto inputs = sample_inputs(shape_.vocab);
  const auto dense = encoder_->forward(inputs);
  for (const char* spec : {"dense", "spatten:tokens=1,heads=1", "ltp:final=0"}) {
    auto chain = parse_policy_spec(spec, encoder_->config());
    ForwardOptions options{chain.get()};
    options.freeze_pruned_tokens = true;
    const auto out = encoder_->forward(inputs, options);
    for (size_t i = 0; i < inputs.size(); ++i) {
      EXPECT_EQ(out[i].frozen_count, 0);
      EXPECT_EQ(BertEncoder::mean_pool(out[i]), BertEncoder::mean_pool(dense[i])) << spec << " input " << i;
    }
  }
}

TEST_F(EncoderTest, BatchedEqualsOneByOneWithAndWithoutPruning) {
  const auto inputs = sample_inputs(shape_.vocab);
  for (const char* spec : {"dense", "spatten:tokens=0.5,heads=0.5", "ltp:final=0.08"}) {
    auto chain = parse_policy_spec(spec, encoder_->config());
    const auto batched = encoder_->forward(inputs, {chain.get()});
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto single = encoder_->forward(std::span(inputs).subspan(i, 1), {chain.get()});
      ASSERT_EQ(single[0].positions, batched[i].positions) << spec << " input " << i;
      for (int64_t e = 0; e < single[0].hidden.size(); ++e)
        ASSERT_NEAR(single[0].hidden.data()[e], batched[i].hidden.data()[e], 1e-5) << spec;
    }
  }
}

// A batch longer than rows_per_pass() runs in passes of whole sequences (here 1-2 per pass; the
// 40-token input exceeds the limit and gets a pass of its own): the same outputs, pruning
// decisions and counts as one pass. Policies see one begin() and each layer once per pass.
TEST_F(EncoderTest, PassesOfWholeSequencesEqualOnePass) {
  const auto inputs = sample_inputs(shape_.vocab);
  const int64_t one_pass = encoder_->rows_per_pass();
  ASSERT_GT(one_pass, 200);
  for (const char* spec : {"dense", "spatten:tokens=0.5,heads=0.5", "ltp:final=0.08", "spatten:tokens=0.3,start=0,at=next"}) {
    for (const bool freeze : {false, true}) {
      auto chain = parse_policy_spec(spec, encoder_->config());
      ForwardStats whole_stats, passes_stats;
      encoder_->set_rows_per_pass(one_pass);
      const auto whole = encoder_->forward(inputs, {chain.get(), std::nullopt, freeze}, &whole_stats);
      encoder_->set_rows_per_pass(20);
      const auto passes = encoder_->forward(inputs, {chain.get(), std::nullopt, freeze}, &passes_stats);
      encoder_->set_rows_per_pass(one_pass);
      for (size_t i = 0; i < inputs.size(); ++i) {
        ASSERT_EQ(passes[i].positions, whole[i].positions) << spec << " input " << i;
        ASSERT_EQ(passes[i].hidden.shape(), whole[i].hidden.shape()) << spec;
        for (int64_t e = 0; e < whole[i].hidden.size(); ++e)
          ASSERT_NEAR(passes[i].hidden.data()[e], whole[i].hidden.data()[e], 1e-5) << spec << " input " << i;
        ASSERT_EQ(passes[i].frozen_count, whole[i].frozen_count) << spec;
        for (size_t e = 0; e < whole[i].frozen_sum.size(); ++e)
          ASSERT_NEAR(passes[i].frozen_sum[e], whole[i].frozen_sum[e], 1e-4) << spec;
      }
      EXPECT_EQ(passes_stats.tokens_per_layer, whole_stats.tokens_per_layer) << spec;
      EXPECT_EQ(passes_stats.heads_per_layer, whole_stats.heads_per_layer) << spec;
      EXPECT_DOUBLE_EQ(passes_stats.flops, whole_stats.flops) << spec;
    }
  }
  EXPECT_THROW(encoder_->set_rows_per_pass(0), Error);
}

// Classifiers read only [CLS] after the last layer: with cls_only_output the last FFN runs on that
// row alone, and the row equals the full forward's (dense, pruned before the FFN or after it, in
// passes), with one row per sequence and the FFN's FLOPs of the other rows saved.
TEST_F(EncoderTest, ClsOnlyOutputEqualsTheFullForwardsClsRow) {
  const auto inputs = sample_inputs(shape_.vocab);
  const int64_t one_pass = encoder_->rows_per_pass();
  for (const char* spec : {"dense", "spatten:tokens=0.4,heads=0.5", "spatten:tokens=0.3,start=0,at=next", "ltp:final=0.05"}) {
    for (const int64_t rows_per_pass : {one_pass, int64_t{20}}) {
      auto chain = parse_policy_spec(spec, encoder_->config());
      ForwardStats full_stats, cls_stats;
      const auto full = encoder_->forward(inputs, {chain.get()}, &full_stats);
      ForwardOptions options{chain.get()};
      options.cls_only_output = true;
      encoder_->set_rows_per_pass(rows_per_pass);
      const auto cls = encoder_->forward(inputs, options, &cls_stats);
      encoder_->set_rows_per_pass(one_pass);
      for (size_t i = 0; i < inputs.size(); ++i) {
        ASSERT_EQ(cls[i].hidden.dim(0), 1) << spec;
        ASSERT_EQ(cls[i].positions, std::vector<int32_t>{0}) << spec;
        const std::vector<float> expected = BertEncoder::cls_vector(full[i]), got = BertEncoder::cls_vector(cls[i]);
        for (size_t c = 0; c < expected.size(); ++c) ASSERT_NEAR(got[c], expected[c], 1e-5) << spec << " input " << i;
      }
      EXPECT_EQ(cls_stats.tokens_per_layer, full_stats.tokens_per_layer) << spec;
      EXPECT_LT(cls_stats.flops, full_stats.flops) << spec;
    }
  }
}

TEST_F(EncoderTest, CascadeKeepsScheduledCountAndSpecialTokens) {
  const auto inputs = sample_inputs(shape_.vocab);
  auto chain = parse_policy_spec("spatten:tokens=0.25,start=0", encoder_->config());
  ForwardStats stats;
  const auto out = encoder_->forward(inputs, {chain.get()}, &stats);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int64_t prunable = static_cast<int64_t>(inputs[i].ids.size()) - 2;
    const int64_t expected = 2 + static_cast<int64_t>(std::ceil(0.25 * static_cast<double>(prunable) - 1e-9));
    EXPECT_EQ(static_cast<int64_t>(out[i].positions.size()), expected) << "input " << i;
    EXPECT_EQ(out[i].positions.front(), 0);                                               // [CLS]
    EXPECT_EQ(out[i].positions.back(), static_cast<int32_t>(inputs[i].ids.size()) - 1);  // [SEP]
  }
  // Fewer tokens in every later layer than in the first, and FLOPs below dense.
  ForwardStats dense_stats;
  encoder_->forward(inputs, {}, &dense_stats);
  EXPECT_LT(stats.flops, dense_stats.flops);
  EXPECT_LT(stats.tokens_per_layer.back(), dense_stats.tokens_per_layer.back());
}

TEST_F(EncoderTest, FlopsCountMatchesShapes) {
  EncoderInput in;
  in.ids = {2, 7, 8, 9, 3};
  ForwardStats stats;
  encoder_->forward(std::span(&in, 1), {}, &stats);
  const double n = 5, H = shape_.hidden, I = shape_.intermediate, L = shape_.layers;
  const double per_layer = 2 * n * 3 * H * H + 4 * n * n * H + 2 * n * H * H + 4 * n * H * I;
  EXPECT_DOUBLE_EQ(stats.flops, L * per_layer);
}

TEST_F(EncoderTest, BadInputsGiveClearErrors) {
  EncoderInput empty;
  EXPECT_THROW(encoder_->forward(std::span(&empty, 1)), Error);
  EncoderInput out_of_vocab;
  out_of_vocab.ids = {2, 100000, 3};
  EXPECT_THROW(encoder_->forward(std::span(&out_of_vocab, 1)), Error);
  EncoderInput too_long;
  too_long.ids.assign(static_cast<size_t>(shape_.positions) + 1, 7);
  EXPECT_THROW(encoder_->forward(std::span(&too_long, 1)), Error);
}

TEST(PolicySpec, BadSpecsAreRejectedClearly) {
  const auto message = testing::policy_spec_error;
  EXPECT_NE(message("magic:x=1").find("unknown policy"), std::string::npos);
  EXPECT_NE(message("spatten:tokens=1.5").find("outside [0, 1]"), std::string::npos);
  EXPECT_NE(message("spatten:tokens=-0.1").find("outside [0, 1]"), std::string::npos);
  EXPECT_NE(message("spatten:heads=abc").find("not a number"), std::string::npos);
  EXPECT_NE(message("ltp:thresholds=0.1/0.2").find("has 2 values but the model has 6 layers"), std::string::npos);
  EXPECT_NE(message("ltp:final=0.1,bogus=1").find("unknown option"), std::string::npos);
  EXPECT_NE(message("ltp").find("exactly one of"), std::string::npos);
  EXPECT_NE(message("spatten:tokens=0.5,at=later").find("expected ffn or next"), std::string::npos);
  EXPECT_NE(message("").find("empty spec"), std::string::npos);
  EXPECT_NE(message("spatten:start=9,tokens=0.5").find("must be an integer in [0, "), std::string::npos);
  EXPECT_EQ(message("spatten:tokens=0.5,heads=0.75+ltp:final=0.02"), "no error");
}

}  // namespace
}  // namespace sieve
