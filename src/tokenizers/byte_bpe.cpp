#include "tokenizers/byte_bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <functional>
#include <queue>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/gguf.h"
#include "tokenizers/unicode_text.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace sieve {

namespace {

using nlohmann::json;

// GPT-2's pre-tokenization pattern, as in its encoder.py and Hugging Face's ByteLevel pre-tokenizer.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
// (controls, space, 0x7F-0xA0, 0xAD) become U+0100.. in byte order, so every byte has a visible,
// non-space spelling in the vocabulary.
std::array<char32_t, 256> byte_to_code_point() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

// UTF-8 spelling of each byte, ready to concatenate.
const std::array<std::string, 256>& byte_spellings() {
  static const std::array<std::string, 256> spellings = [] {
    std::array<std::string, 256> s;
    const auto map = byte_to_code_point();
    for (size_t b = 0; b < 256; ++b) unicode::append_utf8(map[b], s[b]);
    return s;
  }();
  return spellings;
}

// A vocabulary spelling back to the bytes it stands for.
std::string spelling_to_bytes(const std::string& spelling, const std::string& source) {
  static const std::unordered_map<char32_t, char> inverse = [] {
    std::unordered_map<char32_t, char> m;
    const auto map = byte_to_code_point();
    for (size_t b = 0; b < 256; ++b) m[map[b]] = static_cast<char>(b);
    return m;
  }();
  std::string bytes;
  for (char32_t c : unicode::decode_utf8(spelling, source + ": vocabulary entry")) {
    const auto it = inverse.find(c);
    if (it == inverse.end()) throw Error(source + ": vocabulary entry '" + spelling + "' is not byte-level BPE");
    bytes += it->second;
  }
  return bytes;
}

// Bounds on what a vocabulary file may make us hold; GPT-2's are 50257 entries and 50000 merges
// in 1 MB + 456 kB, the largest real byte-level vocabularies ~250k entries.
constexpr uint64_t kMaxMergesBytes = 64ull << 20;
constexpr int64_t kMaxTokenId = (int64_t{1} << 21) - 1;

// A token id from a vocabulary file: an integer in [0, kMaxTokenId], never silently cut to fit.
int32_t read_token_id(const json& value, const std::string& source, const std::string& token) {
  return static_cast<int32_t>(json_integer(value, 0, kMaxTokenId, source + ": id of '" + token.substr(0, 100) + "'"));
}

// Splits "left right" at its single space; merges.txt and old tokenizer.json files spell merges so.
std::pair<std::string, std::string> split_merge(const std::string& line, const std::string& where) {
  const size_t space = line.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 == line.size() || line.find(' ', space + 1) != std::string::npos)
    throw Error(where + " is not 'left right': '" + line.substr(0, 100) + "'");
  return {line.substr(0, space), line.substr(space + 1)};
}

}  // namespace

struct ByteLevelBpe::Regex {
  pcre2_code* code = nullptr;
  pcre2_code* digit = nullptr;  // one \p{N} character, for the digit-splitting pre-tokenizers
  ~Regex() {
    pcre2_code_free(code);
    pcre2_code_free(digit);
  }
};

namespace {

pcre2_code* compile_pattern(std::string_view pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                   &error_code, &error_offset, nullptr);
  if (!code) throw Error("internal: tokenizer pattern does not compile (PCRE2 error " + std::to_string(error_code) + ")");
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // a speed-up only; the interpreter is the fallback
  return code;
}

}  // namespace

ByteLevelBpe::ByteLevelBpe() : regex_(std::make_unique<Regex>()) {
  regex_->code = compile_pattern(kGpt2Pattern);
  regex_->digit = compile_pattern(R"(\p{N})");
}

ByteLevelBpe::ByteLevelBpe(ByteLevelBpe&&) noexcept = default;
ByteLevelBpe& ByteLevelBpe::operator=(ByteLevelBpe&&) noexcept = default;
ByteLevelBpe::~ByteLevelBpe() = default;

