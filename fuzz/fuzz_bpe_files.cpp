// Loading a byte-level BPE tokenizer from hostile files: the input is vocab.json, then (after a
// line "----") merges.txt; an input without the separator is read as a tokenizer.json instead.
// A tokenizer that loads must encode and decode a fixed text.
#include "fuzz_common.h"
#include "tokenizers/byte_bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto dir = fuzz::scratch_dir() / "bpe";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  if (input.find("\n----\n") != std::string_view::npos) {
    const auto [vocab_json, merges_txt] = fuzz::split_input(input, "\n----\n");
    fuzz::write_scratch("bpe/vocab.json", vocab_json);
    fuzz::write_scratch("bpe/merges.txt", merges_txt);
  } else {
    fuzz::write_scratch("bpe/tokenizer.json", input);
  }
  fuzz::expect_only_sieve_errors([&] {
    const ByteLevelBpe tokenizer = ByteLevelBpe::from_model_dir(dir);
    // Special tokens may stand for any bytes in a hostile vocabulary, so only "no failure" counts.
    tokenizer.decode(tokenizer.encode("Hello world, it's 2024! <|endoftext|> ünïcödé"));
  });
  return 0;
}
