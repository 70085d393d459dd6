// The JSON files of a model directory: config.json read as a BERT and as a GPT-2 config, and
// exits.json read against a fixed model shape (its safetensors file is absent, so loading stops
// after the JSON has been validated or refused); and `sieve sim`'s traces and configs, each trace
// that is accepted replayed on both accelerator models.
#include "fuzz_common.h"
#include "model/exit_heads.h"
#include "model/gpt2_decoder.h"
#include "model/model_config.h"
#include "sim/cta_model.h"
#include "sim/spatten_model.h"
#include "sim/workload_trace.h"
#include "util/json_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto config = fuzz::write_scratch("model/config.json", bytes);
  fuzz::expect_only_sieve_errors([&] { ModelConfig::load(config.parent_path()); });
  fuzz::expect_only_sieve_errors([&] { Gpt2Config::load(config); });
  fuzz::write_scratch("exits/exits.json", bytes);
  ModelConfig shape;
  shape.hidden_size = 384;
  shape.num_hidden_layers = 6;
  fuzz::expect_only_sieve_errors([&] { ExitHeads::load(fuzz::scratch_dir() / "exits", shape); });
  fuzz::expect_only_sieve_errors([&] { parse_json_text(bytes, "input").dump(); });
  fuzz::expect_only_sieve_errors([&] {
    const nlohmann::json j = parse_json_text(bytes, "input");
    fuzz::expect_only_sieve_errors([&] { sim::spatten_config_from_json(j, "config"); });
    fuzz::expect_only_sieve_errors([&] { sim::cta_config_from_json(j, "config"); });
    const sim::WorkloadTrace trace = sim::trace_from_json(j, "trace");
    sim::simulate_spatten(sim::SpattenConfig{}, trace);
    if (trace.kind == sim::WorkloadTrace::Kind::Encoder) sim::simulate_cta(sim::CtaHardwareConfig{}, trace);
  });
  return 0;
}