ByteLevelBpe ByteLevelBpe::from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
  ByteLevelBpe bpe;
  const std::string source = vocab_json.string();
  const json vocab = read_json_file(vocab_json, kMaxTokenizerJsonBytes);
  if (!vocab.is_object()) throw Error(source + ": must map tokens to ids");
  for (const auto& [token, id] : vocab.items()) bpe.vocab_[token] = read_token_id(id, source, token);
  std::istringstream merges(read_file_bounded(merges_txt, kMaxMergesBytes));
  LineReader lines(merges, merges_txt.string(), 4096);
  for (std::string line; lines.next(line);) {
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    bpe.merge_list_.push_back(split_merge(line, merges_txt.string() + ":" + std::to_string(lines.line_number())));
  }
  // GPT2TokenizerFast built from these two files treats <|endoftext|> as its one special token.
  if (bpe.vocab_.count("<|endoftext|>")) bpe.special_tokens_.emplace_back("<|endoftext|>", bpe.vocab_.at("<|endoftext|>"));
  bpe.finish_loading(source);
  return bpe;
}

ByteLevelBpe ByteLevelBpe::from_model_dir(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "vocab.json") && std::filesystem::exists(dir / "merges.txt"))
    return from_files(dir / "vocab.json", dir / "merges.txt");
  const auto path = dir / "tokenizer.json";
  const std::string source = path.string();
  if (!std::filesystem::exists(path)) throw Error("no GPT-2 tokenizer in " + dir.string() + " (need vocab.json + merges.txt, or tokenizer.json)");
  const json root = read_json_file(path, kMaxTokenizerJsonBytes);
  const json* model = root.is_object() && root.contains("model") ? &root.at("model") : nullptr;
  if (!model || !model->is_object() || model->value("type", json()) != "BPE" || !model->contains("vocab") ||
      !model->contains("merges") || !model->at("vocab").is_object() || !model->at("merges").is_array())
    throw Error(source + ": not a BPE tokenizer");
  ByteLevelBpe bpe;
  for (const auto& [token, id] : model->at("vocab").items()) bpe.vocab_[token] = read_token_id(id, source, token);
  for (const json& merge : model->at("merges")) {
    // tokenizers < 0.20 writes "left right"; later versions write ["left", "right"].
    const std::string where = source + ": merge " + std::to_string(bpe.merge_list_.size() + 1);
    if (merge.is_string()) {
      bpe.merge_list_.push_back(split_merge(merge.get<std::string>(), where));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      bpe.merge_list_.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else {
      throw Error(where + " must be \"left right\" or [\"left\", \"right\"]");
    }
  }
  if (const auto added = root.find("added_tokens"); added != root.end() && !added->is_null()) {
    if (!added->is_array()) throw Error(source + ": 'added_tokens' must be an array");
    for (const json& token : *added) {
      const auto content = token.is_object() ? token.find("content") : token.end();
      if (content == token.end() || !content->is_string() || content->get_ref<const std::string&>().empty() ||
          !token.contains("id"))
        throw Error(source + ": each added token needs a non-empty 'content' and an 'id'");
      const std::string& text = content->get_ref<const std::string&>();
      bpe.special_tokens_.emplace_back(text, read_token_id(token.at("id"), source, text));
    }
  }
  bpe.finish_loading(source);
  return bpe;
}

ByteLevelBpe ByteLevelBpe::from_gguf(const GgufFile& file) {
  const std::string source = file.path().string();
  const std::string model = file.string("tokenizer.ggml.model");
  if (model != "gpt2") throw Error(source + ": tokenizer model '" + model + "' is not supported (supported: gpt2, byte-level BPE)");
  ByteLevelBpe bpe;
  const std::string pre = file.find("tokenizer.ggml.pre") ? file.string("tokenizer.ggml.pre") : "default";
  if (pre == "smollm") bpe.split_digits_ = true;
  else if (pre != "gpt2" && pre != "default") throw Error(source + ": pre-tokenizer '" + pre + "' is not supported (supported: gpt2, smollm)");
  const std::vector<std::string>& tokens = file.strings("tokenizer.ggml.tokens");
  if (tokens.empty() || static_cast<int64_t>(tokens.size()) > kMaxTokenId + 1) throw Error(source + ": tokenizer.ggml.tokens has an impossible size");
  const std::vector<int64_t>* types = file.find("tokenizer.ggml.token_type") ? &file.integers("tokenizer.ggml.token_type") : nullptr;
  if (types && types->size() != tokens.size()) throw Error(source + ": tokenizer.ggml.token_type and tokens differ in length");
  constexpr int64_t kControl = 3, kUserDefined = 4;  // llama.cpp's token types matched as whole tokens in text
  for (size_t id = 0; id < tokens.size(); ++id) {
    const bool special = types && ((*types)[id] == kControl || (*types)[id] == kUserDefined);
    if (special && !tokens[id].empty()) bpe.special_tokens_.emplace_back(tokens[id], static_cast<int32_t>(id));
    else if (!bpe.vocab_.emplace(tokens[id], static_cast<int32_t>(id)).second)
      throw Error(source + ": token '" + tokens[id].substr(0, 100) + "' appears twice in tokenizer.ggml.tokens");
  }
  for (const std::string& merge : file.strings("tokenizer.ggml.merges"))
    bpe.merge_list_.push_back(split_merge(merge, source + ": merge " + std::to_string(bpe.merge_list_.size() + 1)));
  if (file.find("tokenizer.ggml.eos_token_id")) {
    const int64_t eos = file.integer("tokenizer.ggml.eos_token_id");
    if (eos < 0 || eos >= static_cast<int64_t>(tokens.size())) throw Error(source + ": eos_token_id is outside the vocabulary");
    bpe.end_of_text_ = static_cast<int32_t>(eos);
  }
  bpe.finish_loading(source);
  return bpe;
}

