// sieve eval: accuracy, GFLOPs, tokens/heads kept and wall-clock speedup of pruning policies on a
// GLUE-format data set, each against dense in the same run.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands/common.h"
#include "eval/evaluator.h"
#include "policies/policy_spec.h"

namespace sieve::cli {

namespace {

struct EvalCommandOptions {
  ModelOptions model;
  std::string data, json_out;
  std::vector<std::string> policies;
  size_t limit = 0;
};

std::string join_fractions(const std::vector<double>& v, const char* fmt) {
  std::string s;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, fmt, x);
    s += (s.empty() ? "" : " ") + std::string(buf);
  }
  return s;
}

void run(EvalCommandOptions o) {
  const auto data = load_glue_file(o.data);
  if (o.model.batch_size == 32) o.model.batch_size = 1;  // eval default: latency per example
  const TextModel model = load_model(o.model);
  EvalOptions eo{o.model.batch_size, o.model.max_length, o.limit};
  const auto results = evaluate_policies(model, data, o.policies, eo);

  std::printf("%-44s %8s %7s %8s %9s %9s %10s %8s\n", "policy", "accuracy", "F1", "agree", "GFLOPs/ex", "FLOPs red",
              "ms/example", "speedup");
  for (const auto& r : results)
    std::printf("%-44s %8.4f %7.4f %8.4f %9.4f %8.2fx %10.3f %7.2fx\n", r.spec.c_str(), r.accuracy, r.f1, r.agreement_with_dense,
                r.gflops_per_example, r.flops_reduction, r.latency_ms_per_example, r.speedup);
  std::printf("tokens kept per layer (fraction of dense) / heads per example per layer:\n");
  for (const auto& r : results)
    std::printf("  %-42s tokens [%s]  heads [%s]\n", r.spec.c_str(), join_fractions(r.tokens_kept, "%.2f").c_str(),
                join_fractions(r.heads_kept, "%.1f").c_str());
  std::printf("attention blocks (QKV .. Add & LayerNorm): ms/example and speedup vs dense:\n");
  for (const auto& r : results)
    std::printf("  %-42s %8.3f ms %6.2fx\n", r.spec.c_str(), r.attention_seconds * 1e3 / static_cast<double>(r.examples),
                r.attention_speedup);
  for (const auto& r : results) {
    if (!r.cta) continue;
    std::printf("CTA %s: RL %.3f  RA %.3f  (per-example means)  hashing+aggregation overhead %.3f of dense QKV+attention FLOPs\n",
                r.spec.c_str(), r.cta_rl, r.cta_ra, r.cta_overhead);
    std::printf("  per layer, mean per (example, head): n [%s]\n    k0 [%s]  k1 [%s]  k2 [%s]\n",
                join_fractions(r.cta_n, "%.1f").c_str(), join_fractions(r.cta_k0, "%.1f").c_str(),
                join_fractions(r.cta_k1, "%.1f").c_str(), join_fractions(r.cta_k2, "%.1f").c_str());
  }
  bool any_exit = false;
  for (const auto& r : results) any_exit |= r.exit_layers.back() != static_cast<int64_t>(r.examples);
  if (any_exit) {
    std::printf("exit layer histogram (examples whose output came from layer 1..L):\n");
    for (const auto& r : results) {
      std::string h;
      for (int64_t c : r.exit_layers) h += (h.empty() ? "" : " ") + std::to_string(c);
      std::printf("  %-42s [%s]\n", r.spec.c_str(), h.c_str());
    }
  }

  if (o.json_out.empty()) return;
  nlohmann::json j{{"model", o.model.model_dir.empty() ? default_model_dir().string() : o.model.model_dir},
                   {"data", o.data}, {"examples", results[0].examples}, {"batch_size", eo.batch_size},
                   {"threads", o.model.threads}, {"results", nlohmann::json::array()}};
  for (const auto& r : results) j["results"].push_back(eval_result_json(r));
  write_file_atomically(o.json_out, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.json_out.c_str());
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCommandOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Accuracy, GFLOPs and speedup of pruning policies vs dense on GLUE-format data");
  add_model_options(*cmd, o->model);
  cmd->add_option("--data", o->data, "GLUE TSV (sentence<TAB>label with a header) or HF parquet file")->required();
  cmd->add_option("--policy,-p", o->policies, std::string("Policy spec, repeatable: ") + kPolicySpecHelp);
  cmd->add_option("--limit", o->limit, "Evaluate only the first N examples");
  cmd->add_option("--json", o->json_out, "Write results as JSON to FILE");
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
