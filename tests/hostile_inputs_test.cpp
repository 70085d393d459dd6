// Hostile inputs through the library: the findings of issue 18 and the limits that close them.
// Each case is something a crafted file or text did before the fix (a hang, a crash, an
// allocation until the OOM killer, a silently wrong number) and must now be a clear Error or a
// bounded amount of work. Time bounds are generous (sanitizer builds are slower); the inputs were
// chosen so that the old code took minutes.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>

#include "gpt2_reference.h"
#include "kernels/row_kernels.h"
#include "model/exit_heads.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/text_model.h"
#include "policies/generation_policy.h"
#include "policies/policy_spec.h"
#include "test_helpers.h"
#include "tiny_bert.h"
#include "tokenizers/byte_bpe.h"
#include "tokenizers/unicode_text.h"
#include "tokenizers/wordpiece.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;

// The message of the Error f throws, or "no error".
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

double seconds_to_run(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class HostileInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sieve-hostile-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }
  fs::path dir_;
};

#define EXPECT_ERROR_HAS(statement, part)                              \
  do {                                                                 \
    const std::string message = error_of([&] { statement; });          \
    EXPECT_NE(message.find(part), std::string::npos) << message;      \
  } while (0)

// ---- One bounded JSON reader ---------------------------------------------------------------------

TEST_F(HostileInputsTest, JsonReaderRefusesDeepNestingDuplicatesNulAndOversizedFiles) {
  EXPECT_ERROR_HAS(parse_json_text(std::string(100000, '[') + std::string(100000, ']'), "x"), "nested deeper than 64");
  EXPECT_EQ(parse_json_text(std::string(64, '[') + std::string(64, ']'), "x").dump().size(), 128u);
  EXPECT_ERROR_HAS(parse_json_text(R"({"a": 1, "b": {"c": 1, "c": 2}})", "x"), "'c' appears twice");
  EXPECT_EQ(parse_json_text(R"({"a": {"c": 1}, "b": {"c": 2}})", "x").size(), 2u);  // same key, other objects
  EXPECT_ERROR_HAS(parse_json_text(std::string("{\"a\": 1}\0{", 10), "x"), "NUL byte");
  EXPECT_ERROR_HAS(read_json_file(write("big.json", "[" + std::string(2000, ' ') + "]"), 1000), "larger than the 1000 bytes");
  EXPECT_ERROR_HAS(read_json_file(dir_ / "absent.json", 1000), "not found");
  EXPECT_TRUE(read_json_file_if_exists(dir_ / "absent.json", 1000).is_null());
  fs::create_symlink("loop", dir_ / "loop");  // a link to itself
  EXPECT_ERROR_HAS(read_json_file_if_exists(dir_ / "loop", 1000), "loop");
  EXPECT_ERROR_HAS(json_integer(nlohmann::json(int64_t{1} << 40), 0, 100, "layer"), "layer must be an integer from 0 to 100");
  EXPECT_ERROR_HAS(json_integer(nlohmann::json(2.5), 0, 100, "layer"), "got 2.5");
  EXPECT_EQ(json_integer(nlohmann::json(7), 0, 100, "layer"), 7);
}

TEST_F(HostileInputsTest, LineReaderBoundsEveryLine) {
  std::istringstream ok("a\r\nbb\n\nccc");
  LineReader lines(ok, "ok", 3);
  std::vector<std::string> got;
  for (std::string line; lines.next(line);) got.push_back(line);
  EXPECT_EQ(got, (std::vector<std::string>{"a", "bb", "", "ccc"}));
  std::istringstream nuls("two\nlines\n" + std::string(1 << 20, '\0'));
  LineReader long_lines(nuls, "stdin", 1000);
  std::string line;
  EXPECT_TRUE(long_lines.next(line) && long_lines.next(line));
  EXPECT_ERROR_HAS(long_lines.next(line), "stdin:3: line longer than the 1000 bytes limit");
}

// ---- Finding 2: a safetensors header with 100k entries parses in linear time -------------------

