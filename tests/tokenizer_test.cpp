// WordPieceTokenizer: parity with Hugging Face on generated cases, and hand-written edge cases
// on a tiny vocab written by the tests themselves.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tokenizers/wordpiece.h"
#include "util/error.h"
#include "reference_data.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- Parity with Hugging Face ------------------------------------------------------------------

struct ParityCase {
  fs::path vocab;
  TokenizerOptions options;
  std::string text;
  std::optional<std::string> text_pair;
  size_t max_length = 0;
  std::vector<int32_t> ids, type_ids;
  bool truncated = false;
};

ParityCase parse_case(const json& line) {
  ParityCase c;
  c.vocab = line.at("vocab").get<std::string>();
  c.options.lowercase = line.at("lowercase").get<bool>();
  if (!line.at("strip_accents").is_null()) c.options.strip_accents = line.at("strip_accents").get<bool>();
  c.text = line.at("text").get<std::string>();
  if (!line.at("text_pair").is_null()) c.text_pair = line.at("text_pair").get<std::string>();
  c.max_length = line.at("max_length").get<size_t>();
  c.ids = line.at("ids").get<std::vector<int32_t>>();
  c.type_ids = line.at("type_ids").get<std::vector<int32_t>>();
  c.truncated = line.at("truncated").get<bool>();
  return c;
}

Encoding encode_case(const WordPieceTokenizer& tokenizer, const ParityCase& c) {
  return c.text_pair ? tokenizer.encode_pair(c.text, *c.text_pair, c.max_length)
                     : tokenizer.encode(c.text, c.max_length);
}

std::string describe(const std::vector<int32_t>& ids) {
  std::ostringstream out;
  for (const int32_t id : ids) out << id << ' ';
  return out.str();
}

// Counts matches and reports the first few mismatches in full.
class ParityTally {
 public:
  explicit ParityTally(std::string route) : route_(std::move(route)) {}
  void check(const Encoding& got, const ParityCase& want, size_t line_number) {
    ++total_;
    if (got.ids == want.ids && got.type_ids == want.type_ids && got.truncated == want.truncated) {
      ++matched_;
    } else if (reported_++ < 20) {
      ADD_FAILURE() << route_ << ", line " << line_number << ": text " << json(want.text).dump()
                    << (want.text_pair ? " pair " + json(*want.text_pair).dump() : "") << "\n  want "
                    << describe(want.ids) << "(truncated " << want.truncated << ")\n  got  " << describe(got.ids)
                    << "(truncated " << got.truncated << ")";
    }
  }
  void report() const {
    std::cout << "[ parity   ] " << route_ << ": " << matched_ << " of " << total_ << " cases match\n";
    EXPECT_EQ(matched_, total_) << route_;
  }
  size_t total() const { return total_; }

 private:
  std::string route_;
  size_t total_ = 0, matched_ = 0, reported_ = 0;
};

TEST(TokenizerParity, MatchesHuggingFaceOnEveryCase) {
  const fs::path cases_path = sieve::testing::reference_dir() / "tokenizer_cases.jsonl";
  SIEVE_REQUIRE_FILE(cases_path);
  // Every case runs through from_vocab_file with its options; cases whose options are the
  // model's own also run through from_model_dir on the vocab's directory.
  std::map<std::tuple<fs::path, bool, std::optional<bool>>, WordPieceTokenizer> by_vocab;
  std::map<fs::path, std::optional<WordPieceTokenizer>> by_model_dir;
  ParityTally vocab_tally("from_vocab_file"), model_dir_tally("from_model_dir");

  std::ifstream file(cases_path);
  size_t line_number = 0;
  for (std::string line; std::getline(file, line);) {
    ++line_number;
    const ParityCase c = parse_case(json::parse(line));
    const auto key = std::tuple{c.vocab, c.options.lowercase, c.options.strip_accents};
    auto found = by_vocab.find(key);
    if (found == by_vocab.end()) {
      found = by_vocab.emplace(key, WordPieceTokenizer::from_vocab_file(c.vocab, c.options)).first;
    }
    vocab_tally.check(encode_case(found->second, c), c, line_number);

    const fs::path model_dir = c.vocab.parent_path();
    auto model = by_model_dir.find(model_dir);
    if (model == by_model_dir.end()) {
      std::optional<WordPieceTokenizer> tokenizer;
      if (fs::exists(model_dir / "tokenizer.json")) tokenizer = WordPieceTokenizer::from_model_dir(model_dir);
      model = by_model_dir.emplace(model_dir, std::move(tokenizer)).first;
    }
    if (model->second && model->second->options() == c.options) {
      model_dir_tally.check(encode_case(*model->second, c), c, line_number);
    }
  }
  EXPECT_GE(vocab_tally.total(), 250u) << "expected at least 250 cases in " << cases_path;
  EXPECT_GT(model_dir_tally.total(), 0u) << "no case used the model directory's own settings";
  vocab_tally.report();
  model_dir_tally.report();
}

