// GPT-2's byte-level BPE against Hugging Face's GPT2TokenizerFast on the real GPT-2 vocabulary.
#include <gtest/gtest.h>

#include <filesystem>

#include "gpt2_reference.h"
#include "tokenizers/byte_bpe.h"
#include "util/error.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;

class ByteBpeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SIEVE_REQUIRE_FILE(testing::gpt2_model_dir() / "reference.json");
    reference_ = testing::load_gpt2_reference();
    tokenizer_ = std::make_unique<ByteLevelBpe>(ByteLevelBpe::from_model_dir(testing::gpt2_model_dir()));
  }
  nlohmann::json reference_;
  std::unique_ptr<ByteLevelBpe> tokenizer_;
};

TEST_F(ByteBpeTest, IdsMatchTransformersOnEveryCase) {
  const auto& cases = reference_.at("tokenizer");
  ASSERT_GE(cases.size(), 200u);
  size_t mismatches = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const auto ids = tokenizer_->encode(text);
    if (ids != c.at("ids").get<std::vector<int32_t>>()) ++mismatches;
    EXPECT_EQ(ids, c.at("ids").get<std::vector<int32_t>>()) << "text: '" << text << "'";
  }
  EXPECT_EQ(mismatches, 0u) << "of " << cases.size();
}

TEST_F(ByteBpeTest, DecodeInvertsEncode) {
  for (const auto& c : reference_.at("tokenizer")) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text)), text);
  }
}

TEST_F(ByteBpeTest, TokenizerJsonGivesTheSameIds) {
  const fs::path dir = fs::temp_directory_path() / ("sieve-bpe-json-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(testing::gpt2_model_dir() / "tokenizer.json", dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  const ByteLevelBpe from_json = ByteLevelBpe::from_model_dir(dir);
  fs::remove_all(dir);
  for (const auto& c : reference_.at("tokenizer"))
    EXPECT_EQ(from_json.encode(c.at("text").get<std::string>()), c.at("ids").get<std::vector<int32_t>>());
}

TEST_F(ByteBpeTest, SpecialTokenAndVocabulary) {
  EXPECT_EQ(tokenizer_->vocab_size(), 50257);
  EXPECT_EQ(tokenizer_->token_id("<|endoftext|>"), 50256);
  EXPECT_EQ(tokenizer_->encode("<|endoftext|>"), std::vector<int32_t>{50256});
  EXPECT_EQ(tokenizer_->token_bytes(50256), "<|endoftext|>");
  EXPECT_THROW(tokenizer_->token_bytes(50257), Error);
  EXPECT_THROW(tokenizer_->token_bytes(-1), Error);
}

TEST_F(ByteBpeTest, InvalidUtf8IsAnError) {
  for (const std::string bad : {std::string("\xff"), std::string("ab\xc3"), std::string("\xc0\xaf"), std::string("\xed\xa0\x80"),
                                std::string("ok \x80 no")}) {
    EXPECT_THROW(tokenizer_->encode(bad), Error) << bad;
  }
}

TEST(ByteBpeFiles, MissingOrBrokenFilesAreErrors) {
  const fs::path dir = fs::temp_directory_path() / ("sieve-bpe-bad-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  EXPECT_THROW(ByteLevelBpe::from_model_dir(dir), Error);
  std::ofstream(dir / "vocab.json") << "{\"a\": 0";  // truncated JSON
  std::ofstream(dir / "merges.txt") << "#version: 0.2\n";
  EXPECT_THROW(ByteLevelBpe::from_model_dir(dir), Error);
  std::ofstream(dir / "vocab.json") << "{\"a\": 0}";  // lacks the 256 byte tokens
  EXPECT_THROW(ByteLevelBpe::from_model_dir(dir), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sieve
