// The policy and generation spec grammars (name:key=value,...+...), on a MiniLM-shaped config.
#include "fuzz_common.h"
#include "model/model_config.h"
#include "policies/generation_policy.h"
#include "policies/policy_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  const std::string spec(reinterpret_cast<const char*>(data), size);
  static const ModelConfig config = [] {
    ModelConfig c;
    c.num_hidden_layers = 6;
    c.num_attention_heads = 12;
    c.hidden_size = 384;
    c.intermediate_size = 1536;
    return c;
  }();
  fuzz::expect_only_sieve_errors([&] { parse_policy_spec(spec, config)->describe(); });
  fuzz::expect_only_sieve_errors([&] { parse_generation_spec(spec)->describe(); });
  return 0;
}
