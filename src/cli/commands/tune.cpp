// sieve tune: the fastest policy within an accuracy budget, searched by successive halving on
// calibration data (eval/tune.h); prints the Pareto front and the choice, optionally checks the
// choice on held-out data with the same evaluator `sieve eval` uses.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands/common.h"
#include "eval/tune.h"
#include "policies/policy_spec.h"
#include "util/error.h"

namespace sieve::cli {

namespace {

struct TuneCommandOptions {
  ModelOptions model;
  std::string data, verify_data, json_out, metric = "auto";
  std::vector<std::string> precisions{"fp32"};
  TuneOptions tune;
};

nlohmann::json measurement_json(const TuneMeasurement& m) {
  nlohmann::json j = eval_result_json(m.result);
  j["loss_points"] = m.point.loss;
  j["loss_se_points"] = m.point.loss_se;
  return j;
}

void print_front(const TuneResult& r, const std::string& metric) {
  const TuneRound& last = r.rounds.back();
  std::printf("Pareto front on %zu calibration rows (dense fp32 %s %.2f; loss in points +- one standard error):\n",
              last.rows, metric.c_str(), 100.0 * last.dense.accuracy);
  std::printf("%-44s %-9s %8s %16s %8s %9s\n", "policy", "precision", metric.c_str(), "loss (pts)", "speedup", "FLOPs red");
  for (const auto& m : r.front)
    std::printf("%-44s %-9s %8.2f %+8.2f +- %-5.2f %7.2fx %8.2fx\n", m.result.spec.c_str(), precision_name(m.result.precision),
                100.0 * m.result.accuracy, m.point.loss, m.point.loss_se, m.point.speedup, m.result.flops_reduction);
}

void run(TuneCommandOptions o) {
  EvalData data = load_eval_data(o.data);
  const bool pairs = data.labelled.empty();
  if (o.metric == "auto") o.metric = pairs ? "spearman" : "accuracy";
  o.tune.metric = parse_tune_metric(o.metric);
  o.tune.precisions.clear();
  for (const auto& p : o.precisions) o.tune.precisions.push_back(parse_precision(p));
  // Like eval: classification is timed per example (batch 1), embeddings in batches (32).
  // (Not `batch_size == 32`, the shared default: an explicit --batch-size 32 must mean 32.)
  o.tune.batch_size = !o.model.batch_size_given && !pairs ? 1 : o.model.batch_size;
  o.tune.max_length = o.model.max_length;
  TextModel model = load_model(o.model);
  // bf16 and int8 settings run with a per-call precision; the weights' copies are made here, once
  // (the model's own precision is set back to fp32, which the anchor runs in).
  for (Precision p : o.tune.precisions)
    if (p != Precision::Fp32) model.set_precision(p);
  model.set_precision(Precision::Fp32);
  const EvalData verify = o.verify_data.empty() ? EvalData{} : load_eval_data(o.verify_data);
  if (!o.verify_data.empty() && verify.labelled.empty() != pairs)
    throw Error("tune: --verify data must be of the same kind as --data (labelled rows or scored pairs)");

  o.tune.on_round = [](size_t round, size_t rounds, const TuneRound& r) {
    size_t kept = 0;
    for (const auto& m : r.measured) kept += m.kept;
    std::fprintf(stderr, "round %zu/%zu: %zu rows, %zu candidates, %.1f s", round + 1, rounds, r.rows, r.measured.size(), r.seconds);
    if (round + 1 < rounds) std::fprintf(stderr, ", %zu go on", kept);
    std::fputc('\n', stderr);
  };
  const TuneResult result = pairs ? tune_policy(model, data.pairs, o.tune) : tune_policy(model, data.labelled, o.tune);

  print_front(result, o.metric);
  const TuneMeasurement& best = result.best;
  std::printf("best: %s\n", best.result.spec.c_str());
  std::printf("  precision %s, loss %+.2f +- %.2f points (budget %g, %s), speedup %.2fx; %zu candidates, %.1f s\n",
              precision_name(best.result.precision), best.point.loss, best.point.loss_se, o.tune.budget,
              o.tune.confidence_z > 0 ? "with the confidence margin" : "point estimate", best.point.speedup,
              result.candidates, result.seconds);

  nlohmann::json verification;
  if (!o.verify_data.empty() && pairs) {
    std::vector<EmbeddingEvalSetting> settings;
    if (!(best.result.spec == "dense" && best.result.precision == Precision::Fp32)) {
      settings.emplace_back();
      settings.back().spec = best.result.spec, settings.back().precision = best.result.precision;
    }
    const auto results = evaluate_embeddings(model, verify.pairs, settings, {o.tune.batch_size, o.tune.max_length, 0, "verifying"});
    std::vector<double> gold;
    for (const auto& p : verify.pairs) gold.push_back(p.score);
    const TunePoint point = spearman_point(results.back(), results.front(), gold);
    std::printf("verified on %s (%zu pairs): Spearman %.2f vs dense %.2f, loss %+.2f +- %.2f points, speedup %.2fx\n",
                o.verify_data.c_str(), results.back().pairs, 100.0 * results.back().spearman, 100.0 * results.front().spearman,
                point.loss, point.loss_se, point.speedup);
    verification = {{"data", o.verify_data}, {"dense_spearman", results.front().spearman}, {"spearman", results.back().spearman},
                    {"policy", best.result.spec}, {"precision", precision_name(best.result.precision)},
                    {"loss_points", point.loss}, {"loss_se_points", point.loss_se}, {"speedup", point.speedup},
                    {"flops_reduction", results.back().flops_reduction}};
  } else if (!o.verify_data.empty()) {
    const auto& verify_rows = verify.labelled;
    // The choice on rows the search never saw, against dense, by the evaluator `sieve eval` uses.
    std::vector<EvalSetting> settings;
    if (!(best.result.spec == "dense" && best.result.precision == Precision::Fp32))
      settings.push_back({best.result.spec, best.result.precision});
    const auto results = evaluate_settings(model, verify_rows, settings, {o.tune.batch_size, o.tune.max_length, 0, Precision::Fp32, "verifying"});
    const TuneMeasurement checked{results.back(), tune_point(o.tune.metric, results.back(), results.front())};
    std::printf("verified on %s (%zu rows): accuracy %.2f %% vs dense %.2f %%, loss %+.2f +- %.2f points, speedup %.2fx\n",
                o.verify_data.c_str(), checked.result.examples, 100.0 * checked.result.accuracy, 100.0 * results.front().accuracy,
                checked.point.loss, checked.point.loss_se, checked.point.speedup);
    verification = {{"data", o.verify_data}, {"dense", eval_result_json(results.front())}, {"best", measurement_json(checked)}};
  }

  if (o.json_out.empty()) return;
  nlohmann::json j{{"model", o.model.model_dir.empty() ? default_model_dir().string() : o.model.model_dir},
                   {"exits", model.exits() != nullptr}, {"data", o.data}, {"metric", o.metric},
                   {"budget_points", o.tune.budget}, {"confidence_z", o.tune.confidence_z}, {"precisions", o.precisions},
                   {"batch_size", o.tune.batch_size}, {"threads", o.model.threads}, {"candidates", result.candidates},
                   {"seconds", result.seconds}, {"subset_rows", nlohmann::json::array()}, {"rounds", nlohmann::json::array()},
                   {"front", nlohmann::json::array()}, {"best", measurement_json(best)}};
  for (const auto& round : result.rounds) {
    nlohmann::json measured = nlohmann::json::array();
    for (const auto& m : round.measured) {
      measured.push_back(measurement_json(m));
      measured.back()["kept"] = m.kept;
    }
    j["subset_rows"].push_back(round.rows);
    j["rounds"].push_back({{"rows", round.rows}, {"seconds", round.seconds}, {"dense", eval_result_json(round.dense)},
                           {"measured", measured}});
  }
  for (const auto& m : result.front) j["front"].push_back(measurement_json(m));
  if (!verification.is_null()) j["verification"] = verification;
  write_file_atomically(o.json_out, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.json_out.c_str());
}

// The budget is checked as text, so "abc", "nan", "inf" and "-1" all get the same clear message.
std::string budget_problem(const std::string& text) {
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return "budget '" + text + "' is not a number (accuracy points, e.g. 1.0)";
  try {
    check_budget(v);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

void register_tune(CLI::App& app) {
  auto o = std::make_shared<TuneCommandOptions>();
  o->tune.limit = 2000;  // a few minutes for a small model on 2 cores; a whole training split would take hours
  CLI::App* cmd = app.add_subcommand("tune", "Fastest pruning policy within an accuracy budget: Pareto front and choice, searched on calibration data");
  add_model_options(*cmd, o->model);
  cmd->remove_option(cmd->get_option("--precision"));  // tune takes a list: each candidate at each precision
  cmd->add_option("--precision", o->precisions, "GEMM precisions to try, e.g. fp32,bf16,int8 (speedups are against fp32 dense)")
      ->delimiter(',')->check(CLI::IsMember({"fp32", "bf16", "int8"}));
  cmd->add_option("--data", o->data, "Calibration data (GLUE TSV or parquet: labelled rows, or sentence pairs with a score): rows kept apart from validation")->required();
  cmd->add_option("--budget", o->tune.budget, "Metric points (accuracy or Spearman x 100) you can lose against dense, e.g. 1.0 (0 = lossless)")
      ->required()->check(CLI::Validator(budget_problem, "POINTS"));
  cmd->add_option("-c,--candidates", o->tune.specs,
                  std::string("Policy specs to try instead of the generated space: repeat -c or separate with ';'. ") + kPolicySpecHelp)
      ->delimiter(';');
  cmd->add_option("--metric", o->metric, "What the budget counts: accuracy (labelled data) or spearman (STS-B-style scored pairs); default: by the data")
      ->check(CLI::IsMember({"auto", "accuracy", "spearman"}));
  cmd->add_option("--limit", o->tune.limit, "Use at most N calibration rows, a random sample (default 2000; 0 = all)");
  cmd->add_option("--first-rows", o->tune.first_rows, "Rows in the first round")->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--growth", o->tune.growth, "Rows grow by this factor each round")->check(CLI::Range(2, 64));
  cmd->add_option("--confidence-z", o->tune.confidence_z, "Choose only when loss + Z standard errors <= budget (0 = point estimate)")
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--seed", o->tune.seed, "Seed of the order rows are sampled in");
  cmd->add_option("--verify", o->verify_data, "Held-out data (e.g. the validation split) to measure the choice on");
  cmd->add_option("--json", o->json_out, "Write every round's measurements, the front and the choice as JSON to FILE");
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
