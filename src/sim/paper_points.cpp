#include "sim/paper_points.h"

#include <cstdio>

namespace sieve::sim {

namespace {

std::string format(const char* fmt, double a, double b = 0.0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

}  // namespace

std::vector<PaperPoint> spatten_paper_points(const SpattenConfig& config) {
  std::vector<PaperPoint> points;
  // Summarization: BERT-base (12 heads of 64), 128 tokens, dense, per layer.
  const SpattenCost summarization = spatten_summarization_layer(config, 128, 12, 64, false);
  points.push_back({"summarization-stage throughput (BERT-base layer, 128 tokens)", 1.61, summarization.tflops(config), "TFLOPS",
                    "bound by " + summarization.bound() + "; the model keeps all " +
                        format("%.0f", config.multipliers()) + " multipliers busy, the chip reaches 79 % of that"});
  // Generation: GPT-2-small (12 heads of 64, 12 layers), one step over 1,024 cached tokens, dense keys and values.
  GenerationShape gpt2{12, 12, 12, 64};
  KvTraffic step;
  step.key_elements = step.value_elements = 1024.0 * 64 * 12 * 12;
  step.key_bits = step.key_elements * 32.0, step.key_bytes = step.value_bytes = step.key_elements * 4.0;
  step.head_reads = 12 * 12;
  const SpattenCost generation = spatten_generation(config, gpt2, step);
  points.push_back({"generation-stage throughput (GPT-2-small step, 1,024 cached tokens)", 0.43, generation.tflops(config), "TFLOPS",
                    "bound by " + generation.bound() + format(" at %.0f-bit keys and values streamed at the full %.0f GB/s",
                                                              config.dense_bits, config.bytes_per_cycle() * config.clock_ghz)});
  return points;
}

std::vector<PaperPoint> cta_paper_points(const CtaHardwareConfig& config) {
  // Section VI: n = 512, d = 64; CTA-0/0.5/1 use 58.3/52.2/44.4 % of the linear and 35.2/27.5/18.4 %
  // of the attention computation and take 41/34/26 % of the ideal accelerator's latency.
  struct Level {
    const char* name;
    double rl, ra, latency;
  };
  constexpr Level kLevels[] = {{"CTA-0", 0.583, 0.352, 0.41}, {"CTA-0.5", 0.522, 0.275, 0.34}, {"CTA-1", 0.444, 0.184, 0.26}};
  const double n = 512, d = config.sa_height > 0 ? config.sa_height : 64;
  std::vector<PaperPoint> points;
  for (double dw : {d, 1024.0}) {
    for (const Level& level : kLevels) {
      for (const ClusterCounts& k : clusters_for(n, level.rl, level.ra)) {
        // The paper does not give k1 and k2 apart; half of kc each (only CAVG's few cycles depend on it).
        const CtaCycles cycles = cta_head_cycles(config, n, dw, d, k.k0, k.kc / 2, k.kc / 2);
        const double ideal = ideal_head_cycles(config, n, dw, d);
        points.push_back({std::string(level.name) + format(" latency / ideal (n 512, token width %.0f", dw) +
                              format(", k0 %.0f, kc %.0f)", k.k0, k.kc),
                          level.latency, cycles.total() / ideal, "ratio",
                          format("compression %.0f %%, linear %.0f %%", 100 * cycles.compression / cycles.total(),
                                 100 * cycles.linear / cycles.total()) +
                              format(", attention %.0f %% of the latency (paper: 7, 34, 59)", 100 * cycles.attention / cycles.total())});
      }
    }
  }
  return points;
}

}  // namespace sieve::sim