TEST_F(HostileInputsTest, SafetensorsHeaderWithManyEntriesParsesQuickly) {
  std::string header = "{";
  for (int i = 0; i < 100000; ++i) {
    header += (i ? ",\"t" : "\"t") + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
  }
  header += "}";
  const uint64_t length = header.size();
  const fs::path file = write("many.safetensors", std::string(reinterpret_cast<const char*>(&length), 8) + header);
  const double seconds = seconds_to_run([&] { EXPECT_EQ(SafetensorsFile::open(file).names().size(), 100000u); });
  EXPECT_LT(seconds, 20.0) << "a 1.2 MB header took " << seconds << " s (it was > 120 s when parsing was quadratic)";
}

// ---- Finding 7 and integrity: NaN/Inf weights and shapes are refused at load ----------------------

TEST_F(HostileInputsTest, NonFiniteWeightsAreRefusedWithTheTensorName) {
  Tensor weights({2, 3});
  for (int64_t i = 0; i < weights.size(); ++i) weights.data()[i] = 0.5f;
  weights.data()[4] = std::numeric_limits<float>::quiet_NaN();
  write_safetensors(dir_ / "nan.safetensors", {{"encoder.layer.0.attention.self.query.weight", &weights}});
  EXPECT_ERROR_HAS(SafetensorsFile::open(dir_ / "nan.safetensors").load_f32("encoder.layer.0.attention.self.query.weight"),
                   "'encoder.layer.0.attention.self.query.weight'");
  EXPECT_ERROR_HAS(SafetensorsFile::open(dir_ / "nan.safetensors").load_f32("encoder.layer.0.attention.self.query.weight"),
                   "NaN at element 4");
  weights.data()[4] = std::numeric_limits<float>::infinity();
  write_safetensors(dir_ / "inf.safetensors", {{"w", &weights}});
  EXPECT_ERROR_HAS(SafetensorsFile::open(dir_ / "inf.safetensors").load_f32("w"), "infinity at element 4");
  EXPECT_ERROR_HAS(SafetensorsFile::open(dir_ / "inf.safetensors").load_f32("w", {3, 2}), "expected [3, 2]");
}

TEST_F(HostileInputsTest, NanReachesTheOutputInsteadOfBecomingAFiniteNumber) {
  // The AVX-512 exp clamped NaN to exp(88.37): a NaN score gave finite, wrong probabilities.
  std::vector<float> scores(32, 1.0f);
  scores[3] = std::numeric_limits<float>::quiet_NaN();
  row_kernels().softmax(scores.data(), static_cast<int64_t>(scores.size()));
  EXPECT_TRUE(std::isnan(scores[3]));
}

TEST_F(HostileInputsTest, ModelDirectoryFilesWithBadValuesGiveClearErrors) {
  const fs::path model = testing::make_tiny_bert("hostile-files", testing::TinyBertShape{.labels = 2});
  const auto expect_load_error = [&](const std::string& file, const std::string& text, const std::string& part) {
    const fs::path path = model / file;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::trunc) << text;
    EXPECT_ERROR_HAS(TextModel::load(model), part);
    fs::remove(path);
  };
  expect_load_error("1_Pooling/config.json", R"({"pooling_mode_mean_tokens": "yes"})", "'pooling_mode_mean_tokens' must be a boolean");
  expect_load_error("modules.json", R"({"type": 1})", "modules.json: must be a JSON array");
  expect_load_error("modules.json", R"([{"type": 5}])", "'type' must be a string");
  expect_load_error("sentence_bert_config.json", R"({"max_seq_length": -4})", "max_seq_length");
  expect_load_error("exits/exits.json", R"({"format": "sieve-exits"})", "'variant' is missing");
  // Finding 4: a 700-byte config declaring 2^31 - 1 labels allocated a name for each.
  const nlohmann::json config = read_json_file(model / "config.json", kMaxSmallJsonBytes);
  nlohmann::json huge_labels = config;
  huge_labels.erase("id2label");
  huge_labels["num_labels"] = 2147483647;
  std::ofstream(model / "config.json", std::ios::trunc) << huge_labels.dump();
  EXPECT_ERROR_HAS(ModelConfig::load(model), "more than the 1048576 classes");
  std::ofstream(model / "config.json", std::ios::trunc) << config.dump();
  // A scalar classifier weight ended as an uncaught std::out_of_range ("internal error").
  SafetensorsFile weights = SafetensorsFile::open(model / "model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const std::string& name : weights.names()) tensors.emplace(name, weights.load_f32(name));
  tensors.insert_or_assign("classifier.weight", Tensor(std::vector<int64_t>{}));
  std::vector<std::pair<std::string, const Tensor*>> list;
  for (const auto& [name, tensor] : tensors) list.emplace_back(name, &tensor);
  write_safetensors(model / "model.safetensors", list);
  EXPECT_ERROR_HAS(TextModel::load(model), "'classifier.weight'");
  fs::remove_all(model);
}

