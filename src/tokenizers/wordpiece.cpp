#include "tokenizers/wordpiece.h"

#include <algorithm>
#include <sstream>
#include <limits>
#include <numeric>
#include <span>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <utility>

#include "tokenizers/unicode_text.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Larger ids in a tokenizer.json are taken as a damaged file rather than allocated for (real
// WordPiece vocabularies have 30k-250k entries).
constexpr int64_t kMaxVocabSize = int64_t{1} << 21;
// Longest match walks at most this far from each position, so tokenizing costs at most this many
// steps per byte of text however the vocabulary was made (real entries are under 100 bytes).
constexpr size_t kMaxTokenBytes = 1024;
constexpr uint64_t kMaxVocabTxtBytes = 64ull << 20;

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
  std::istringstream text(read_file_bounded(path, kMaxVocabTxtBytes));
  LineReader lines(text, path.string(), kMaxTokenBytes);
  std::vector<std::string> tokens;
  for (std::string line; lines.next(line);) tokens.push_back(std::move(line));
  if (tokens.empty()) throw Error("vocab file " + quoted(path) + " is empty");
  return tokens;
}

json read_json(const fs::path& path, uint64_t max_bytes) {
  require_regular_file(path, "tokenizer file");
  json document = read_json_file(path, max_bytes);
  if (!document.is_object()) throw Error(quoted(path) + ": expected a JSON object at the top level");
  return document;
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
  const json document = read_json(path, kMaxTokenizerJsonBytes);
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

// A stale vocab.txt next to tokenizer.json (one line added or lost) would shift every id without a
// word: the ids tokenizer.json gives must be the ids vocab.txt gives (its last line for a repeat).
void require_same_vocab(const std::vector<std::string>& vocab_txt, const std::vector<std::string>& json_vocab,
                        const fs::path& vocab_path, const fs::path& json_path) {
  std::unordered_map<std::string_view, size_t> txt_ids;
  for (size_t id = 0; id < vocab_txt.size(); ++id) txt_ids.insert_or_assign(vocab_txt[id], id);
  const auto disagree = [&](const std::string& detail) {
    throw Error(quoted(vocab_path) + " and " + quoted(json_path) + " disagree (" + detail +
                "); remove the stale one");
  };
  if (vocab_txt.size() != json_vocab.size()) {
    disagree(std::to_string(vocab_txt.size()) + " entries against " + std::to_string(json_vocab.size()));
  }
  for (size_t id = 0; id < json_vocab.size(); ++id) {
    if (json_vocab[id].empty()) continue;  // an id tokenizer.json leaves unused
    const auto it = txt_ids.find(json_vocab[id]);
    if (it == txt_ids.end() || it->second != id) {
      disagree("token '" + json_vocab[id].substr(0, 100) + "' is id " + std::to_string(id) + " in tokenizer.json, " +
               (it == txt_ids.end() ? std::string("absent from vocab.txt") : "id " + std::to_string(it->second) + " in vocab.txt"));
    }
  }
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

// Removes the characters `drop` selects from text, and their entries from origins when given.
template <typename Drop>
void erase_characters(std::u32string& text, std::vector<size_t>* origins, Drop drop) {
  if (!origins) {
    std::erase_if(text, drop);
    return;
  }
  size_t kept = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (drop(text[i])) continue;
    text[kept] = text[i];
    (*origins)[kept++] = (*origins)[i];
  }
  text.resize(kept);
  origins->resize(kept);
}

// Turns spans, byte ranges of word's pieces, into ranges of the characters they came from, given
// the origin of each of word's characters: a piece runs from the origin of its first character to
// the end of its last one's, as HF maps it.
void word_spans_to_origins(std::string_view word, std::span<const size_t> char_origins,
                           std::span<std::pair<size_t, size_t>> spans) {
  std::vector<size_t> byte_origins;
  byte_origins.reserve(word.size());
  size_t character = 0;
  for (size_t byte = 0; byte < word.size(); ++byte) {
    if (byte > 0 && !unicode::is_utf8_continuation_byte(word[byte])) ++character;
    byte_origins.push_back(char_origins[character]);
  }
  for (auto& [begin, end] : spans) {
    begin = byte_origins[begin];
    end = byte_origins[end - 1] + 1;
  }
}

// Where text went through map (map(c, out) appends what c becomes), gives each character out of
// it the origin of the character it came from, replacing text's origins by the output's. Tracking
// origins apart from the mapping keeps encode's loops as they were.
template <typename Map>
void map_origins(std::u32string_view text, std::vector<size_t>& origins, Map map) {
  std::vector<size_t> mapped;
  mapped.reserve(origins.size());
  std::u32string out;
  for (size_t i = 0; i < text.size(); ++i) {
    out.clear();
    map(text[i], out);
    mapped.insert(mapped.end(), out.size(), origins[i]);
  }
  origins = std::move(mapped);
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
  if (tokens_.size() > static_cast<size_t>(kMaxVocabSize)) {
    throw Error(source + ": vocabulary of " + std::to_string(tokens_.size()) + " entries is larger than the " +
                std::to_string(kMaxVocabSize) + " Sieve allows");
  }
  for (size_t id = 0; id < tokens_.size(); ++id) {
    const std::string& token = tokens_[id];
    if (token.size() > kMaxTokenBytes) {
      throw Error(source + ": vocabulary entry " + std::to_string(id) + " is " + std::to_string(token.size()) +
                  " bytes long, more than the " + std::to_string(kMaxTokenBytes) + " Sieve allows");
    }
    const auto token_id = static_cast<int32_t>(id);
    ids_.insert_or_assign(token, token_id);  // a repeated token keeps its last id
    if (token.empty()) continue;
    word_start_pieces_.insert(token, token_id);
    if (token.size() > continuing_prefix.size() && token.starts_with(continuing_prefix)) {
      continuation_pieces_.insert(std::string_view(token).substr(continuing_prefix.size()), token_id);
    }
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
    if (id && !text.empty()) added_tokens_.insert(unicode::decode_utf8(text, source + ": added token"), *id, false);
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
    const json config = read_json(config_path, kMaxSmallJsonBytes);
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
  if (has_vocab_txt && tokenizer_json) require_same_vocab(tokens, tokenizer_json->vocab, vocab_path, tokenizer_json_path);
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

TextPieces WordPieceTokenizer::pieces(std::string_view text) const {
  TextPieces result;
  append_text_ids(text, "text", result.ids, &result.byte_ranges);
  // The ranges are in code points so far; text is valid UTF-8 here, so each byte that does not
  // continue a sequence starts the next code point.
  std::vector<size_t> char_starts;
  char_starts.reserve(text.size() + 1);
  for (size_t byte = 0; byte < text.size(); ++byte) {
    if (!unicode::is_utf8_continuation_byte(text[byte])) char_starts.push_back(byte);
  }
  char_starts.push_back(text.size());
  for (auto& [begin, end] : result.byte_ranges) {
    begin = char_starts[begin];
    end = char_starts[end];
  }
  return result;
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

void WordPieceTokenizer::append_text_ids(std::string_view text, std::string_view what, std::vector<int32_t>& ids,
                                         Spans* spans) const {
  const std::u32string code_points = unicode::decode_utf8(text, what);
  const std::u32string_view all(code_points);
  const auto anywhere = [](size_t) { return true; };
  size_t segment_start = 0;
  for (size_t pos = 0; pos < all.size();) {
    // HF takes the longest of the added tokens starting here.
    const auto added = added_tokens_.longest_prefix(all.substr(pos), anywhere);
    if (added.length == 0) {
      ++pos;
      continue;
    }
    append_segment_ids(all, segment_start, pos, ids, spans);
    ids.push_back(added.value);
    if (spans) spans->emplace_back(pos, pos + added.length);
    pos += added.length;
    segment_start = pos;
  }
  append_segment_ids(all, segment_start, all.size(), ids, spans);
}

std::u32string WordPieceTokenizer::normalize(std::u32string_view text, std::vector<size_t>* origins) const {
  // Each step maps character by character; with origins, every character a step writes (one
  // replacing, or one of several expanding, a character) takes the origin of the character it
  // came from, as HF's alignments do.
  if (origins) {
    origins->resize(text.size());
    std::iota(origins->begin(), origins->end(), size_t{0});
  }
  const auto clean = [this](char32_t c, std::u32string& out) {
    if (c == 0 || c == 0xFFFD || unicode::is_control(c)) return;
    if (unicode::is_whitespace(c)) {
      out.push_back(U' ');
    } else if (options_.split_cjk && unicode::is_cjk_ideograph(c)) {
      out.append({U' ', c, U' '});
    } else {
      out.push_back(c);
    }
  };
  std::u32string cleaned;
  cleaned.reserve(text.size());
  for (const char32_t c : text) clean(c, cleaned);
  if (origins) map_origins(text, *origins, clean);
  if (options_.strip_accents.value_or(options_.lowercase)) {
    std::u32string decomposed;
    unicode::append_nfd(cleaned, decomposed);
    // Decomposing character by character gives as many characters as decomposing the text; where
    // canonical reordering then swaps marks of neighbouring characters, origins stay by position,
    // as HF's alignments do.
    const auto decompose = [](char32_t c, std::u32string& out) {
      unicode::append_nfd(std::u32string_view(&c, 1), out);
    };
    if (origins) map_origins(cleaned, *origins, decompose);
    erase_characters(decomposed, origins, unicode::is_nonspacing_mark);
    cleaned = std::move(decomposed);
  }
  if (options_.lowercase) {
    std::u32string lowered;
    lowered.reserve(cleaned.size());
    for (const char32_t c : cleaned) unicode::append_lowercase(c, lowered);
    if (origins) map_origins(cleaned, *origins, unicode::append_lowercase);
    cleaned = std::move(lowered);
  }
  return cleaned;
}

void WordPieceTokenizer::append_segment_ids(std::u32string_view text, size_t begin, size_t end,
                                            std::vector<int32_t>& ids, Spans* spans) const {
  std::vector<size_t> origins;  // with spans: per normalized character, its index in text
  const std::u32string normalized = normalize(text.substr(begin, end - begin), spans ? &origins : nullptr);
  for (size_t& origin : origins) origin += begin;
  std::string word;  // UTF-8, the form the vocab is in
  size_t word_chars = 0;
  // word holds the normalized characters just before word_end (a pointer into normalized, so that
  // the loop below walks characters as fast as before spans were added).
  const auto finish_word = [&](const char32_t* word_end) {
    if (word.empty()) return;
    const size_t first_new = ids.size();
    append_word_ids(word, word_chars, ids, spans);
    if (spans) {
      const size_t first_char = static_cast<size_t>(word_end - normalized.data()) - word_chars;
      word_spans_to_origins(word, std::span(origins).subspan(first_char, word_chars),
                            std::span(*spans).subspan(first_new));
    }
    word.clear();
    word_chars = 0;
  };
  for (const char32_t& c : normalized) {
    if (unicode::is_whitespace(c)) {
      finish_word(&c);
    } else if (unicode::is_punctuation(c)) {
      finish_word(&c);
      unicode::append_utf8(c, word);
      word_chars = 1;
      finish_word(&c + 1);
    } else {
      unicode::append_utf8(c, word);
      ++word_chars;
    }
  }
  finish_word(normalized.data() + normalized.size());
}

void WordPieceTokenizer::append_word_ids(std::string_view word, size_t char_count, std::vector<int32_t>& ids,
                                         Spans* spans) const {
  const size_t first_piece = ids.size();
  const auto unknown_word = [&] {  // [UNK] covers the whole word
    ids.resize(first_piece);
    ids.push_back(unk_id_);
    if (spans) {
      spans->resize(first_piece);
      spans->emplace_back(0, word.size());
    }
  };
  if (char_count > static_cast<size_t>(options_.max_input_chars_per_word)) {
    unknown_word();
    return;
  }
  // A piece may only end between two characters, never inside one's UTF-8 bytes.
  const auto at_character_end = [&](size_t start) {
    return [&word, start](size_t length) {
      return start + length == word.size() || !unicode::is_utf8_continuation_byte(word[start + length]);
    };
  };
  for (size_t start = 0; start < word.size();) {
    const PrefixTrie<char>& pieces = start == 0 ? word_start_pieces_ : continuation_pieces_;
    const auto match = pieces.longest_prefix(word.substr(start), at_character_end(start));
    if (match.length == 0) {  // some stretch matches no piece: the whole word is unknown
      unknown_word();
      return;
    }
    ids.push_back(match.value);
    if (spans) spans->emplace_back(start, start + match.length);
    start += match.length;
  }
}

}  // namespace sieve
