// GGUF: the header, every metadata value type, the tensor table (dimensions, types, offsets,
// overlaps), loading every tensor it admits as fp32, the tokenizer from the metadata and the Llama
// config, each refusing bad input with sieve::Error only.
#include "fuzz_common.h"
#include "model/gguf.h"
#include "model/llama_decoder.h"
#include "tokenizers/byte_bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  const auto path = fuzz::write_scratch("input.gguf", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_only_sieve_errors([&] {
    const GgufFile file = GgufFile::open(path);
    for (const std::string& name : file.tensor_names()) {
      // Only small tensors: a valid file may legitimately describe a large one.
      if (file.tensor(name).bytes <= (1u << 20)) fuzz::expect_only_sieve_errors([&] { file.load_f32(name); });
    }
    fuzz::expect_only_sieve_errors([&] { LlamaConfig::from_gguf(file); });
    fuzz::expect_only_sieve_errors([&] { ByteLevelBpe::from_gguf(file).encode("Hello 123 world"); });
  });
  return 0;
}