// ---- Byte offsets of pieces, against Hugging Face ----------------------------------------------

std::string describe(const std::vector<std::pair<size_t, size_t>>& ranges) {
  std::ostringstream out;
  for (const auto& [begin, end] : ranges) out << '[' << begin << ',' << end << ") ";
  return out.str();
}

// tests/data/wordpiece_offsets_reference.json (tools/make_wordpiece_offsets_reference.py): HF's fast
// tokenizer's offset_mapping for all-MiniLM-L6-v2, in bytes, on SQuAD texts and edge cases.
TEST(TokenizerOffsets, PiecesMatchHuggingFaceOffsets) {
  const fs::path model_dir = SIEVE_DEFAULT_MODEL_DIR;  // the fixture's model, whatever SIEVE_DEFAULT_MODEL says
  SIEVE_REQUIRE_FILE(model_dir / "tokenizer.json");
  const fs::path fixture_path = fs::path(SIEVE_TEST_DATA_DIR) / "wordpiece_offsets_reference.json";
  std::ifstream file(fixture_path);
  ASSERT_TRUE(file) << fixture_path << " is missing";
  const json fixture = json::parse(file);
  ASSERT_EQ(fixture.at("model"), "all-MiniLM-L6-v2");
  const WordPieceTokenizer tokenizer = WordPieceTokenizer::from_model_dir(model_dir);

  size_t matched = 0, reported = 0;
  const json& cases = fixture.at("cases");
  for (const json& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const auto want_ids = c.at("ids").get<std::vector<int32_t>>();
    const auto want_ranges = c.at("byte_ranges").get<std::vector<std::pair<size_t, size_t>>>();
    const TextPieces got = tokenizer.pieces(text);
    const Encoding encoded = tokenizer.encode(text, size_t{1} << 20);
    const std::vector<int32_t> encoded_inner(encoded.ids.begin() + 1, encoded.ids.end() - 1);
    if (got.ids == want_ids && got.byte_ranges == want_ranges && encoded_inner == want_ids) {
      ++matched;
    } else if (reported++ < 10) {
      ADD_FAILURE() << c.at("source").get<std::string>() << " text " << json(text).dump() << "\n  want ids "
                    << describe(want_ids) << "\n  got ids  " << describe(got.ids) << "\n  encode   "
                    << describe(encoded_inner) << "\n  want ranges " << describe(want_ranges)
                    << "\n  got ranges  " << describe(got.byte_ranges);
    }
  }
  std::cout << "[ offsets  ] " << matched << " of " << cases.size() << " texts match\n";
  EXPECT_EQ(matched, cases.size());
  EXPECT_GE(cases.size(), 100u) << "expected at least 100 texts in " << fixture_path;
}

// ---- Hand-written cases on a tiny vocab --------------------------------------------------------

// A scratch directory per test, removed afterwards.
class TinyVocabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / (std::string("sieve_tokenizer_") + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write("vocab.txt",
          "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\nun\n##aff\n##able\na\n##a\n,\n!\ncafe\n"
          "café\n中\n文\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& content) const {
    std::ofstream(dir_ / name, std::ios::binary) << content;
  }
  WordPieceTokenizer tokenizer(TokenizerOptions options = {}) const {
    return WordPieceTokenizer::from_vocab_file(dir_ / "vocab.txt", options);
  }
  // Runs f, which must throw Error, and returns the message.
  template <typename F>
  static std::string error_of(F&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no sieve::Error was thrown";
    return "";
  }

  fs::path dir_;
};

TEST_F(TinyVocabTest, SpecialTokenIdsComeFromTheVocab) {
  const WordPieceTokenizer t = tokenizer();
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 1);
  EXPECT_EQ(t.cls_id(), 2);
  EXPECT_EQ(t.sep_id(), 3);
  EXPECT_EQ(t.vocab_size(), 18u);
  EXPECT_EQ(t.token(5), "hello");
  EXPECT_THROW(t.token(18), Error);
}

TEST_F(TinyVocabTest, EmptyAndBlankTextGiveOnlyClsSep) {
  for (const char* text : {"", "   ", "\t\n\r ", "\x01\x7f"}) {
    const Encoding e = tokenizer().encode(text);
    EXPECT_EQ(e.ids, (std::vector<int32_t>{2, 3})) << json(text).dump();
    EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0}));
    EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "[SEP]"}));
    EXPECT_FALSE(e.truncated);
  }
}

TEST_F(TinyVocabTest, SplitsWordsPunctuationAndPieces) {
  const Encoding e = tokenizer().encode("Hello,WORLD! unaffable unknown");
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "hello", ",", "world", "!", "un", "##aff", "##able",
                                                "[UNK]", "[SEP]"}));
}

