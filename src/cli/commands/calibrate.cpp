// sieve calibrate: training-free LTP thresholds for a target keep ratio or accuracy budget,
// measured on a labelled split (use the training split; evaluate on validation).
#include <cstdio>

#include "cli/commands/common.h"
#include "eval/calibrate.h"
#include "util/error.h"

namespace sieve::cli {

namespace {

struct CalibrateCommandOptions {
  ModelOptions model;
  std::string data;
  size_t limit = 1000;
  CalibrationTarget target;
  CalibrationOptions calibration;
};

void run(CalibrateCommandOptions o) {
  auto data = load_glue_file(o.data);
  if (o.limit && data.size() > o.limit) data.resize(o.limit);
  const TextModel model = load_model(o.model);
  o.calibration.batch_size = o.model.batch_size;
  o.calibration.max_length = o.model.max_length;
  const CalibrationResult r = calibrate_ltp(model, data, o.target, o.calibration);
  std::fprintf(stderr, "calibrated on %zu examples: final threshold %.6g, keep ratio %.3f, accuracy %.4f (dense %.4f)\n",
               data.size(), r.final_threshold, r.keep_ratio, r.accuracy, r.dense_accuracy);
  std::printf("%s\n", r.spec.c_str());
}

}  // namespace

void register_calibrate(CLI::App& app) {
  auto o = std::make_shared<CalibrateCommandOptions>();
  CLI::App* cmd = app.add_subcommand("calibrate", "Find LTP thresholds for a target keep ratio or accuracy budget; prints the policy spec");
  add_model_options(*cmd, o->model);
  cmd->add_option("--data", o->data, "Labelled calibration data (GLUE TSV or parquet), e.g. the training split")->required();
  cmd->add_option("--limit", o->limit, "Use the first N examples (0 = all)");
  auto* keep = cmd->add_option("--keep", o->target.keep_ratio, "Target average keep ratio in (0, 1]")->check(CLI::Range(0.0, 1.0));
  auto* budget = cmd->add_option("--accuracy-budget", o->target.accuracy_budget, "Allowed accuracy loss vs dense, e.g. 0.01")->check(CLI::Range(0.0, 1.0));
  keep->excludes(budget);
  cmd->add_option("--at", o->calibration.at, "Where pruned tokens leave: ffn or next")->check(CLI::IsMember({"ffn", "next"}));
  cmd->add_option("--with", o->calibration.extra, "Policy to compose with, e.g. spatten:heads=0.75");
  cmd->callback([o] {
    if (o->target.keep_ratio < 0 && o->target.accuracy_budget < 0) throw sieve::Error("calibrate: give --keep or --accuracy-budget");
    run(*o);
  });
}

}  // namespace sieve::cli
