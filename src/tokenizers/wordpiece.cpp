#include "tokenizers/wordpiece.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "tokenizers/unicode_text.h"
#include "util/error.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Larger ids in a tokenizer.json are taken as a damaged file rather than allocated for.
constexpr int64_t kMaxVocabSize = int64_t{1} << 24;

std::string quoted(const fs::path& path) { return "'" + path.string() + "'"; }

void require_regular_file(const fs::path& path, const char* what) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    throw Error(std::string(what) + " " + quoted(path) + " does not exist or is not a file");
  }
}

// One token per line, as transformers reads vocab.txt: line i is id i, a trailing \r is not part
// of the token, and a token repeated later takes the later id.
std::vector<std::string> read_vocab_txt(const fs::path& path) {
  require_regular_file(path, "vocab file");
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("cannot open vocab file " + quoted(path));
  std::vector<std::string> tokens;
  for (std::string line; std::getline(file, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.push_back(std::move(line));
  }
  if (file.bad()) throw Error("error reading vocab file " + quoted(path));
  if (tokens.empty()) throw Error("vocab file " + quoted(path) + " is empty");
  return tokens;
}

json read_json(const fs::path& path) {
  require_regular_file(path, "tokenizer file");
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error("cannot open " + quoted(path));
  try {
    json document = json::parse(file);
    if (!document.is_object()) throw Error(quoted(path) + ": expected a JSON object at the top level");
    return document;
  } catch (const json::exception& e) {
    throw Error(quoted(path) + ": not valid JSON (" + e.what() + ")");
  }
}

std::optional<bool> optional_bool_field(const json& object, const char* key, const fs::path& path) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw Error(quoted(path) + ": \"" + key + "\" must be true or false");
  return it->get<bool>();
}

bool bool_field(const json& object, const char* key, bool fallback, const fs::path& path) {
  return optional_bool_field(object, key, path).value_or(fallback);
}

const std::string* string_field(const json& object, const char* key, const fs::path& path) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  if (!it->is_string()) throw Error(quoted(path) + ": \"" + key + "\" must be a string");
  return it->get_ptr<const std::string*>();
}

const json& object_field(const json& object, const char* key, const fs::path& path) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_object()) throw Error(quoted(path) + ": \"" + key + "\" must be a JSON object");
  return *it;
}

int64_t integer_field(const json& object, const char* key, int64_t low, int64_t high, const fs::path& path) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer() || it->get<int64_t>() < low || it->get<int64_t>() > high) {
    throw Error(quoted(path) + ": \"" + key + "\" must be an integer from " + std::to_string(low) + " to " +
                std::to_string(high));
  }
  return it->get<int64_t>();
}

// A special token in tokenizer_config.json is either its text or {"content": text, ...}.
void read_token_name(const json& config, const char* key, std::string& name, const fs::path& path) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return;
  const json& content = it->is_object() ? it->value("content", json()) : *it;
  if (!content.is_string()) throw Error(quoted(path) + ": \"" + key + "\" must be a token string");
  name = content.get<std::string>();
}

// The parts of a Hugging Face tokenizer.json that matter for a BERT WordPiece tokenizer.
struct TokenizerJson {
  std::vector<std::string> vocab;  // by id
  std::vector<std::pair<std::string, int32_t>> added_tokens;
  int max_input_chars_per_word = 100;
  std::string unk_token;
  std::string continuing_prefix;
};

void require_type(const json& document, const char* key, const char* expected, const fs::path& path) {
  const auto it = document.find(key);
  const bool matches = it != document.end() && it->is_object() && it->value("type", json()) == expected;
  if (!matches) {
    throw Error(quoted(path) + ": \"" + key + "\" must be a " + expected + "; Sieve tokenizes BERT models only");
  }
}