TEST_F(HostileInputsTest, ExitsJsonValuesAreRangeChecked) {
  ModelConfig config;
  config.hidden_size = 8;
  config.num_hidden_layers = 4;
  const auto error = [&](const std::string& text) {
    write("exits/exits.json", text);
    return error_of([&] { ExitHeads::load(dir_ / "exits", config); });
  };
  const std::string head = R"({"format": "sieve-exits", "variant": "light", "num_labels": 2, "hidden_size": 8, )";
  EXPECT_NE(error(head + R"("layers": [1099511627776]})").find("exit layer must be an integer from 0 to 2"), std::string::npos);
  EXPECT_NE(error(head + R"("layers": [1.5]})").find("exit layer"), std::string::npos);
  EXPECT_NE(error(R"({"format": "sieve-exits", "variant": "light"})").find("'num_labels' is missing"), std::string::npos);
  EXPECT_NE(error(head + R"("layers": 3})").find("'layers' must be an array"), std::string::npos);
  EXPECT_NE(error(R"({"format": "sieve-exits", "variant": "block", "num_labels": 4294967298, "hidden_size": 8})")
                .find("'num_labels' must be an integer"),
            std::string::npos);
}

// ---- Finding 8: policy options are whole numbers in range, never cast blindly ---------------------

TEST_F(HostileInputsTest, PolicyIntegersAreCheckedBeforeConversion) {
  EXPECT_NE(testing::policy_spec_error("spatten:tokens=0.5,start=1e308").find("must be an integer in [0, 5]"), std::string::npos);
  EXPECT_NE(testing::policy_spec_error("spatten:tokens=0.5,start=2.7").find("must be an integer"), std::string::npos);
  EXPECT_NE(testing::policy_spec_error("cta:w=2,l=1e300").find("must be an integer in [1, 64]"), std::string::npos);
  EXPECT_NE(testing::policy_spec_error("cta:w=2,layers=1e308").find("must be an integer"), std::string::npos);
  EXPECT_ERROR_HAS(parse_generation_spec("progressive:msb=1,lsb=0"), "msb + lsb >= 2");
  EXPECT_ERROR_HAS(parse_generation_spec("kv_prune:keep=0.5,recent=1e308"), "must be an integer");
  EXPECT_EQ(error_of([] { parse_generation_spec("progressive:msb=1,lsb=1"); }), "no error");
}

// ---- Finding 3: tokenization is linear ----------------------------------------------------------------

TEST_F(HostileInputsTest, CanonicalOrderingOfLongMarkRunsIsFastAndCorrect) {
  std::u32string decomposed;
  unicode::append_nfd(U"a\u0301\u0316b\u0316\u0301", decomposed);  // classes 230, 220: 220 goes first
  EXPECT_EQ(decomposed, U"a\u0316\u0301b\u0316\u0301");
  const fs::path vocab = write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n");
  const WordPieceTokenizer tokenizer = WordPieceTokenizer::from_vocab_file(vocab, {.max_input_chars_per_word = 1 << 30});
  std::string text = "a";
  for (int i = 0; i < 100000; ++i) text += "\xcc\x81";  // U+0301
  for (int i = 0; i < 100000; ++i) text += "\xcc\x96";  // U+0316
  const double seconds = seconds_to_run([&] { EXPECT_EQ(tokenizer.encode(text).ids, (std::vector<int32_t>{2, 5, 3})); });
  EXPECT_LT(seconds, 20.0) << "400 KB of combining marks took " << seconds << " s (58 s when reordering was quadratic)";
}

