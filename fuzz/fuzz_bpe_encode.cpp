// GPT-2 byte-level BPE on arbitrary bytes with GPT-2's real vocabulary and merges: invalid UTF-8
// may only be refused with sieve::Error, and for valid text decode(encode(text)) == text.
#include "fuzz_common.h"
#include "tokenizers/byte_bpe.h"

namespace {
const sieve::ByteLevelBpe* gpt2 = nullptr;
}

// Loading the 50k merges takes seconds under ASan: done once here, outside libFuzzer's per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gpt2 = new sieve::ByteLevelBpe(sieve::ByteLevelBpe::from_model_dir(sieve::fuzz::repo_path("models/gpt2-tokenizer")));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  const ByteLevelBpe& tokenizer = *gpt2;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_sieve_errors([&] {
    if (tokenizer.decode(tokenizer.encode(text)) != text) {
      std::fprintf(stderr, "fuzz finding: decode(encode(text)) differs from text\n");
      std::abort();
    }
  });
  return 0;
}