TokenizerJson read_tokenizer_json(const fs::path& path) {
  const json document = read_json(path);
  require_type(document, "model", "WordPiece", path);
  require_type(document, "normalizer", "BertNormalizer", path);
  require_type(document, "pre_tokenizer", "BertPreTokenizer", path);
  if (!bool_field(document.at("normalizer"), "clean_text", true, path)) {
    throw Error(quoted(path) + ": normalizer \"clean_text\": false is not supported");
  }
  const json& model = document.at("model");
  TokenizerJson result;
  if (model.contains("max_input_chars_per_word")) {
    result.max_input_chars_per_word = static_cast<int>(
        integer_field(model, "max_input_chars_per_word", 1, std::numeric_limits<int>::max(), path));
  }
  const std::string* unk = string_field(model, "unk_token", path);
  result.unk_token = unk ? *unk : "[UNK]";
  const std::string* prefix = string_field(model, "continuing_subword_prefix", path);
  result.continuing_prefix = prefix ? *prefix : "##";

  for (const auto& [token, id_value] : object_field(model, "vocab", path).items()) {
    if (!id_value.is_number_integer() || id_value.get<int64_t>() < 0 || id_value.get<int64_t>() >= kMaxVocabSize) {
      throw Error(quoted(path) + ": vocab id of \"" + token + "\" must be an integer from 0 to " +
                  std::to_string(kMaxVocabSize - 1));
    }
    const auto id = static_cast<size_t>(id_value.get<int64_t>());
    if (id >= result.vocab.size()) result.vocab.resize(id + 1);
    result.vocab[id] = token;
  }

  const auto added = document.find("added_tokens");
  if (added != document.end() && !added->is_null()) {
    if (!added->is_array()) throw Error(quoted(path) + ": \"added_tokens\" must be an array");
    for (const json& entry : *added) {
      if (!entry.is_object()) throw Error(quoted(path) + ": each of \"added_tokens\" must be a JSON object");
      const std::string* content = string_field(entry, "content", path);
      if (!content || content->empty()) throw Error(quoted(path) + ": an added token has no \"content\"");
      // HF matches such tokens after normalization or only as whole words; we match raw text only.
      if (bool_field(entry, "normalized", false, path) || bool_field(entry, "single_word", false, path)) {
        throw Error(quoted(path) + ": added token \"" + *content +
                    "\" sets normalized or single_word, which Sieve does not support");
      }
      const auto id = static_cast<int32_t>(integer_field(entry, "id", 0, kMaxVocabSize - 1, path));
      result.added_tokens.emplace_back(*content, id);
    }
  }
  return result;
}

// transformers' "longest_first" for pairs: cut the longer text alone while that suffices;
// otherwise cut both to half the budget, the odd token going to the longer (the second on a tie).
std::pair<size_t, size_t> longest_first_lengths(size_t first, size_t second, size_t budget) {
  if (first + second <= budget) return {first, second};
  const size_t shorter = std::min(first, second);
  size_t keep_shorter = shorter;
  size_t keep_longer = budget - shorter;
  if (2 * shorter > budget) {
    keep_shorter = budget / 2;
    keep_longer = budget - keep_shorter;
  }
  return first > second ? std::pair{keep_longer, keep_shorter} : std::pair{keep_shorter, keep_longer};
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> tokens_by_id, const std::string& source,
                                       TokenizerOptions options, const SpecialTokenNames& names,
                                       const std::vector<std::string>& added_tokens,
                                       const std::string& continuing_prefix)
    : tokens_(std::move(tokens_by_id)), options_(options) {
  if (options_.max_input_chars_per_word < 1) {
    throw Error("tokenizer option max_input_chars_per_word must be at least 1, got " +
                std::to_string(options_.max_input_chars_per_word));
  }
  if (tokens_.size() > static_cast<size_t>(kMaxVocabSize)) throw Error(source + ": vocabulary is too large");
  for (size_t id = 0; id < tokens_.size(); ++id) {
    const std::string& token = tokens_[id];
    ids_.insert_or_assign(token, static_cast<int32_t>(id));  // a repeated token keeps its last id
    if (token.starts_with(continuing_prefix)) {
      continuation_ids_.insert_or_assign(token.substr(continuing_prefix.size()), static_cast<int32_t>(id));
    }
    longest_token_bytes_ = std::max(longest_token_bytes_, token.size());
  }
  const auto required_id = [&](const std::string& name) {
    const std::optional<int32_t> id = find_id(name);
    if (!id) throw Error(source + ": the vocabulary has no " + name + " token");
    return *id;
  };
  cls_id_ = required_id(names.cls);
  sep_id_ = required_id(names.sep);
  pad_id_ = required_id(names.pad);
  unk_id_ = required_id(names.unk);
  for (const std::string& text : added_tokens) {
    const std::optional<int32_t> id = find_id(text);
    if (id && !text.empty()) added_tokens_.push_back({unicode::decode_utf8(text, source + ": added token"), *id});
  }
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const fs::path& vocab_txt, TokenizerOptions options) {
  const SpecialTokenNames names;
  return WordPieceTokenizer(read_vocab_txt(vocab_txt), vocab_txt.string(), options, names,
                            names.all(), "##");
}