TEST_F(TinyVocabTest, AccentsAndCjkFollowTheOptions) {
  EXPECT_EQ(tokenizer().encode("CAFÉ").tokens[1], "cafe");  // stripping follows lowercasing
  EXPECT_EQ(tokenizer({.lowercase = true, .strip_accents = false}).encode("CAFÉ").tokens[1], "café");
  EXPECT_EQ(tokenizer({.lowercase = false}).encode("café").tokens[1], "café");
  EXPECT_EQ(tokenizer().encode("中文").tokens, (std::vector<std::string>{"[CLS]", "中", "文", "[SEP]"}));
  EXPECT_EQ(tokenizer({.split_cjk = false}).encode("中文").tokens[1], "[UNK]");
}

TEST_F(TinyVocabTest, WordsLongerThanTheLimitAreUnknown) {
  const WordPieceTokenizer t = tokenizer();
  EXPECT_EQ(t.encode(std::string(100, 'a')).ids.size(), 102u);  // a ##a ##a ...
  EXPECT_EQ(t.encode(std::string(101, 'a')).ids, (std::vector<int32_t>{2, 1, 3}));
  // The limit counts characters, not bytes, after normalization.
  std::string accented;
  for (int i = 0; i < 100; ++i) accented += "a\xCC\x81";  // a + combining acute, stripped
  EXPECT_EQ(t.encode(accented).ids.size(), 102u);
  EXPECT_EQ(tokenizer({.max_input_chars_per_word = 3}).encode("aaaa aaa").ids,
            (std::vector<int32_t>{2, 1, 10, 11, 11, 3}));
}

TEST_F(TinyVocabTest, SpecialTokensInTheTextAreKept) {
  // Matching is on the raw text, so "[mask]" is three words: "[", "mask", "]" (none in this vocab).
  EXPECT_EQ(tokenizer().encode("hello[SEP]world [mask] [MASK]").tokens,
            (std::vector<std::string>{"[CLS]", "hello", "[SEP]", "world", "[UNK]", "[UNK]", "[UNK]", "[MASK]",
                                      "[SEP]"}));
}

TEST_F(TinyVocabTest, TruncatesSingleTextsToMaxLength) {
  const WordPieceTokenizer t = tokenizer();
  const Encoding e = t.encode("hello world hello", 4);
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "hello", "world", "[SEP]"}));
  EXPECT_TRUE(e.truncated);
  EXPECT_FALSE(t.encode("hello world", 4).truncated);
  EXPECT_EQ(t.encode("hello", 2).ids, (std::vector<int32_t>{2, 3}));
  EXPECT_THROW(t.encode("hello", 1), Error);
  EXPECT_THROW(t.encode_pair("a", "b", 2), Error);
}

