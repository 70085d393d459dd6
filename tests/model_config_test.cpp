#include "model/model_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "util/error.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// MiniLM's config.json, trimmed to what the loader reads plus one field it ignores.
json minilm_config() {
  return {
      {"architectures", {"BertModel"}},
      {"hidden_act", "gelu"},
      {"hidden_size", 384},
      {"intermediate_size", 1536},
      {"layer_norm_eps", 1e-12},
      {"max_position_embeddings", 512},
      {"model_type", "bert"},
      {"num_attention_heads", 12},
      {"num_hidden_layers", 6},
      {"pad_token_id", 0},
      {"type_vocab_size", 2},
      {"vocab_size", 30522},
      {"position_embedding_type", "absolute"},
  };
}

class ModelConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("sieve_config_" + std::to_string(::getpid()) + "_" + test->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_text(const std::string& text) {
    std::ofstream(dir_ / "config.json") << text;
    return dir_ / "config.json";
  }
  fs::path write(const json& config) { return write_text(config.dump(2)); }

  // MiniLM's config with one field replaced (or removed, when `value` is absent).
  fs::path write_with(const std::string& field, const std::optional<json>& value) {
    json config = minilm_config();
    if (value) {
      config[field] = *value;
    } else {
      config.erase(field);
    }
    return write(config);
  }

  fs::path dir_;
};

void expect_load_error(const fs::path& file, std::initializer_list<std::string> words) {
  std::string message = "<no sieve::Error thrown>";
  try {
    ModelConfig::load(file);
  } catch (const Error& e) {
    message = e.what();
  }
  for (const std::string& word : words) {
    EXPECT_NE(message.find(word), std::string::npos) << "message lacks '" << word << "': " << message;
  }
}

TEST_F(ModelConfigTest, ReadsMiniLMConfig) {
  const ModelConfig config = ModelConfig::load(write(minilm_config()));
  EXPECT_EQ(config.model_type, "bert");
  EXPECT_EQ(config.architectures, std::vector<std::string>{"BertModel"});
  EXPECT_EQ(config.vocab_size, 30522);
  EXPECT_EQ(config.hidden_size, 384);
  EXPECT_EQ(config.num_hidden_layers, 6);
  EXPECT_EQ(config.num_attention_heads, 12);
  EXPECT_EQ(config.head_dim(), 32);
  EXPECT_EQ(config.intermediate_size, 1536);
  EXPECT_EQ(config.hidden_act, Activation::GeluErf);
  EXPECT_EQ(config.layer_norm_eps, 1e-12);
  EXPECT_EQ(config.max_position_embeddings, 512);
  EXPECT_EQ(config.type_vocab_size, 2);
  EXPECT_EQ(config.pad_token_id, 0);
  EXPECT_EQ(config.num_labels(), 0);
  EXPECT_EQ(config.problem_type, "");
}

TEST_F(ModelConfigTest, AcceptsTheCheckpointDirectory) {
  write(minilm_config());
  EXPECT_EQ(ModelConfig::load(dir_).hidden_size, 384);
}

TEST_F(ModelConfigTest, MissingFileNamesTheDirectory) {
  expect_load_error(dir_, {"config.json not found in", dir_.string()});
  expect_load_error(dir_ / "config.json", {"config.json not found in", dir_.string()});
  expect_load_error(dir_ / "nowhere" / "config.json", {"config.json not found in"});
}

TEST_F(ModelConfigTest, RejectsTextThatIsNotAJsonObject) {
  expect_load_error(write_text(""), {"config.json", "not valid JSON"});
  expect_load_error(write_text("{\"hidden_size\": 384,"), {"not valid JSON"});
  expect_load_error(write_text("[1, 2]"), {"must be a JSON object"});
}

