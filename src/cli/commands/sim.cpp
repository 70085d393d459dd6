// sieve sim: what Sieve's measured pruning would be worth on the SpAtten and CTA accelerators.
// Replays a trace written by `sieve eval --trace` or `sieve perplexity --trace` through the
// models in src/sim, or (--validate) recomputes the papers' published points.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands/common.h"
#include "sim/cta_model.h"
#include "sim/paper_points.h"
#include "sim/spatten_model.h"
#include "sim/workload_trace.h"
#include "util/error.h"
#include "util/json_file.h"

namespace sieve::cli {

namespace {

struct SimOptions {
  std::string arch, trace, config, json_out;
  bool validate = false, print_config = false;
};

nlohmann::json print_points(const std::vector<sim::PaperPoint>& points) {
  nlohmann::json out = nlohmann::json::array();
  std::printf("%-78s %8s %8s %7s  %s\n", "published point", "paper", "model", "diff", "why");
  for (const auto& p : points) {
    const double diff = p.paper != 0 ? (p.model - p.paper) / p.paper : 0.0;
    std::printf("%-78s %8.3f %8.3f %+6.0f%%  %s\n", p.what.c_str(), p.paper, p.model, 100 * diff, p.note.c_str());
    out.push_back({{"what", p.what}, {"paper", p.paper}, {"model", p.model}, {"unit", p.unit}, {"note", p.note}});
  }
  return out;
}

nlohmann::json run_spatten(const sim::SpattenConfig& c, const sim::WorkloadTrace& trace) {
  const auto results = sim::simulate_spatten(c, trace);
  const bool decoder = trace.kind == sim::WorkloadTrace::Kind::Decoder;
  // Per unit of the trace: an input (encoder) or a generation step (decoder).
  const auto units = [&](size_t s) {
    return decoder ? static_cast<double>(trace.decoder_settings[s].steps)
                   : static_cast<double>(trace.encoder_settings[s].inputs.size());
  };
  const char* per = decoder ? "step" : "input";
  std::printf("SpAtten model, %s trace (%s): attention only, per %s\n", decoder ? "generation" : "summarization",
              trace.source.c_str(), per);
  std::printf("%-44s %11s %8s %12s %8s %8s %7s%s\n", "setting", "us", "speedup", "DRAM KB", "DRAM red", "TFLOPS", "bound",
              decoder ? "  perplexity" : "");
  nlohmann::json out = nlohmann::json::array();
  for (size_t s = 0; s < results.size(); ++s) {
    const auto& r = results[s];
    const double n = std::max(units(s), 1.0);
    std::printf("%-44s %11.3f %7.2fx %12.1f %7.2fx %8.3f %7s", r.spec.c_str(), r.cost.seconds(c) * 1e6 / n, r.speedup(),
                r.cost.dram_bytes / 1024.0 / n, r.dram_reduction(), r.cost.tflops(c), r.cost.bound().c_str());
    if (decoder) std::printf("  %10.4f", trace.decoder_settings[s].perplexity);
    std::printf("\n");
    nlohmann::json row{{"setting", r.spec}, {"microseconds_per_" + std::string(per), r.cost.seconds(c) * 1e6 / n},
                       {"speedup", r.speedup()}, {"dram_bytes_per_" + std::string(per), r.cost.dram_bytes / n},
                       {"dram_reduction", r.dram_reduction()}, {"tflops", r.cost.tflops(c)}, {"bound", r.cost.bound()},
                       {"cycles", {{"qk", r.cost.qk_cycles}, {"pv", r.cost.pv_cycles}, {"topk", r.cost.topk_cycles},
                                   {"dram", r.cost.dram_cycles}, {"total", r.cost.cycles}}}};
    if (decoder) row["perplexity"] = trace.decoder_settings[s].perplexity;
    out.push_back(std::move(row));
  }
  return out;
}

nlohmann::json run_cta(const sim::CtaHardwareConfig& c, const sim::WorkloadTrace& trace) {
  const auto results = sim::simulate_cta(c, trace);
  std::printf("CTA model (%s): QKV projections and attention of every head, one CTA unit, per input\n", trace.source.c_str());
  std::printf("%-44s %11s %8s %9s %6s %6s %6s\n", "setting", "us", "speedup", "vs ideal", "comp%", "lin%", "att%");
  nlohmann::json out = nlohmann::json::array();
  for (size_t s = 0; s < results.size(); ++s) {
    const auto& r = results[s];
    const double n = std::max<double>(static_cast<double>(trace.encoder_settings[s].inputs.size()), 1.0);
    const double total = r.cost.total(), us = total / (c.clock_ghz * 1e3) / n;
    const auto pct = [&](double part) { return total > 0 ? 100.0 * part / total : 0.0; };
    std::printf("%-44s %11.3f %7.2fx %8.2fx %6.1f %6.1f %6.1f\n", r.spec.c_str(), us, r.speedup(), total > 0 ? r.ideal / total : 0.0,
                pct(r.cost.compression), pct(r.cost.linear), pct(r.cost.attention));
    out.push_back({{"setting", r.spec}, {"microseconds_per_input", us}, {"speedup", r.speedup()},
                   {"speedup_vs_ideal", total > 0 ? r.ideal / total : 0.0},
                   {"cycles", {{"compression", r.cost.compression}, {"linear", r.cost.linear}, {"attention", r.cost.attention}}},
                   {"dense_cycles", r.dense.total()}, {"ideal_cycles", r.ideal}});
  }
  return out;
}

void run(const SimOptions& o) {
  nlohmann::json config_json = nlohmann::json::object();
  if (!o.config.empty()) config_json = read_json_file(o.config, kMaxSmallJsonBytes);
  const bool spatten = o.arch == "spatten";
  sim::SpattenConfig spatten_config;
  sim::CtaHardwareConfig cta_config;
  if (spatten) spatten_config = sim::spatten_config_from_json(config_json, o.config.empty() ? "config" : o.config);
  else cta_config = sim::cta_config_from_json(config_json, o.config.empty() ? "config" : o.config);
  const nlohmann::json config_out = spatten ? sim::spatten_config_to_json(spatten_config) : sim::cta_config_to_json(cta_config);
  if (o.print_config) {
    std::printf("%s\n", config_out.dump(2).c_str());
    return;
  }
  if (o.validate == !o.trace.empty()) throw Error("give either --trace FILE or --validate");
  nlohmann::json out{{"arch", o.arch}, {"config", config_out}};
  if (o.validate) {
    out["validation"] = print_points(spatten ? sim::spatten_paper_points(spatten_config) : sim::cta_paper_points(cta_config));
  } else {
    const sim::WorkloadTrace trace = sim::read_trace(o.trace);
    out["trace"] = o.trace;
    out["results"] = spatten ? run_spatten(spatten_config, trace) : run_cta(cta_config, trace);
  }
  if (o.json_out.empty()) return;
  write_file_atomically(o.json_out, [&](std::ostream& file) { file << out.dump(2) << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.json_out.c_str());
}

}  // namespace

void register_sim(CLI::App& app) {
  auto o = std::make_shared<SimOptions>();
  CLI::App* cmd = app.add_subcommand("sim", "Model what a traced run's pruning would be worth on the SpAtten or CTA accelerator");
  cmd->add_option("--arch", o->arch, "spatten or cta")->required()->check(CLI::IsMember({"spatten", "cta"}));
  cmd->add_option("--trace", o->trace, "Trace from `sieve eval --trace` (encoder) or `sieve perplexity --trace` (decoder)");
  cmd->add_option("--config", o->config, "JSON object overriding the architecture's parameters (see --print-config)");
  cmd->add_flag("--validate", o->validate, "Recompute the paper's published points instead of replaying a trace");
  cmd->add_flag("--print-config", o->print_config, "Print the parameters in force (the papers' values unless --config)");
  cmd->add_option("--json", o->json_out, "Also write the results as JSON to FILE");
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