WordPieceTokenizer WordPieceTokenizer::from_model_dir(const fs::path& dir) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) throw Error("model directory " + quoted(dir) + " does not exist");
  const fs::path config_path = dir / "tokenizer_config.json";
  const fs::path tokenizer_json_path = dir / "tokenizer.json";
  const fs::path vocab_path = dir / "vocab.txt";

  // transformers' BertTokenizerFast takes these from tokenizer_config.json, defaults included,
  // and rebuilds tokenizer.json's normalizer with them.
  TokenizerOptions options;
  SpecialTokenNames names;
  if (fs::exists(config_path, error)) {
    const json config = read_json(config_path);
    options.lowercase = bool_field(config, "do_lower_case", true, config_path);
    options.split_cjk = bool_field(config, "tokenize_chinese_chars", true, config_path);
    options.strip_accents = optional_bool_field(config, "strip_accents", config_path);
    read_token_name(config, "cls_token", names.cls, config_path);
    read_token_name(config, "sep_token", names.sep, config_path);
    read_token_name(config, "pad_token", names.pad, config_path);
    read_token_name(config, "unk_token", names.unk, config_path);
    read_token_name(config, "mask_token", names.mask, config_path);
  }

  std::optional<TokenizerJson> tokenizer_json;
  if (fs::exists(tokenizer_json_path, error)) tokenizer_json = read_tokenizer_json(tokenizer_json_path);
  const bool has_vocab_txt = fs::exists(vocab_path, error);
  if (!has_vocab_txt && !tokenizer_json) throw Error(quoted(dir) + " has neither vocab.txt nor tokenizer.json");
  std::vector<std::string> tokens = has_vocab_txt ? read_vocab_txt(vocab_path) : std::move(tokenizer_json->vocab);
  const std::string source = (has_vocab_txt ? vocab_path : tokenizer_json_path).string();

  if (!tokenizer_json) {
    return WordPieceTokenizer(std::move(tokens), source, options, names,
                              names.all(), "##");
  }
  options.max_input_chars_per_word = tokenizer_json->max_input_chars_per_word;
  names.unk = tokenizer_json->unk_token;  // what the WordPiece model emits for unknown words
  std::vector<std::string> added_tokens;
  for (auto& [content, id] : tokenizer_json->added_tokens) {
    // An added token owns its id, even one past the end of the vocab.
    if (static_cast<size_t>(id) >= tokens.size()) tokens.resize(static_cast<size_t>(id) + 1);
    tokens[static_cast<size_t>(id)] = content;
    added_tokens.push_back(std::move(content));
  }
  return WordPieceTokenizer(std::move(tokens), source, options, names, added_tokens,
                            tokenizer_json->continuing_prefix);
}

const std::string& WordPieceTokenizer::token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(tokens_.size()));
  }
  return tokens_[static_cast<size_t>(id)];
}

