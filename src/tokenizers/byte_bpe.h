#pragma once
// ByteLevelBpe: GPT-2's tokenizer, giving the ids of Hugging Face's GPT2TokenizerFast. The pipeline:
//   1. special tokens typed in the text (<|endoftext|>) are matched first, as they are;
//   2. pre-tokenization with GPT-2's regex (contractions, letter runs, digit runs, other symbols,
//      whitespace), by PCRE2 in UTF + UCP mode: it has the (?!\S) lookahead RE2 lacks. Some models'
//      pre-tokenizers first split every digit off on its own (GGUF's `smollm`, Hugging Face's
//      Digits(individual_digits) before ByteLevel); the regex then runs on the stretches between;
//   3. each piece's bytes are mapped to printable characters (GPT-2's bytes_to_unicode), so no
//      byte ever falls outside the vocabulary;
//   4. BPE: the adjacent pair with the lowest merge rank is merged, everywhere, until none is left.
// Decoding maps the pieces back to bytes; a prefix of a generated sequence may end inside a
// multi-byte character, so decode() returns raw bytes.
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sieve {

class GgufFile;  // model/gguf.h

class ByteLevelBpe {
 public:
  // vocab.json + merges.txt from `dir`, or the BPE model inside tokenizer.json when they are absent.
  static ByteLevelBpe from_model_dir(const std::filesystem::path& dir);
  static ByteLevelBpe from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt);
  // The tokenizer inside a GGUF file's metadata (tokenizer.ggml.*: model gpt2, tokens, merges,
  // token types; pre-tokenizer gpt2 or smollm). Control and user-defined tokens are matched in text.
  static ByteLevelBpe from_gguf(const GgufFile& file);

  ByteLevelBpe(ByteLevelBpe&&) noexcept;
  ByteLevelBpe& operator=(ByteLevelBpe&&) noexcept;
  ~ByteLevelBpe();

  // Throws Error for invalid UTF-8. parse_special = false encodes special-token spellings typed in
  // the text as plain text (llama.cpp's parse_special, Hugging Face's split_special_tokens).
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
  // The bytes the ids stand for (ids outside the vocabulary throw Error).
  std::string decode(std::span<const int32_t> ids) const;
  const std::string& token_bytes(int32_t id) const;

  int32_t vocab_size() const { return static_cast<int32_t>(id_to_bytes_.size()); }
  // The id of a vocabulary entry spelt as in vocab.json, e.g. "<|endoftext|>".
  std::optional<int32_t> token_id(const std::string& token) const;
  // The token that ends a generation (<|endoftext|> for GPT-2, the GGUF's eos_token_id), if any.
  std::optional<int32_t> end_of_text() const { return end_of_text_; }

 private:
  struct Regex;  // the compiled PCRE2 pattern
  ByteLevelBpe();
  void finish_loading(const std::string& source);
  void encode_piece(std::string_view piece, std::vector<int32_t>& ids) const;

  struct Merge {
    int32_t rank;    // lower merges first
    int32_t result;  // the id of left + right
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  std::unordered_map<std::string, int32_t> vocab_;       // byte-mapped spelling -> id
  std::vector<std::pair<std::string, std::string>> merge_list_;  // as read, in rank order; ids made by finish_loading
  std::unordered_map<uint64_t, Merge> merges_;           // pair_key(left id, right id) -> merge
  std::array<int32_t, 256> byte_ids_{};                  // the id of each single byte
  std::vector<std::string> id_to_bytes_;                 // id -> raw bytes
  std::vector<std::pair<std::string, int32_t>> special_tokens_;
  std::unique_ptr<Regex> regex_;
  bool split_digits_ = false;
  std::optional<int32_t> end_of_text_;
};

}  // namespace sieve