TEST_F(ModelConfigTest, RejectsHugeOrDeeplyNestedFilesWithoutCrashing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  // Written as text: the JSON library's own dump() would recurse 100000 deep.
  expect_load_error(write_text(R"({"model_type":"bert","architectures":[)" + deep + "]}"), {"nested deeper than 64"});
  expect_load_error(write_text(R"({"model_type":"bert","vocab_size":5,"hidden_size":)" + deep + "}"), {"nested deeper than 64"});
  expect_load_error(write_text(std::string(17 << 20, ' ')), {"larger than the 16 MiB"});
}

TEST_F(ModelConfigTest, DefaultsOptionalFieldsLikeHuggingFace) {
  json config = minilm_config();
  for (const char* field : {"hidden_act", "layer_norm_eps", "type_vocab_size", "pad_token_id", "architectures"}) {
    config.erase(field);
  }
  const ModelConfig loaded = ModelConfig::load(write(config));
  EXPECT_EQ(loaded.hidden_act, Activation::GeluErf);
  EXPECT_EQ(loaded.layer_norm_eps, 1e-12);
  EXPECT_EQ(loaded.type_vocab_size, 2);
  EXPECT_EQ(loaded.pad_token_id, 0);
  EXPECT_TRUE(loaded.architectures.empty());

  EXPECT_EQ(ModelConfig::load(write_with("pad_token_id", json(nullptr))).pad_token_id, 0);
}

