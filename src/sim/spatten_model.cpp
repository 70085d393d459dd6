#include "sim/spatten_model.h"

#include <algorithm>
#include <cmath>

#include "sim/config_knobs.h"
#include "util/error.h"

namespace sieve::sim {

namespace {

constexpr Knob<SpattenConfig> kKnobs[] = {
    {"clock_ghz", &SpattenConfig::clock_ghz, 1e-3, 1e3},
    {"qk_multipliers", &SpattenConfig::qk_multipliers, 1, 1e9},
    {"pv_multipliers", &SpattenConfig::pv_multipliers, 1, 1e9},
    {"dram_channels", &SpattenConfig::dram_channels, 1, 1e6},
    {"channel_gbps", &SpattenConfig::channel_gbps, 1e-3, 1e6},
    {"sram_kib", &SpattenConfig::sram_kib, 1, 1e9},
    {"topk_comparators", &SpattenConfig::topk_comparators, 1, 1e9},
    {"quickselect_passes", &SpattenConfig::quickselect_passes, 1, 100},
    {"dense_bits", &SpattenConfig::dense_bits, 1, 32},
};

// How many times a head's keys and values (kv_bytes) are fetched: once when they fit the half of
// the SRAM that buffers them, else once per tile of queries.
double kv_refetch_factor(const SpattenConfig& c, double kv_bytes) {
  const double buffer = c.sram_kib * 1024.0 / 2.0;
  return std::max(1.0, std::ceil(kv_bytes / buffer));
}

void finish(const SpattenConfig& c, SpattenCost& cost) {
  cost.dram_cycles = cost.dram_bytes / c.bytes_per_cycle();
  cost.cycles = std::max({cost.qk_cycles, cost.pv_cycles, cost.topk_cycles, cost.dram_cycles});
}

}  // namespace

SpattenConfig spatten_config_from_json(const nlohmann::json& j, const std::string& source) {
  return config_from_json<SpattenConfig>(j, kKnobs, "SpAtten", source);
}

nlohmann::json spatten_config_to_json(const SpattenConfig& config) { return config_to_json<SpattenConfig>(config, kKnobs); }

void SpattenCost::add(const SpattenCost& other) {
  qk_cycles += other.qk_cycles, pv_cycles += other.pv_cycles, topk_cycles += other.topk_cycles;
  dram_cycles += other.dram_cycles, cycles += other.cycles, dram_bytes += other.dram_bytes, flops += other.flops;
}

std::string SpattenCost::bound() const {
  const double most = std::max({qk_cycles, pv_cycles, topk_cycles, dram_cycles});
  if (most == dram_cycles) return "DRAM";
  if (most == topk_cycles) return "top-k";
  return most == qk_cycles ? "Q.K" : "prob.V";
}

SpattenCost spatten_summarization_layer(const SpattenConfig& c, double tokens, double heads, double head_dim, bool topk) {
  SpattenCost cost;
  const double macs = heads * tokens * tokens * head_dim;  // each of Q.K and prob.V
  cost.qk_cycles = macs / c.qk_multipliers;
  cost.pv_cycles = macs / c.pv_multipliers;
  if (topk) cost.topk_cycles = c.quickselect_passes * (tokens + heads) / c.topk_comparators;
  const double element_bytes = c.dense_bits / 8.0, head_bytes = tokens * head_dim * element_bytes;
  // Q in, output out once; K and V once per tile of queries when a head's K and V overflow the buffer.
  cost.dram_bytes = heads * (2.0 * head_bytes + 2.0 * head_bytes * kv_refetch_factor(c, 2.0 * head_bytes));
  cost.flops = 4.0 * macs;
  finish(c, cost);
  return cost;
}

SpattenCost spatten_generation(const SpattenConfig& c, const GenerationShape& shape, const KvTraffic& t) {
  SpattenCost cost;
  const double group = static_cast<double>(shape.query_heads) / shape.kv_heads;  // query heads reading each KV head
  cost.qk_cycles = (t.key_elements + t.refetched_key_elements) * group / c.qk_multipliers;
  cost.pv_cycles = t.value_elements * group / c.pv_multipliers;
  // Local value pruning ranks each query head's probabilities over the keys it read.
  if (t.value_elements < t.key_elements)
    cost.topk_cycles = c.quickselect_passes * (t.key_elements / static_cast<double>(shape.head_dim)) * group / c.topk_comparators;
  // A run that read an fp32 cache is replayed at the accelerator's dense width; a quantized one at
  // what it fetched (codes and scales).
  const bool fp32_keys = t.key_bits >= 32.0 * t.key_elements;
  const bool fp32_values = t.value_bytes >= 4.0 * t.value_elements;
  cost.dram_bytes = (fp32_keys ? t.key_elements * c.dense_bits / 8.0 : t.key_bytes) +
                    (fp32_values ? t.value_elements * c.dense_bits / 8.0 : t.value_bytes);
  cost.flops = 2.0 * (t.key_elements + t.value_elements) * group;
  finish(c, cost);
  return cost;
}

std::vector<SpattenSettingResult> simulate_spatten(const SpattenConfig& c, const WorkloadTrace& trace) {
  std::vector<SpattenSettingResult> results;
  if (trace.kind == WorkloadTrace::Kind::Decoder) {
    const SpattenCost dense = spatten_generation(c, trace.decoder, trace.decoder_settings.front().traffic);
    for (const DecoderSetting& s : trace.decoder_settings)
      results.push_back({s.spec, spatten_generation(c, trace.decoder, s.traffic), dense});
    return results;
  }
  const EncoderShape& shape = trace.encoder;
  const double d = static_cast<double>(shape.head_dim);
  for (const EncoderSetting& s : trace.encoder_settings) {
    SpattenSettingResult r{s.spec, {}, {}};
    // Every setting but dense ("dense", or "dense pool=..." from an embedding run) ranks tokens.
    const bool ranks = s.spec.rfind("dense", 0) != 0;
    for (const auto& layers : s.inputs) {
      const SpattenCost dense_layer = spatten_summarization_layer(c, layers.front().tokens, shape.heads, d, false);
      for (const LayerWork& w : layers) {
        r.dense.add(dense_layer);
        if (w.tokens > 0) r.cost.add(spatten_summarization_layer(c, w.tokens, w.heads, d, ranks));
      }
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace sieve::sim