TEST_F(TinyVocabTest, PairsGetTypeIdsAndLongestFirstTruncation) {
  const WordPieceTokenizer t = tokenizer();
  const Encoding whole = t.encode_pair("hello", "world !");
  EXPECT_EQ(whole.tokens, (std::vector<std::string>{"[CLS]", "hello", "[SEP]", "world", "!", "[SEP]"}));
  EXPECT_EQ(whole.type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(t.encode_pair("hello", "").ids, t.encode("hello").ids);  // as transformers does
  // 7 + 2 tokens into a budget of 5: only the longer first text is cut.
  EXPECT_EQ(t.encode_pair("a a a a a a a", "hello world", 8).ids, (std::vector<int32_t>{2, 10, 10, 10, 3, 5, 6, 3}));
  // 7 + 9 into 5: both are cut, the odd token going to the longer second text.
  const Encoding both = t.encode_pair("a a a a a a a", "! ! ! ! ! ! ! ! !", 8);
  EXPECT_EQ(both.ids, (std::vector<int32_t>{2, 10, 10, 3, 13, 13, 13, 3}));
  EXPECT_TRUE(both.truncated);
}

TEST_F(TinyVocabTest, InvalidUtf8ThrowsWithTheByteOffset) {
  const WordPieceTokenizer t = tokenizer();
  const std::pair<std::string, std::string> cases[] = {
      {"ab\x80", "at byte 2"},                 // lone continuation byte
      {"hello \xC3", "at byte 6"},             // truncated two-byte sequence
      {"\xE4\xB8 x", "at byte 0"},             // truncated three-byte sequence
      {"x\xC0\xAF", "at byte 1"},              // overlong '/'
      {"\xE0\x80\xAF", "at byte 0"},           // overlong three-byte form
      {"\xF0\x80\x80\xAF", "at byte 0"},       // overlong four-byte form
      {"ok \xED\xA0\x80", "at byte 3"},        // UTF-16 surrogate U+D800
      {"\xED\xBF\xBF", "at byte 0"},           // surrogate U+DFFF
      {"\xF4\x90\x80\x80", "at byte 0"},       // beyond U+10FFFF
      {"\xFF", "at byte 0"},                   // never valid
  };
  for (const auto& [text, where] : cases) {
    const std::string message = error_of([&] { t.encode(text); });
    EXPECT_NE(message.find("invalid UTF-8 " + where), std::string::npos) << message;
  }
  EXPECT_NE(error_of([&] { t.encode_pair("fine", "bad\x80"); }).find("second text"), std::string::npos);
}

TEST_F(TinyVocabTest, PiecesGiveTheBytesEachPieceCameFrom) {
  const WordPieceTokenizer t = tokenizer();
  // "É" (bytes 10-11) becomes "e" once its accent is stripped; the CJK characters are 3 bytes each.
  const TextPieces p = t.pieces("Hello, CAFÉ 中文[MASK]unaffable qq");
  EXPECT_EQ(p.ids, (std::vector<int32_t>{5, 12, 14, 16, 17, 4, 7, 8, 9, 1}));
  EXPECT_EQ(p.byte_ranges, (std::vector<std::pair<size_t, size_t>>{
                               {0, 5}, {5, 6}, {7, 12}, {13, 16}, {16, 19}, {19, 25}, {25, 27}, {27, 30}, {30, 34},
                               {35, 37}}));  // ... un ##aff ##able, and [UNK] for all of "qq"
  // A dropped character inside a piece is covered, one after its last character is not (as in HF).
  EXPECT_EQ(t.pieces("hel\x01lo a\xCC\x81").byte_ranges, (std::vector<std::pair<size_t, size_t>>{{0, 6}, {7, 8}}));
  EXPECT_TRUE(t.pieces(" \t ").ids.empty());
  EXPECT_NE(error_of([&] { t.pieces("ab\x80"); }).find("invalid UTF-8 at byte 2"), std::string::npos);
  EXPECT_THROW(t.pieces("\xED\xA0\x80"), Error);
}

TEST_F(TinyVocabTest, MissingOrBrokenFilesThrow) {
  EXPECT_NE(error_of([&] { WordPieceTokenizer::from_vocab_file(dir_ / "nope.txt", {}); }).find("nope.txt"),
            std::string::npos);
  EXPECT_THROW(WordPieceTokenizer::from_vocab_file(dir_, {}), Error);  // a directory
  EXPECT_THROW(WordPieceTokenizer::from_model_dir(dir_ / "no_such_dir"), Error);
  write("empty.txt", "");
  EXPECT_THROW(WordPieceTokenizer::from_vocab_file(dir_ / "empty.txt", {}), Error);
  write("no_unk.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n");
  EXPECT_NE(error_of([&] { WordPieceTokenizer::from_vocab_file(dir_ / "no_unk.txt", {}); }).find("[UNK]"),
            std::string::npos);
  EXPECT_THROW(tokenizer({.max_input_chars_per_word = 0}), Error);

  write("tokenizer_config.json", "{\"do_lower_case\": \"yes\"}");
  EXPECT_NE(error_of([&] { WordPieceTokenizer::from_model_dir(dir_); }).find("do_lower_case"), std::string::npos);
  write("tokenizer_config.json", "{not json");
  EXPECT_NE(error_of([&] { WordPieceTokenizer::from_model_dir(dir_); }).find("not valid JSON"), std::string::npos);
}

TEST_F(TinyVocabTest, ModelDirReadsConfigAndTokenizerJson) {
  write("tokenizer_config.json", R"({"do_lower_case": false, "cls_token": {"content": "[CLS]"}})");
  EXPECT_FALSE(WordPieceTokenizer::from_model_dir(dir_).options().lowercase);

  // Without vocab.txt the vocab comes from tokenizer.json; its added tokens may lie past it.
  fs::remove(dir_ / "vocab.txt");
  write("tokenizer.json", R"({
    "added_tokens": [{"id": 0, "content": "[PAD]"}, {"id": 5, "content": "<new>", "normalized": false}],
    "normalizer": {"type": "BertNormalizer", "clean_text": true, "lowercase": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 4,
              "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "Hi": 4}}})");
  const WordPieceTokenizer t = WordPieceTokenizer::from_model_dir(dir_);
  EXPECT_EQ(t.vocab_size(), 6u);
  EXPECT_EQ(t.encode("Hi<new>Hi HiHiHi").ids, (std::vector<int32_t>{2, 4, 5, 4, 1, 3}));

  write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {}}})");
  EXPECT_NE(error_of([&] { WordPieceTokenizer::from_model_dir(dir_); }).find("WordPiece"), std::string::npos);
}

}  // namespace
}  // namespace sieve
