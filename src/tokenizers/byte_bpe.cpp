#include "tokenizers/byte_bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizers/unicode_text.h"
#include "util/error.h"

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

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

json parse_json_file(const std::filesystem::path& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

}  // namespace

struct ByteLevelBpe::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

ByteLevelBpe::ByteLevelBpe() : regex_(std::make_unique<Regex>()) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern.data()), kGpt2Pattern.size(),
                               PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (!regex_->code) throw Error("internal: GPT-2 pattern does not compile (PCRE2 error " + std::to_string(error_code) + ")");
  pcre2_jit_compile(regex_->code, PCRE2_JIT_COMPLETE);  // a speed-up only; the interpreter is the fallback
}

ByteLevelBpe::ByteLevelBpe(ByteLevelBpe&&) noexcept = default;
ByteLevelBpe& ByteLevelBpe::operator=(ByteLevelBpe&&) noexcept = default;
ByteLevelBpe::~ByteLevelBpe() = default;

ByteLevelBpe ByteLevelBpe::from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
  ByteLevelBpe bpe;
  const json vocab = parse_json_file(vocab_json);
  if (!vocab.is_object()) throw Error(vocab_json.string() + ": must map tokens to ids");
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer()) throw Error(vocab_json.string() + ": id of '" + token + "' is not an integer");
    bpe.vocab_[token] = id.get<int32_t>();
  }
  std::istringstream merges(read_text_file(merges_txt));
  int32_t rank = 0;
  for (std::string line; std::getline(merges, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() || line.find(' ', space + 1) != std::string::npos)
      throw Error(merges_txt.string() + ": merge " + std::to_string(rank + 1) + " is not 'left right': '" + line + "'");
    bpe.merge_rank_.emplace(line, rank++);  // the first occurrence of a pair wins, as in HF
  }
  // GPT2TokenizerFast built from these two files treats <|endoftext|> as its one special token.
  if (bpe.vocab_.count("<|endoftext|>")) bpe.special_tokens_.emplace_back("<|endoftext|>", bpe.vocab_.at("<|endoftext|>"));
  bpe.finish_loading(vocab_json.string());
  return bpe;
}

ByteLevelBpe ByteLevelBpe::from_model_dir(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "vocab.json") && std::filesystem::exists(dir / "merges.txt"))
    return from_files(dir / "vocab.json", dir / "merges.txt");
  const auto path = dir / "tokenizer.json";
  if (!std::filesystem::exists(path)) throw Error("no GPT-2 tokenizer in " + dir.string() + " (need vocab.json + merges.txt, or tokenizer.json)");
  const json root = parse_json_file(path);
  const json* model = root.contains("model") ? &root.at("model") : nullptr;
  if (!model || model->value("type", "") != "BPE" || !model->contains("vocab") || !model->contains("merges"))
    throw Error(path.string() + ": not a BPE tokenizer");
  ByteLevelBpe bpe;
  try {
    for (const auto& [token, id] : model->at("vocab").items()) bpe.vocab_[token] = id.get<int32_t>();
    int32_t rank = 0;
    for (const json& merge : model->at("merges")) {
      // tokenizers < 0.20 writes "left right"; later versions write ["left", "right"].
      const std::string pair = merge.is_array() ? merge.at(0).get<std::string>() + " " + merge.at(1).get<std::string>()
                                                : merge.get<std::string>();
      bpe.merge_rank_.emplace(pair, rank++);
    }
    if (root.contains("added_tokens"))
      for (const json& added : root.at("added_tokens"))
        bpe.special_tokens_.emplace_back(added.at("content").get<std::string>(), added.at("id").get<int32_t>());
  } catch (const json::exception& e) {
    throw Error(path.string() + ": malformed BPE model (" + e.what() + ")");
  }
  bpe.finish_loading(path.string());
  return bpe;
}

void ByteLevelBpe::finish_loading(const std::string& source) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) {
    if (id < 0) throw Error(source + ": negative id for '" + token + "'");
    max_id = std::max(max_id, id);
  }
  for (const auto& [token, id] : special_tokens_) {
    if (id < 0) throw Error(source + ": negative id for '" + token + "'");
    vocab_.emplace(token, id);
    max_id = std::max(max_id, id);
  }
  // Ids index a table: a sparse or huge id means a corrupt vocabulary, not a 2-billion-entry one.
  if (static_cast<size_t>(max_id) >= 2 * vocab_.size() + 1024)
    throw Error(source + ": token id " + std::to_string(max_id) + " is far beyond the " + std::to_string(vocab_.size()) + " entries");
  id_to_bytes_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab_) id_to_bytes_[static_cast<size_t>(id)] = spelling_to_bytes(token, source);
  // Every single byte must be a token, or some texts could not be encoded at all.
  for (const std::string& spelling : byte_spellings())
    if (!vocab_.count(spelling)) throw Error(source + ": vocabulary lacks the byte token '" + spelling + "'");
}

void ByteLevelBpe::encode_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  std::vector<std::string> symbols;
  for (char byte : piece) symbols.push_back(byte_spellings()[static_cast<unsigned char>(byte)]);
  std::string pair;
  while (symbols.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      pair = symbols[i] + ' ' + symbols[i + 1];
      const auto it = merge_rank_.find(pair);
      if (it != merge_rank_.end() && it->second < best_rank) best_rank = it->second, best = i;
    }
    if (best_rank == std::numeric_limits<int32_t>::max()) break;
    // Merge every occurrence of the best pair, left to right (as GPT-2's encoder.py does).
    const std::string left = symbols[best], right = symbols[best + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
        merged.push_back(left + right);
        ++i;
      } else {
        merged.push_back(std::move(symbols[i]));
      }
    }
    symbols = std::move(merged);
  }
  for (const std::string& symbol : symbols) {
    const auto it = vocab_.find(symbol);
    if (it == vocab_.end()) throw Error("tokenizer: merged symbol '" + symbol + "' is not in the vocabulary");
    ids.push_back(it->second);
  }
}

std::vector<int32_t> ByteLevelBpe::encode(std::string_view text) const {
  unicode::decode_utf8(text, "text");  // throws on invalid UTF-8, naming the byte
  std::vector<int32_t> ids;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  if (!match) throw std::bad_alloc();
  const auto free_match = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>(match, pcre2_match_data_free);
  // Pre-tokenize one stretch between special tokens.
  auto encode_plain = [&](std::string_view plain) {
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
  size_t begin = 0;
  while (true) {
    // The earliest special token at or after `begin`.
    size_t found = std::string_view::npos;
    const std::pair<std::string, int32_t>* special = nullptr;
    for (const auto& candidate : special_tokens_) {
      const size_t at = text.find(candidate.first, begin);
      if (at < found) found = at, special = &candidate;
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
