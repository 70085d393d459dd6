// safetensors: the header (length field, JSON, dtypes, shapes, offsets, overlaps) and loading
// every tensor it admits as fp32, with the NaN/Inf check.
#include "fuzz_common.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  const auto path = fuzz::write_scratch("input.safetensors", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_only_sieve_errors([&] {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (const std::string& name : file.names()) {
      fuzz::expect_only_sieve_errors([&] { file.load_f32(name); });
    }
  });
  return 0;
}