void ByteLevelBpe::finish_loading(const std::string& source) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) max_id = std::max(max_id, id);
  for (const auto& [token, id] : special_tokens_) {
    vocab_.emplace(token, id);
    max_id = std::max(max_id, id);
  }
  // Ids index a table: a sparse or huge id means a corrupt vocabulary, not a 2-million-entry one.
  if (static_cast<size_t>(max_id) >= 2 * vocab_.size() + 1024)
    throw Error(source + ": token id " + std::to_string(max_id) + " is far beyond the " + std::to_string(vocab_.size()) + " entries");
  id_to_bytes_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab_) id_to_bytes_[static_cast<size_t>(id)] = spelling_to_bytes(token, source);
  // The id of each single byte. Some vocabularies lack a few (SmolLM2 has no token for 21 bytes,
  // among them 0xC0, 0xC1 and 0xF5-0xFF, which never occur in UTF-8): such bytes are dropped when
  // encoding, as Hugging Face's BPE does without an unknown token and as llama.cpp does.
  for (size_t byte = 0; byte < 256; ++byte) {
    const auto it = vocab_.find(byte_spellings()[byte]);
    byte_ids_[byte] = it == vocab_.end() ? -1 : it->second;
  }
  if (std::count(byte_ids_.begin(), byte_ids_.end(), -1) > 128)
    throw Error(source + ": vocabulary lacks most single-byte tokens; not a byte-level BPE vocabulary");
  // Merges by id, as Hugging Face's BPE builds them: both sides and their concatenation must be
  // tokens (so encoding never meets a symbol it cannot name), and the first occurrence of a pair wins.
  for (size_t rank = 0; rank < merge_list_.size(); ++rank) {
    const auto& [left, right] = merge_list_[rank];
    const auto id_of = [&](const std::string& token) {
      const auto it = vocab_.find(token);
      if (it == vocab_.end())
        throw Error(source + ": merge " + std::to_string(rank + 1) + " needs '" + token.substr(0, 100) + "', which is not in the vocabulary");
      return it->second;
    };
    merges_.try_emplace(pair_key(id_of(left), id_of(right)), Merge{static_cast<int32_t>(rank), id_of(left + right)});
  }
  merge_list_.clear();
  merge_list_.shrink_to_fit();
  if (!end_of_text_) end_of_text_ = token_id("<|endoftext|>");
}

void ByteLevelBpe::encode_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  // Hugging Face's merge loop (tokenizers' Word::merge_all): a heap of candidate merges ordered by
  // rank, then position, over a linked list of symbols, so a piece of n bytes costs O(n log n).
  // Rescanning every pair after each merge, as GPT-2's encoder.py does, is quadratic: a 1 MB run
  // of letters is one piece and never finished. (The two orders agree whenever a merge's operands
  // come from lower-ranked merges, as in every trained merges list.)
  struct Symbol {
    int32_t id;
    int32_t previous, next;  // indices of the neighbours, -1 at either end
    bool merged_away = false;
  };
  struct Candidate {
    int32_t rank, position, result;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (const char byte : piece) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(byte)];
    if (id < 0) continue;  // a byte without a token is dropped (see finish_loading)
    symbols.push_back({id, static_cast<int32_t>(symbols.size()) - 1, -1});
  }
  const auto size = static_cast<int32_t>(symbols.size());
  for (int32_t i = 0; i + 1 < size; ++i) symbols[static_cast<size_t>(i)].next = i + 1;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto push_pair = [&](int32_t position) {  // the pair starting at `position`, if it merges
    const int32_t next = symbols[static_cast<size_t>(position)].next;
    if (next < 0) return;
    const auto it = merges_.find(pair_key(symbols[static_cast<size_t>(position)].id, symbols[static_cast<size_t>(next)].id));
    if (it != merges_.end()) queue.push({it->second.rank, position, it->second.result});
  };
  for (int32_t i = 0; i + 1 < size; ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.position)];
    if (left.merged_away || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    // Skip a stale entry: one of its symbols has changed since it was pushed.
    const auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.result != top.result) continue;
    left.id = top.result;
    right.merged_away = true;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].previous = top.position;
    if (left.previous >= 0) push_pair(left.previous);
    push_pair(top.position);
  }
  for (const Symbol& symbol : symbols)
    if (!symbol.merged_away) ids.push_back(symbol.id);
}

