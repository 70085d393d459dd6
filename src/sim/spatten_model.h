#pragma once
// An analytical model of the SpAtten accelerator (../shared/seeds/spatten-slides.txt: 1,024
// multipliers, 392 KB SRAM, HBM2 of 16 channels at 32 GB/s, a top-k engine of 16 '<' and 16 '>'
// comparators, cascade token/head pruning, local value pruning, progressive quantization that
// fetches MSBs first and LSBs only when the attention is not confident).
//
// It replays what Sieve computed (sim/workload_trace.h), attention only, as the paper measures
// ("speedup on attention layers"). SpAtten's modules are pipelined (the slides' "pipelined
// architecture"), so a unit of work (one input's layer in the summarization stage; the whole run of
// generation steps) takes as long as its slowest module:
//   cycles = max(Q.K MACs / qk_multipliers, prob.V MACs / pv_multipliers,
//                top-k comparisons / comparators, DRAM bytes / bytes per cycle)
// What the paper leaves open is a config value with the assumption written beside it (SpattenConfig).
#include <string>
#include <vector>

#include "sim/workload_trace.h"

namespace sieve::sim {

struct SpattenConfig {
  double clock_ghz = 1.0;        // assumed: the slides give no clock; 1 GHz is what CTA and A3 use
  double qk_multipliers = 512;   // 1,024 in all (slides); split evenly between the Q.K and prob.V modules (assumed)
  double pv_multipliers = 512;
  double dram_channels = 16;     // HBM2, 16 channels of 32 GB/s (slides)
  double channel_gbps = 32;
  double sram_kib = 392;         // slides; half of it assumed to buffer one head's keys and values
  double topk_comparators = 16;  // each side of the quick-select (slides): elements compared per cycle
  double quickselect_passes = 2; // a quick-select compares ~2 n elements on average (assumed)
  // Width of Q/K/V in DRAM when a run did not quantize (Sieve's dense cache is fp32; the
  // accelerator's fixed-point datapath is narrower). Assumed 12 bits; set 32 to replay fp32.
  double dense_bits = 12;

  double bytes_per_cycle() const { return dram_channels * channel_gbps / clock_ghz; }
  double multipliers() const { return qk_multipliers + pv_multipliers; }
};

// Reads the keys present in `j` over the defaults; unknown keys and out-of-range values throw Error.
SpattenConfig spatten_config_from_json(const nlohmann::json& j, const std::string& source);
nlohmann::json spatten_config_to_json(const SpattenConfig& config);

// Modelled cost of one unit of work, split by module (cycles) and DRAM bytes.
struct SpattenCost {
  double qk_cycles = 0, pv_cycles = 0, topk_cycles = 0, dram_cycles = 0;
  double cycles = 0;      // the pipelined total: sums over units of the slowest module's cycles
  double dram_bytes = 0;
  double flops = 0;       // useful attention FLOPs (2 per MAC, recomputation after LSB refetch excluded)
  void add(const SpattenCost& other);
  double seconds(const SpattenConfig& c) const { return cycles / (c.clock_ghz * 1e9); }
  double tflops(const SpattenConfig& c) const { return cycles > 0 ? flops / seconds(c) / 1e12 : 0.0; }
  std::string bound() const;  // the module that took the most cycles
};

// Summarization stage of one input's layer: `tokens` queries attend over `tokens` keys in `heads`
// heads of `head_dim`; `topk` when the layer ranks tokens (cascade pruning: one quick-select over
// the tokens and one over the heads).
SpattenCost spatten_summarization_layer(const SpattenConfig& c, double tokens, double heads, double head_dim, bool topk);

// Generation stage: a run of steps with the given KV reads (values after local value pruning;
// keys at the bits fetched, with the Q.K of LSB-refetched keys computed twice).
SpattenCost spatten_generation(const SpattenConfig& c, const GenerationShape& shape, const KvTraffic& traffic);

struct SpattenSettingResult {
  std::string spec;
  SpattenCost cost;   // modelled, as the trace ran
  SpattenCost dense;  // the same inputs with nothing pruned (encoder) / the run's dense anchor (decoder)
  double speedup() const { return cost.cycles > 0 ? dense.cycles / cost.cycles : 0.0; }
  double dram_reduction() const { return cost.dram_bytes > 0 ? dense.dram_bytes / cost.dram_bytes : 0.0; }
};

// One result per setting of the trace.
std::vector<SpattenSettingResult> simulate_spatten(const SpattenConfig& c, const WorkloadTrace& trace);

}  // namespace sieve::sim
