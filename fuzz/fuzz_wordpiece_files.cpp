// Loading a BERT tokenizer from hostile files: the input is tokenizer.json, then (after a line
// "----") vocab.txt, then (after another) tokenizer_config.json; an absent part is no file. A
// tokenizer that loads must then tokenize a fixed text and a pair without failing.
#include "fuzz_common.h"
#include "tokenizers/wordpiece.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto [tokenizer_json, rest] = fuzz::split_input(input, "\n----\n");
  const auto [vocab_txt, tokenizer_config] = fuzz::split_input(rest, "\n----\n");
  const auto dir = fuzz::scratch_dir() / "wordpiece";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  fuzz::write_scratch("wordpiece/tokenizer.json", tokenizer_json);
  if (!vocab_txt.empty()) fuzz::write_scratch("wordpiece/vocab.txt", vocab_txt);
  if (!tokenizer_config.empty()) fuzz::write_scratch("wordpiece/tokenizer_config.json", tokenizer_config);
  fuzz::expect_only_sieve_errors([&] {
    const WordPieceTokenizer tokenizer = WordPieceTokenizer::from_model_dir(dir);
    tokenizer.encode("Hello, [MASK] wörld! 你好 unaffable", 64);
    tokenizer.encode_pair("a question", "an answer", 16);
  });
  return 0;
}
