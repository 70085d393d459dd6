// End to end: the CUDA encoder against the CPU encoder on the fine-tuned MiniLM (models/minilm-sst2,
// or $SIEVE_CUDA_TEST_MODEL), dense and with SpAtten token pruning, plus the statistics a policy
// sees. Skips without a device or without the model.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "cuda/cuda_encoder.h"
#include "../tiny_bert.h"
#include "cuda_test_util.h"
#include "model/text_model.h"
#include "policies/policy_spec.h"

namespace sieve::cuda {
namespace {

std::filesystem::path model_dir() {
  const char* env = std::getenv("SIEVE_CUDA_TEST_MODEL");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path(SIEVE_SOURCE_DIR) / "models" / "minilm-sst2";
}

const std::vector<TextPair>& sentences() {
  static const std::vector<TextPair> texts{
      {"As a visual treat, the film is almost perfect.", ""},
      {"it's a charming and often affecting journey.", ""},
      {"unflinchingly bleak and desperate", ""},
      {"the acting, costumes, music, cinematography and sound are all astounding given the production's austere "
       "locales.",
       ""},
      {"it's slow -- very, very slow.", ""},
      {"a sometimes tedious film.", ""},
      {"Is this the right answer?", "Yes, and the question was a long one with many words in it to make it longer."},
      {"the story is a rather simplistic one : grief drives her , love drives him , and a second chance to find "
       "love in the most unlikely place - it struck a chord in me . this is a film that takes its time , lets the "
       "characters breathe , and trusts the audience ; i wish more films did , although the ending drags .",
       ""},
      {"ok", ""},
  };
  return texts;
}

class CudaEncoderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!device_available() || !std::filesystem::exists(model_dir() / "model.safetensors")) return;
    cpu_ = new TextModel(TextModel::load(model_dir()));
    gpu_ = new CudaBertEncoder(CudaBertEncoder::load(model_dir()));
  }
  static void TearDownTestSuite() {
    delete gpu_;
    delete cpu_;
    gpu_ = nullptr;
    cpu_ = nullptr;
  }
  void SetUp() override {
    SIEVE_REQUIRE_CUDA_DEVICE();
    if (!cpu_) GTEST_SKIP() << "model not found: " << model_dir() << " (set SIEVE_CUDA_TEST_MODEL)";
  }
  static TextModel* cpu_;
  static CudaBertEncoder* gpu_;
};
TextModel* CudaEncoderTest::cpu_ = nullptr;
CudaBertEncoder* CudaEncoderTest::gpu_ = nullptr;

float max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST_F(CudaEncoderTest, DenseLogitsAndHiddenStatesMatchCpu) {
  const EncodedBatch batch = cpu_->encode(sentences());
  ForwardStats cpu_stats, gpu_stats;
  const auto cpu_out = cpu_->encoder().forward(batch.inputs, {}, &cpu_stats);
  const auto gpu_out = gpu_->forward(batch.inputs, {}, &gpu_stats);
  ASSERT_EQ(gpu_out.size(), cpu_out.size());
  EXPECT_DOUBLE_EQ(gpu_stats.flops, cpu_stats.flops);
  for (size_t i = 0; i < cpu_out.size(); ++i) {
    ASSERT_EQ(gpu_out[i].hidden.shape(), cpu_out[i].hidden.shape());
    EXPECT_EQ(gpu_out[i].positions, cpu_out[i].positions);
    // FP16 activations through 6 layers: hidden states (LayerNorm outputs, O(1)) within a few 1e-2.
    EXPECT_LT(max_abs({gpu_out[i].hidden.data(), gpu_out[i].hidden.data() + gpu_out[i].hidden.size()},
                      {cpu_out[i].hidden.data(), cpu_out[i].hidden.data() + cpu_out[i].hidden.size()}),
              0.1f)
        << "sentence " << i;
    const auto cpu_logits = cpu_->encoder().classify(cpu_out[i]);
    const auto gpu_logits = gpu_->classify(gpu_out[i]);
    EXPECT_LT(max_abs(gpu_logits, cpu_logits), 0.05f) << "sentence " << i;
    EXPECT_EQ(std::max_element(gpu_logits.begin(), gpu_logits.end()) - gpu_logits.begin(),
              std::max_element(cpu_logits.begin(), cpu_logits.end()) - cpu_logits.begin());
  }
}

TEST_F(CudaEncoderTest, BatchedEqualsOneAtATime) {
  const EncodedBatch batch = cpu_->encode(sentences());
  const auto together = gpu_->forward(batch.inputs);
  for (size_t i = 0; i < batch.inputs.size(); ++i) {
    const auto alone = gpu_->forward(std::span(batch.inputs).subspan(i, 1));
    EXPECT_LT(max_abs(gpu_->classify(alone[0]), gpu_->classify(together[i])), 1e-2f) << "sentence " << i;
  }
}

// Records what a policy is shown, to compare the two backends' views.
class RecordingPolicy : public LayerPolicy {
 public:
  std::string describe() const override { return "record"; }
  PolicyNeeds needs() const override { return {true, true}; }
  void after_attention(const AttentionLayerView& view, PruneDecision&) override {
    received.emplace_back(view.received.begin(), view.received.end());
    magnitude.emplace_back(view.head_magnitude.begin(), view.head_magnitude.end());
  }
  std::vector<std::vector<std::vector<float>>> received, magnitude;  // [layer][sequence][...]
};