TEST_F(ModelConfigTest, RequiresEachSizeField) {
  for (const char* field : {"model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "max_position_embeddings"}) {
    SCOPED_TRACE(field);
    expect_load_error(write_with(field, std::nullopt), {"config.json", std::string("'") + field + "'", "missing"});
    expect_load_error(write_with(field, json(nullptr)), {std::string("'") + field + "'", "missing"});
  }
}

TEST_F(ModelConfigTest, RejectsWrongTypes) {
  for (const char* field : {"vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "type_vocab_size"}) {
    SCOPED_TRACE(field);
    expect_load_error(write_with(field, "384"), {std::string("'") + field + "'", "integer"});
    expect_load_error(write_with(field, 384.5), {std::string("'") + field + "'", "integer"});
    expect_load_error(write_with(field, true), {std::string("'") + field + "'", "integer"});
  }
  expect_load_error(write_with("model_type", 7), {"'model_type'", "string"});
  expect_load_error(write_with("hidden_act", json::array({"gelu"})), {"'hidden_act'", "string"});
  expect_load_error(write_with("layer_norm_eps", "1e-12"), {"'layer_norm_eps'", "number"});
  expect_load_error(write_with("architectures", "BertModel"), {"'architectures'", "array"});
  expect_load_error(write_with("architectures", json::array({1})), {"'architectures'", "string"});
}

TEST_F(ModelConfigTest, RejectsNonPositiveAndHugeSizes) {
  for (const char* field : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "max_position_embeddings", "type_vocab_size"}) {
    SCOPED_TRACE(field);
    expect_load_error(write_with(field, 0), {std::string("'") + field + "'", "positive"});
    expect_load_error(write_with(field, -1), {std::string("'") + field + "'", "positive"});
    expect_load_error(write_with(field, 1LL << 40), {std::string("'") + field + "'", "too large"});
  }
  expect_load_error(write_text(R"({"model_type":"bert","vocab_size":18446744073709551615})"), {"'vocab_size'", "too large"});
  expect_load_error(write_with("layer_norm_eps", 0), {"'layer_norm_eps'", "positive"});
  expect_load_error(write_with("layer_norm_eps", -1e-5), {"'layer_norm_eps'", "positive"});
  expect_load_error(write_with("pad_token_id", -1), {"'pad_token_id'", "negative"});
  expect_load_error(write_with("pad_token_id", 30522), {"'pad_token_id'", "outside the vocabulary"});
}

TEST_F(ModelConfigTest, RejectsHiddenSizeNotDivisibleByHeads) {
  expect_load_error(write_with("num_attention_heads", 5), {"'hidden_size'", "384", "not divisible", "5"});
}

TEST_F(ModelConfigTest, MapsActivations) {
  EXPECT_EQ(ModelConfig::load(write_with("hidden_act", "gelu")).hidden_act, Activation::GeluErf);
  EXPECT_EQ(ModelConfig::load(write_with("hidden_act", "gelu_new")).hidden_act, Activation::GeluTanh);
  EXPECT_EQ(ModelConfig::load(write_with("hidden_act", "gelu_pytorch_tanh")).hidden_act, Activation::GeluTanh);
  EXPECT_EQ(ModelConfig::load(write_with("hidden_act", "relu")).hidden_act, Activation::Relu);
  expect_load_error(write_with("hidden_act", "swish"), {"'hidden_act'", "swish", "gelu_new", "relu"});
  EXPECT_EQ(activation_name(Activation::GeluTanh), "gelu_tanh");
}

TEST_F(ModelConfigTest, RejectsUnsupportedModelTypeListingSupported) {
  expect_load_error(write_with("model_type", "gpt2"), {"'model_type'", "gpt2", "not supported", "bert"});
}

TEST_F(ModelConfigTest, ReadsClassificationLabels) {
  json config = minilm_config();
  config["id2label"] = {{"1", "POSITIVE"}, {"0", "NEGATIVE"}};
  config["label2id"] = {{"NEGATIVE", 0}, {"POSITIVE", 1}};
  config["problem_type"] = "single_label_classification";
  const ModelConfig loaded = ModelConfig::load(write(config));
  EXPECT_EQ(loaded.id2label, (std::vector<std::string>{"NEGATIVE", "POSITIVE"}));
  EXPECT_EQ(loaded.num_labels(), 2);
  EXPECT_EQ(loaded.problem_type, "single_label_classification");

  config.erase("id2label");
  config["num_labels"] = 3;
  EXPECT_EQ(ModelConfig::load(write(config)).id2label, (std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"}));

  EXPECT_EQ(ModelConfig::load(write_with("problem_type", json(nullptr))).problem_type, "");
}

TEST_F(ModelConfigTest, RejectsInconsistentLabels) {
  expect_load_error(write_with("id2label", json::array({"A", "B"})), {"'id2label'", "object"});
  expect_load_error(write_with("id2label", json{{"0", "A"}, {"2", "C"}}), {"'id2label'", "0..1", "'2'"});
  expect_load_error(write_with("id2label", json{{"0", "A"}, {"x", "B"}}), {"'id2label'", "'x'"});
  expect_load_error(write_with("id2label", json{{"1", "A"}, {"01", "B"}}), {"'id2label'", "'1'"});
  expect_load_error(write_with("id2label", json{{"0", 5}}), {"'id2label'", "string"});
  expect_load_error(write_with("id2label", json{{"-1", "A"}}), {"'id2label'", "'-1'"});
  expect_load_error(write_with("num_labels", 0), {"'num_labels'", "positive"});

  json config = minilm_config();
  config["id2label"] = {{"0", "A"}, {"1", "B"}};
  config["num_labels"] = 3;
  expect_load_error(write(config), {"'num_labels'", "3", "2 entries"});
  expect_load_error(write_with("problem_type", "ranking"), {"'problem_type'", "ranking", "regression"});
}

TEST(ModelConfigRealModel, LoadsMiniLMConfig) {
  const char* env = std::getenv("SIEVE_DEFAULT_MODEL");
  if (env == nullptr || *env == '\0') GTEST_SKIP() << "SIEVE_DEFAULT_MODEL not set";
  fs::path dir = env;
  if (!fs::is_directory(dir)) dir = dir.parent_path();
  const ModelConfig config = ModelConfig::load(dir);
  EXPECT_EQ(config.model_type, "bert");
  EXPECT_EQ(config.hidden_size, 384);
  EXPECT_EQ(config.num_hidden_layers, 6);
  EXPECT_EQ(config.num_attention_heads, 12);
  EXPECT_EQ(config.vocab_size, 30522);
  EXPECT_EQ(config.hidden_act, Activation::GeluErf);
}

}  // namespace
}  // namespace sieve