std::vector<int32_t> ByteLevelBpe::encode(std::string_view text, bool parse_special) const {
  unicode::decode_utf8(text, "text");  // throws on invalid UTF-8, naming the byte
  std::vector<int32_t> ids;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  if (!match) throw std::bad_alloc();
  const auto free_match = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>(match, pcre2_match_data_free);
  pcre2_match_data* digit_match = pcre2_match_data_create_from_pattern(regex_->digit, nullptr);
  if (!digit_match) throw std::bad_alloc();
  const auto free_digit_match = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>(digit_match, pcre2_match_data_free);
  // Pre-tokenize one stretch between special tokens (and digits, when they are split off).
  auto encode_stretch = [&](std::string_view plain) {
    PCRE2_SIZE offset = 0;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(plain.data());
    while (offset < plain.size()) {
      const int rc = pcre2_match(regex_->code, subject, plain.size(), offset, PCRE2_NO_UTF_CHECK, match, nullptr);
      if (rc < 0) throw Error("tokenizer: no pre-token at byte " + std::to_string(offset) + " (PCRE2 error " + std::to_string(rc) + ")");
      const PCRE2_SIZE* span = pcre2_get_ovector_pointer(match);
      if (span[1] <= offset) throw Error("tokenizer: empty pre-token at byte " + std::to_string(offset));
      encode_piece(plain.substr(span[0], span[1] - span[0]), ids);
      offset = span[1];
    }
  };
  auto encode_plain = [&](std::string_view plain) {
    if (!split_digits_) return encode_stretch(plain);
    PCRE2_SIZE offset = 0;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(plain.data());
    while (offset < plain.size()) {
      const int rc = pcre2_match(regex_->digit, subject, plain.size(), offset, PCRE2_NO_UTF_CHECK, digit_match, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) throw Error("tokenizer: digit search failed at byte " + std::to_string(offset) + " (PCRE2 error " + std::to_string(rc) + ")");
      const PCRE2_SIZE* span = pcre2_get_ovector_pointer(digit_match);
      encode_stretch(plain.substr(offset, span[0] - offset));
      encode_piece(plain.substr(span[0], span[1] - span[0]), ids);
      offset = span[1];
    }
    encode_stretch(plain.substr(offset));
  };
  // Where each special token next occurs at or after `begin`; searched again only once `begin`
  // has passed it, so a text full of one special token does not rescan the rest for the others.
  if (!parse_special) {
    encode_plain(text);
    return ids;
  }
  std::vector<size_t> next_at;
  for (const auto& special : special_tokens_) next_at.push_back(text.find(special.first));
  size_t begin = 0;
  while (true) {
    // The earliest special token at or after `begin`.
    size_t found = std::string_view::npos;
    const std::pair<std::string, int32_t>* special = nullptr;
    for (size_t s = 0; s < special_tokens_.size(); ++s) {
      if (next_at[s] != std::string_view::npos && next_at[s] < begin) next_at[s] = text.find(special_tokens_[s].first, begin);
      if (next_at[s] < found) found = next_at[s], special = &special_tokens_[s];
    }
    if (!special) {
      encode_plain(text.substr(begin));
      break;
    }
    encode_plain(text.substr(begin, found - begin));
    ids.push_back(special->second);
    begin = found + special->first.size();
  }
  return ids;
}

const std::string& ByteLevelBpe::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab_size()));
  return id_to_bytes_[static_cast<size_t>(id)];
}

std::string ByteLevelBpe::decode(std::span<const int32_t> ids) const {
  std::string text;
  for (int32_t id : ids) text += token_bytes(id);
  return text;
}

std::optional<int32_t> ByteLevelBpe::token_id(const std::string& token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

}  // namespace sieve
