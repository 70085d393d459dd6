#pragma once
// WordPieceTokenizer: BERT's tokenizer, giving exactly the ids of Hugging Face's fast tokenizer
// (what transformers.AutoTokenizer returns for a BERT model). The pipeline, in HF's order:
//   1. tokens such as [CLS] or [MASK] typed in the text are matched first, as they are;
//   2. normalize: drop NUL, U+FFFD and control characters, whitespace -> space, spaces around CJK
//      ideographs, optionally strip accents (NFD, drop non-spacing marks), optionally lowercase;
//   3. split into words at whitespace, and each punctuation character into a word of its own;
//   4. WordPiece: greedy longest match first, "##" marking pieces that continue a word; a word
//      with no full match, or longer than max_input_chars_per_word, becomes [UNK];
//   5. [CLS] a [SEP] (b [SEP]), truncated to max_length with HF's "longest_first" strategy.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizers/prefix_trie.h"

namespace sieve {

struct TokenizerOptions {
  bool lowercase = true;
  std::optional<bool> strip_accents;  // unset: strip exactly when lowercasing, as HF does
  bool split_cjk = true;
  int max_input_chars_per_word = 100;

  bool operator==(const TokenizerOptions&) const = default;
};

struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;  // 0 for [CLS], the first text and its [SEP]; 1 for the second
  std::vector<std::string> tokens;
  bool truncated = false;  // whether max_length cut tokens off
};

// A text's pieces with where each came from, as WordPieceTokenizer::pieces gives them.
struct TextPieces {
  std::vector<int32_t> ids;
  std::vector<std::pair<size_t, size_t>> byte_ranges;  // one per id: [begin, end) in the text
};

class WordPieceTokenizer {
 public:
  // Reads vocab.txt, or the WordPiece vocab inside tokenizer.json when vocab.txt is absent.
  // Options come from tokenizer_config.json (do_lower_case, strip_accents,
  // tokenize_chinese_chars, with transformers' defaults when absent: like transformers, these
  // override the normalizer settings in tokenizer.json); tokenizer.json gives the added tokens
  // and max_input_chars_per_word.
  static WordPieceTokenizer from_model_dir(const std::filesystem::path& dir);
  // A plain vocab.txt; [PAD] [UNK] [CLS] [SEP] [MASK] are matched in the text when in the vocab.
  static WordPieceTokenizer from_vocab_file(const std::filesystem::path& vocab_txt, TokenizerOptions options);

  // [CLS] text [SEP]. max_length counts the special tokens and must be at least 2.
  // Throws Error for invalid UTF-8.
  Encoding encode(std::string_view text, size_t max_length = 512) const;
  // [CLS] first [SEP] second [SEP]; max_length must be at least 3. An empty second text counts
  // as none, giving encode(first), because transformers does so.
  Encoding encode_pair(std::string_view first, std::string_view second, size_t max_length = 512) const;
  // The pieces of `text` without [CLS]/[SEP] and without truncation, with the byte range
  // [begin, end) in `text` each one came from: what extractive QA needs to cut an answer out of
  // its context. ids equal encode(text)'s ids between [CLS] and [SEP]. Throws Error for invalid
  // UTF-8. The ranges are Hugging Face's offset_mapping (fast tokenizer, add_special_tokens=False)
  // in bytes instead of characters: a piece runs from the start of the original character its
  // first normalized character came from to the end of its last one's, so pieces of one
  // decomposed character (a Hangul syllable's jamo) each cover all of it; [UNK] covers its word;
  // an added token typed in the text covers its match.
  TextPieces pieces(std::string_view text) const;

  int32_t cls_id() const { return cls_id_; }
  int32_t sep_id() const { return sep_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  // Ids run from 0 to vocab_size() - 1: one per vocab.txt line (or up to tokenizer.json's largest id).
  size_t vocab_size() const { return tokens_.size(); }
  const std::string& token(int32_t id) const;  // throws Error when id is out of range
  std::optional<int32_t> find_id(std::string_view token) const;
  const TokenizerOptions& options() const { return options_; }

 private:
  // Hashing std::string_view lets lookups of substrings avoid building a std::string.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  using IdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  struct SpecialTokenNames {
    std::string cls = "[CLS]", sep = "[SEP]", pad = "[PAD]", unk = "[UNK]", mask = "[MASK]";
    std::vector<std::string> all() const { return {pad, unk, cls, sep, mask}; }
  };
  // source names the vocab's file in error messages. Those added_tokens that are in the vocab
  // are matched in the raw text before anything else.
  WordPieceTokenizer(std::vector<std::string> tokens_by_id, const std::string& source, TokenizerOptions options,
                     const SpecialTokenNames& names, const std::vector<std::string>& added_tokens,
                     const std::string& continuing_prefix);

  // [begin, end) ranges, one per id, of what each id came from; only pieces() asks for them, and
  // encode's path passes none, so it does no extra work. Each function below says its unit.
  using Spans = std::vector<std::pair<size_t, size_t>>;

  // Appends the ids of text, without special tokens around it; spans (if any) get code point
  // ranges of text.
  void append_text_ids(std::string_view text, std::string_view what, std::vector<int32_t>& ids,
                       Spans* spans = nullptr) const;
  // Steps 2-4 for text[begin, end), a stretch holding no added token; spans get code point ranges
  // of text.
  void append_segment_ids(std::u32string_view text, size_t begin, size_t end, std::vector<int32_t>& ids,
                          Spans* spans) const;
  // origins (if any) gets, for each character returned, the index in text of the one it came from.
  std::u32string normalize(std::u32string_view text, std::vector<size_t>* origins) const;
  // spans get byte ranges of word.
  void append_word_ids(std::string_view word, size_t char_count, std::vector<int32_t>& ids, Spans* spans) const;
  Encoding make_encoding(std::vector<int32_t> ids, std::vector<int32_t> type_ids, bool truncated) const;

  std::vector<std::string> tokens_;  // by id
  IdMap ids_;                                  // every token, for find_id
  PrefixTrie<char> word_start_pieces_;         // every token, for pieces that start a word
  PrefixTrie<char> continuation_pieces_;       // "##ing" is found here as "ing"
  PrefixTrie<char32_t> added_tokens_;          // matched in the raw text, longest first
  TokenizerOptions options_;
  int32_t cls_id_ = 0, sep_id_ = 0, pad_id_ = 0, unk_id_ = 0;
};

}  // namespace sieve
