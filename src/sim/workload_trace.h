#pragma once
// What Sieve computed, in the shapes an accelerator model replays (`sieve sim`):
//   encoder  per setting, input and layer: tokens in the attention, heads computed, and for CTA
//            heads the clusters k0, k1, k2 (`sieve eval --trace FILE`);
//   decoder  per setting, the KV-cache reads of the generation steps: key and value elements,
//            bits fetched, LSB refetches (`sieve perplexity --trace FILE`).
// The first setting of a trace is the dense anchor of the run that wrote it.
//
// A trace is JSON. Reading one validates every count against the model shape it states (tokens
// <= max_tokens, heads <= heads, clusters <= tokens, finite non-negative traffic), so a damaged or
// hand-edited file is refused with a message, never replayed into nonsense.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/bert_encoder.h"
#include "model/kv_cache.h"

namespace sieve::sim {

struct EncoderShape {
  int layers = 0;
  int heads = 0;
  int64_t hidden = 0;
  int64_t head_dim = 0;
  int64_t max_tokens = 0;  // longest input the model takes
};

struct EncoderSetting {
  std::string spec;
  std::vector<std::vector<LayerWork>> inputs;  // [input][layer]; a layer an input never reached is all zero
};

struct GenerationShape {
  int layers = 0;
  int kv_heads = 0;
  int query_heads = 0;
  int64_t head_dim = 0;
};

struct DecoderSetting {
  std::string spec;
  int64_t steps = 0;        // generation steps the traffic was counted over
  double perplexity = 0.0;  // what the setting scored (for the report; not used by the models)
  KvTraffic traffic;        // totals over the steps
};

struct WorkloadTrace {
  enum class Kind { Encoder, Decoder } kind = Kind::Encoder;
  std::string source;  // model and data, for the report
  EncoderShape encoder;
  std::vector<EncoderSetting> encoder_settings;
  GenerationShape decoder;
  std::vector<DecoderSetting> decoder_settings;
};

nlohmann::json trace_to_json(const WorkloadTrace& trace);
// Throws Error("<source>: ...") for anything inconsistent.
WorkloadTrace trace_from_json(const nlohmann::json& j, const std::string& source);
WorkloadTrace read_trace(const std::filesystem::path& path);

}  // namespace sieve::sim