TEST_F(CudaEncoderTest, PoliciesSeeTheSameStatistics) {
  const EncodedBatch batch = cpu_->encode(sentences());
  RecordingPolicy cpu_rec, gpu_rec;
  cpu_->encoder().forward(batch.inputs, {&cpu_rec});
  gpu_->forward(batch.inputs, {&gpu_rec}, nullptr, {.hidden_to_policies = false});
  ASSERT_EQ(gpu_rec.received.size(), cpu_rec.received.size());
  for (size_t l = 0; l < cpu_rec.received.size(); ++l) {
    for (size_t s = 0; s < cpu_rec.received[l].size(); ++s) {
      const auto& c = cpu_rec.received[l][s];
      const auto& g = gpu_rec.received[l][s];
      ASSERT_EQ(g.size(), c.size());
      // Column sums of probabilities: each is O(1) (a head's row sums to 1).
      EXPECT_LT(max_abs(g, c), 0.05f + 0.02f * static_cast<float>(l)) << "layer " << l << " sequence " << s;
      const auto& cm = cpu_rec.magnitude[l][s];
      const auto& gm = gpu_rec.magnitude[l][s];
      for (size_t h = 0; h < cm.size(); ++h) EXPECT_NEAR(gm[h], cm[h], 0.03 * std::abs(cm[h]) + 1e-3) << "layer " << l;
    }
  }
}

TEST_F(CudaEncoderTest, PrunedLogitsMatchCpu) {
  for (const char* spec : {"spatten:tokens=0.5", "spatten:tokens=0.5,heads=0.75", "ltp:final=0.02"}) {
    const EncodedBatch batch = cpu_->encode(sentences());
    auto cpu_policy = parse_policy_spec(spec, cpu_->encoder().config());
    auto gpu_policy = parse_policy_spec(spec, gpu_->config());
    ForwardStats cpu_stats, gpu_stats;
    const auto cpu_out = cpu_->encoder().forward(batch.inputs, {cpu_policy.get()}, &cpu_stats);
    const auto gpu_out = gpu_->forward(batch.inputs, {gpu_policy.get()}, &gpu_stats, {.hidden_to_policies = false});
    // Near-ties in the importance scores may rank differently in FP16; most selections must agree,
    // and where the kept tokens agree the logits must too.
    size_t same = 0;
    for (size_t i = 0; i < cpu_out.size(); ++i) {
      if (gpu_out[i].positions != cpu_out[i].positions) continue;
      ++same;
      EXPECT_LT(max_abs(gpu_->classify(gpu_out[i]), cpu_->encoder().classify(cpu_out[i])), 0.08f)
          << spec << " sentence " << i;
    }
    EXPECT_GE(3 * same, 2 * cpu_out.size()) << spec << ": " << same << " of " << cpu_out.size() << " kept the same tokens";
    EXPECT_LT(gpu_stats.flops, 0.95 * [&] {
      ForwardStats dense;
      gpu_->forward(batch.inputs, {}, &dense);
      return dense.flops;
    }()) << spec;
  }
}

// A tiny random BERT (head_dim 32) needs no downloaded model: the forward pass, packing, pruning
// and compaction on the GPU against the CPU encoder, in any checkout.
TEST(CudaTinyBert, MatchesCpuDenseAndPruned) {
  SIEVE_REQUIRE_CUDA_DEVICE();
  const auto dir = sieve::testing::make_tiny_bert("cuda", {.layers = 3, .hidden = 128, .heads = 4, .intermediate = 256,
                                                           .vocab = 120, .positions = 64, .labels = 2});
  const BertEncoder cpu = BertEncoder::load(dir);
  const CudaBertEncoder gpu = CudaBertEncoder::load(dir);
  std::vector<EncoderInput> inputs;
  for (int n : {2, 5, 33, 64, 17}) {
    EncoderInput in;
    for (int i = 0; i < n; ++i) in.ids.push_back(i == 0 ? 2 : i == n - 1 ? 3 : 5 + (i * 37 + n) % 115);
    inputs.push_back(std::move(in));
  }
  for (const char* spec : {"dense", "spatten:tokens=0.5,heads=0.5", "spatten:tokens=0.3,at=next"}) {
    auto cpu_policy = parse_policy_spec(spec, cpu.config());
    auto gpu_policy = parse_policy_spec(spec, gpu.config());
    ForwardOptions cpu_opt, gpu_opt;
    if (!cpu_policy->empty()) cpu_opt.policy = cpu_policy.get();
    if (!gpu_policy->empty()) gpu_opt.policy = gpu_policy.get();
    ForwardStats cpu_stats, gpu_stats;
    const auto c = cpu.forward(inputs, cpu_opt, &cpu_stats);
    const auto g = gpu.forward(inputs, gpu_opt, &gpu_stats);
    size_t same = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      if (g[i].positions != c[i].positions) continue;
      ++same;
      EXPECT_LT(max_abs(gpu.classify(g[i]), cpu.classify(c[i])), 0.05f) << spec << " input " << i;
      EXPECT_LT(max_abs({g[i].hidden.data(), g[i].hidden.data() + g[i].hidden.size()},
                        {c[i].hidden.data(), c[i].hidden.data() + c[i].hidden.size()}),
                0.05f)
          << spec << " input " << i;
    }
    EXPECT_GE(same + 1, c.size()) << spec;
    if (std::string(spec) == "dense") {
      EXPECT_DOUBLE_EQ(gpu_stats.flops, cpu_stats.flops);
      EXPECT_EQ(gpu_stats.tokens_per_layer, cpu_stats.tokens_per_layer);
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sieve::cuda
