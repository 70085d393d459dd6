#include "sim/cta_model.h"

#include <algorithm>
#include <cmath>

#include "sim/config_knobs.h"
#include "util/error.h"

namespace sieve::sim {

namespace {

constexpr Knob<CtaHardwareConfig> kKnobs[] = {
    {"clock_ghz", &CtaHardwareConfig::clock_ghz, 1e-3, 1e3},
    {"sa_width", &CtaHardwareConfig::sa_width, 1, 1 << 16},
    {"sa_height", &CtaHardwareConfig::sa_height, 0, 1 << 16},
    {"pag_tiles", &CtaHardwareConfig::pag_tiles, 1, 1 << 16},
    {"pag_tokens_per_tile", &CtaHardwareConfig::pag_tokens_per_tile, 1, 1 << 16},
    {"token_dim", &CtaHardwareConfig::token_dim, 0, 1 << 20},
    {"paper_token_width", &CtaHardwareConfig::paper_token_width, 0, 1},
};

}  // namespace

CtaHardwareConfig cta_config_from_json(const nlohmann::json& j, const std::string& source) {
  return config_from_json<CtaHardwareConfig>(j, kKnobs, "CTA", source);
}

nlohmann::json cta_config_to_json(const CtaHardwareConfig& config) { return config_to_json<CtaHardwareConfig>(config, kKnobs); }

CtaCycles cta_head_cycles(const CtaHardwareConfig& c, double n, double dw, double d, double k0, double k1, double k2) {
  const double b = c.sa_width, passes = std::ceil(dw / d), kc = k1 + k2;
  const double batches = std::ceil(k0 / b);
  const double sa_batch = dw + 2.0 * kc;
  const double pag_batch = std::ceil(b / c.pag_tiles) * n / c.pag_tokens_per_tile;
  CtaCycles cycles;
  cycles.compression = 3.0 * n * passes + k2 * passes;
  cycles.linear = 2.0 * std::ceil(kc / b) * dw + batches * dw;
  cycles.attention = batches * (std::max(sa_batch, pag_batch) - dw);
  return cycles;
}

CtaCycles dense_head_cycles(const CtaHardwareConfig& c, double n, double dw, double /*d*/) {
  const double batches = std::ceil(n / c.sa_width);
  CtaCycles cycles;
  cycles.linear = 3.0 * batches * dw;
  cycles.attention = batches * 2.0 * n;
  return cycles;
}

double ideal_head_cycles(const CtaHardwareConfig& c, double n, double dw, double d) {
  return (3.0 * n * dw * d + 2.0 * n * n * d) / (c.sa_width * d);
}

std::vector<ClusterCounts> clusters_for(double n, double rl, double ra) {
  // k0 = 3 n RL - 2 kc and k0 kc = n^2 RA: 2 kc^2 - 3 n RL kc + n^2 RA = 0.
  const double p = 3.0 * n * rl, q = n * n * ra, disc = p * p - 8.0 * q;
  if (disc < 0) return {};
  std::vector<ClusterCounts> roots;
  for (double sign : {1.0, -1.0}) {
    const double kc = (p + sign * std::sqrt(disc)) / 4.0, k0 = p - 2.0 * kc;
    if (kc > 0 && k0 > 0 && kc <= 2.0 * n && k0 <= n) roots.push_back({k0, kc});
  }
  return roots;
}

std::vector<CtaSettingResult> simulate_cta(const CtaHardwareConfig& c, const WorkloadTrace& trace) {
  if (trace.kind != WorkloadTrace::Kind::Encoder)
    throw Error("sieve sim --arch cta replays encoder traces (sieve eval --trace); this one is a decoder's");
  const EncoderShape& shape = trace.encoder;
  const double d = c.sa_height > 0 ? c.sa_height : static_cast<double>(shape.head_dim);
  const double dw = c.token_width(static_cast<double>(shape.hidden), d);
  std::vector<CtaSettingResult> results;
  for (const EncoderSetting& s : trace.encoder_settings) {
    CtaSettingResult r{s.spec, {}, {}, 0.0};
    for (const auto& layers : s.inputs) {
      const double length = layers.front().tokens;
      const CtaCycles dense_head = dense_head_cycles(c, length, dw, d);
      const double ideal_head = ideal_head_cycles(c, length, dw, d);
      for (const LayerWork& w : layers) {
        for (int h = 0; h < shape.heads; ++h) r.dense.add(dense_head);
        r.ideal += shape.heads * ideal_head;
        if (w.tokens == 0) continue;
        const CtaCycles plain = dense_head_cycles(c, w.tokens, dw, d);
        for (int h = 0; h < w.heads - w.cta_heads; ++h) r.cost.add(plain);
        if (w.cta_heads == 0) continue;
        // Every CTA head at the layer's mean clusters (the trace keeps sums; the cost is nearly
        // linear in them, the ceilings aside).
        const double m = w.cta_heads;
        const CtaCycles head = cta_head_cycles(c, w.tokens, dw, d, w.cta_k0 / m, w.cta_k1 / m, w.cta_k2 / m);
        for (int h = 0; h < w.cta_heads; ++h) r.cost.add(head);
      }
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace sieve::sim