std::optional<int32_t> WordPieceTokenizer::find_id(std::string_view token) const {
  const auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

Encoding WordPieceTokenizer::encode(std::string_view text, size_t max_length) const {
  if (max_length < 2) {
    throw Error("max_length " + std::to_string(max_length) + " is too small: [CLS] and [SEP] alone need 2");
  }
  std::vector<int32_t> ids{cls_id_};
  append_text_ids(text, "text", ids);
  const size_t limit = max_length - 1;  // keeps room for [SEP]
  const bool truncated = ids.size() > limit;
  if (truncated) ids.resize(limit);
  ids.push_back(sep_id_);
  std::vector<int32_t> type_ids(ids.size(), 0);
  return make_encoding(std::move(ids), std::move(type_ids), truncated);
}

Encoding WordPieceTokenizer::encode_pair(std::string_view first, std::string_view second, size_t max_length) const {
  if (second.empty()) return encode(first, max_length);  // transformers checks `if text_pair:`
  if (max_length < 3) {
    throw Error("max_length " + std::to_string(max_length) + " is too small: a pair's [CLS] [SEP] [SEP] alone need 3");
  }
  std::vector<int32_t> first_ids, second_ids;
  append_text_ids(first, "first text of the pair", first_ids);
  append_text_ids(second, "second text of the pair", second_ids);
  const auto [first_kept, second_kept] = longest_first_lengths(first_ids.size(), second_ids.size(), max_length - 3);
  const bool truncated = first_kept < first_ids.size() || second_kept < second_ids.size();

  std::vector<int32_t> ids{cls_id_};
  ids.insert(ids.end(), first_ids.begin(), first_ids.begin() + static_cast<std::ptrdiff_t>(first_kept));
  ids.push_back(sep_id_);
  std::vector<int32_t> type_ids(ids.size(), 0);
  ids.insert(ids.end(), second_ids.begin(), second_ids.begin() + static_cast<std::ptrdiff_t>(second_kept));
  ids.push_back(sep_id_);
  type_ids.resize(ids.size(), 1);
  return make_encoding(std::move(ids), std::move(type_ids), truncated);
}

Encoding WordPieceTokenizer::make_encoding(std::vector<int32_t> ids, std::vector<int32_t> type_ids,
                                           bool truncated) const {
  Encoding encoding;
  encoding.tokens.reserve(ids.size());
  for (const int32_t id : ids) encoding.tokens.push_back(token(id));
  encoding.ids = std::move(ids);
  encoding.type_ids = std::move(type_ids);
  encoding.truncated = truncated;
  return encoding;
}

void WordPieceTokenizer::append_text_ids(std::string_view text, std::string_view what,
                                         std::vector<int32_t>& ids) const {
  const std::u32string code_points = unicode::decode_utf8(text, what);
  const std::u32string_view all(code_points);
  size_t segment_start = 0;
  for (size_t pos = 0; pos < all.size();) {
    const AddedToken* added = added_token_at(all, pos);
    if (!added) {
      ++pos;
      continue;
    }
    append_segment_ids(all.substr(segment_start, pos - segment_start), ids);
    ids.push_back(added->id);
    pos += added->text.size();
    segment_start = pos;
  }
  append_segment_ids(all.substr(segment_start), ids);
}

const WordPieceTokenizer::AddedToken* WordPieceTokenizer::added_token_at(std::u32string_view text, size_t pos) const {
  const AddedToken* longest = nullptr;  // HF takes the longest of the matches starting here
  for (const AddedToken& added : added_tokens_) {
    if (text[pos] == added.text[0] && text.substr(pos).starts_with(added.text) &&
        (!longest || added.text.size() > longest->text.size())) {
      longest = &added;
    }
  }
  return longest;
}

std::u32string WordPieceTokenizer::normalize(std::u32string_view text) const {
  std::u32string cleaned;
  cleaned.reserve(text.size());
  for (const char32_t c : text) {
    if (c == 0 || c == 0xFFFD || unicode::is_control(c)) continue;
    if (unicode::is_whitespace(c)) {
      cleaned.push_back(U' ');
    } else if (options_.split_cjk && unicode::is_cjk_ideograph(c)) {
      cleaned.append({U' ', c, U' '});
    } else {
      cleaned.push_back(c);
    }
  }
  if (options_.strip_accents.value_or(options_.lowercase)) {
    std::u32string decomposed;
    unicode::append_nfd(cleaned, decomposed);
    std::erase_if(decomposed, unicode::is_nonspacing_mark);
    cleaned = std::move(decomposed);
  }
  if (options_.lowercase) {
    std::u32string lowered;
    lowered.reserve(cleaned.size());
    for (const char32_t c : cleaned) unicode::append_lowercase(c, lowered);
    cleaned = std::move(lowered);
  }
  return cleaned;
}

void WordPieceTokenizer::append_segment_ids(std::u32string_view segment, std::vector<int32_t>& ids) const {
  std::string word;  // UTF-8, the form the vocab is in
  size_t word_chars = 0;
  const auto finish_word = [&] {
    if (word.empty()) return;
    append_word_ids(word, word_chars, ids);
    word.clear();
    word_chars = 0;
  };
  for (const char32_t c : normalize(segment)) {
    if (unicode::is_whitespace(c)) {
      finish_word();
    } else if (unicode::is_punctuation(c)) {
      finish_word();
      unicode::append_utf8(c, word);
      word_chars = 1;
      finish_word();
    } else {
      unicode::append_utf8(c, word);
      ++word_chars;
    }
  }
  finish_word();
}

void WordPieceTokenizer::append_word_ids(std::string_view word, size_t char_count, std::vector<int32_t>& ids) const {
  if (char_count > static_cast<size_t>(options_.max_input_chars_per_word)) {
    ids.push_back(unk_id_);
    return;
  }
  const size_t first_piece = ids.size();
  size_t start = 0;
  while (start < word.size()) {
    const IdMap& pieces = start == 0 ? ids_ : continuation_ids_;
    // Try the longest candidate first, shrinking one character at a time.
    size_t end = std::min(word.size(), start + longest_token_bytes_);
    while (end > start && end < word.size() && unicode::is_utf8_continuation_byte(word[end])) --end;
    std::optional<int32_t> match;
    while (end > start) {
      if (const auto it = pieces.find(word.substr(start, end - start)); it != pieces.end()) {
        match = it->second;
        break;
      }
      do {
        --end;
      } while (end > start && unicode::is_utf8_continuation_byte(word[end]));
    }
    if (!match) {  // some stretch matches no piece: the whole word is unknown
      ids.resize(first_piece);
      ids.push_back(unk_id_);
      return;
    }
    ids.push_back(*match);
    start = end;
  }
}

}  // namespace sieve
