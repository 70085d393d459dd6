// WordPiece tokenization of arbitrary bytes with the default model's real vocabulary (uncased,
// accents stripped) and a cased variant: invalid UTF-8 may only be refused with sieve::Error, and
// every id must be in the vocabulary; pieces() (QA's byte offsets) must give ranges inside the text,
// in order, and the same ids as encode() when nothing is truncated. The first byte picks the max_length and whether the rest is
// split into a pair at the first NUL.
#include <algorithm>

#include "fuzz_common.h"
#include "tokenizers/wordpiece.h"

namespace {

const sieve::WordPieceTokenizer& uncased() {
  static const auto tokenizer = sieve::WordPieceTokenizer::from_model_dir(sieve::fuzz::repo_path("models/all-MiniLM-L6-v2"));
  return tokenizer;
}
const sieve::WordPieceTokenizer& cased() {
  static const auto tokenizer = sieve::WordPieceTokenizer::from_vocab_file(
      sieve::fuzz::repo_path("models/all-MiniLM-L6-v2/vocab.txt"), {.lowercase = false, .strip_accents = false});
  return tokenizer;
}

void check_pieces(const sieve::WordPieceTokenizer& tokenizer, std::string_view text) {
  const sieve::TextPieces pieces = tokenizer.pieces(text);
  if (pieces.ids.size() != pieces.byte_ranges.size()) std::abort();
  size_t previous_begin = 0;
  for (const auto& [begin, end] : pieces.byte_ranges) {
    if (begin > end || end > text.size() || begin < previous_begin) std::abort();
    previous_begin = begin;
  }
  const sieve::Encoding whole = tokenizer.encode(text, pieces.ids.size() + 2);
  if (!std::equal(pieces.ids.begin(), pieces.ids.end(), whole.ids.begin() + 1, whole.ids.end() - 1)) std::abort();
}

void check(const sieve::WordPieceTokenizer& tokenizer, const sieve::Encoding& encoding, size_t max_length) {
  if (encoding.ids.size() > max_length || encoding.ids.size() != encoding.type_ids.size()) std::abort();
  for (const int32_t id : encoding.ids)
    if (id < 0 || static_cast<size_t>(id) >= tokenizer.vocab_size()) std::abort();
}

}  // namespace

// Load both vocabularies once, outside libFuzzer's per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  uncased();
  cased();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  if (size == 0) return 0;
  const size_t max_length = 3 + data[0] % 128;
  const bool as_pair = data[0] & 0x80;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto pair = fuzz::split_input(text, std::string_view("\0", 1));  // not a binding: clang 14 cannot capture those
  for (const WordPieceTokenizer* tokenizer : {&uncased(), &cased()}) {
    fuzz::expect_only_sieve_errors([&] {
      check(*tokenizer,
            as_pair ? tokenizer->encode_pair(pair.first, pair.second, max_length) : tokenizer->encode(text, max_length), max_length);
    });
    fuzz::expect_only_sieve_errors([&] { check_pieces(*tokenizer, text); });
  }
  return 0;
}