TEST_F(HostileInputsTest, WordPieceWithAHostileVocabularyStaysLinear) {
  // A 20 kB vocabulary entry is refused outright...
  const fs::path huge = write("huge/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n" + std::string(20000, 'a') + "\n");
  EXPECT_ERROR_HAS(WordPieceTokenizer::from_vocab_file(huge, {}), "longer than the 1024 bytes limit");
  // ...and the longest allowed ones (as a word start and as a "##" continuation) cost a bounded
  // walk per byte: the old longest-first search
  // hashed every candidate substring (1000 per position, ~500 bytes each) and took minutes here.
  const fs::path vocab =
      write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n##a\n" + std::string(1000, 'a') + "b\n##" + std::string(1000, 'a') + "b\n");
  const WordPieceTokenizer tokenizer = WordPieceTokenizer::from_vocab_file(vocab, {.max_input_chars_per_word = 1 << 30});
  const std::string word(20000, 'a');
  std::vector<int32_t> ids;
  const double seconds = seconds_to_run([&] { ids = tokenizer.encode(word, 1 << 20).ids; });
  ASSERT_EQ(ids.size(), 20002u);
  EXPECT_EQ(ids[1], 5);
  EXPECT_EQ(ids[2], 6);
  EXPECT_LT(seconds, 30.0) << "a 20k-character word took " << seconds << " s";
  EXPECT_EQ(tokenizer.encode(std::string(1000, 'a') + "b").ids, (std::vector<int32_t>{2, 7, 3}));
}

TEST_F(HostileInputsTest, StaleVocabTxtNextToTokenizerJsonIsAnError) {
  write("model/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nextra\nhi\n");
  write("model/tokenizer.json", R"({
    "normalizer": {"type": "BertNormalizer", "clean_text": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hi": 4}}})");
  EXPECT_ERROR_HAS(WordPieceTokenizer::from_model_dir(dir_ / "model"), "disagree");
  write("model/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\n");
  EXPECT_EQ(WordPieceTokenizer::from_model_dir(dir_ / "model").encode("hi").ids, (std::vector<int32_t>{2, 4, 3}));
}

TEST_F(HostileInputsTest, ByteLevelBpeIsFastOnLongRunsOfLetters) {
  SIEVE_REQUIRE_FILE(testing::gpt2_model_dir() / "vocab.json");
  const ByteLevelBpe tokenizer = ByteLevelBpe::from_model_dir(testing::gpt2_model_dir());
  std::mt19937 rng(18);
  std::string letters(256 << 10, 'a');
  for (char& c : letters) c = static_cast<char>('a' + rng() % 26);
  std::vector<int32_t> ids;
  const double seconds = seconds_to_run([&] { ids = tokenizer.encode(letters); });
  EXPECT_EQ(tokenizer.decode(ids), letters);
  EXPECT_LT(ids.size(), letters.size());
  EXPECT_LT(seconds, 30.0) << "256 KB of letters (one pre-token) took " << seconds << " s";
}

TEST_F(HostileInputsTest, ByteLevelBpeFilesAreValidated) {
  // Every byte must be a token: build the 256 byte spellings the way GPT-2 does.
  nlohmann::json vocab = nlohmann::json::object();
  int32_t next = 256, id = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    std::string spelling;
    unicode::append_utf8(printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++), spelling);
    vocab[spelling] = id++;
  }
  vocab["ab"] = id++;
  write("bpe/vocab.json", vocab.dump());
  write("bpe/merges.txt", "#version: 0.2\na b\n");
  EXPECT_EQ(ByteLevelBpe::from_model_dir(dir_ / "bpe").encode("abab").size(), 2u);
  write("bpe/merges.txt", "#version: 0.2\na c\n");  // "ac" is not a token
  EXPECT_ERROR_HAS(ByteLevelBpe::from_model_dir(dir_ / "bpe"), "'ac', which is not in the vocabulary");
  write("bpe/merges.txt", "a b\n");
  vocab["ab"] = int64_t{1} << 40;  // was read as id 0
  write("bpe/vocab.json", vocab.dump());
  EXPECT_ERROR_HAS(ByteLevelBpe::from_model_dir(dir_ / "bpe"), "id of 'ab' must be an integer from 0 to");
}

}  // namespace
}  // namespace sieve
