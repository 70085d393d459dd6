// The `sieve` binary on bad input: every case must end with a clear message and a non-zero exit
// code, never a signal (crash) or a hang. Runs on a tiny random checkpoint, so no download needed.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "kernels/gemm.h"
#include "test_helpers.h"
#include "tiny_bert.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::quoted;
using testing::run_cli;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::make_tiny_bert("cli", testing::TinyBertShape{.labels = 2});
    scratch_ = fs::temp_directory_path() / ("sieve-cli-" + std::to_string(::getpid()));
    fs::create_directories(scratch_);
  }
  void TearDown() override {
    fs::remove_all(model_);
    fs::remove_all(scratch_);
  }
  // A copy of the tiny model directory that a test may damage.
  fs::path copy_model(const std::string& name) {
    const fs::path dir = scratch_ / name;
    fs::copy(model_, dir, fs::copy_options::recursive);
    return dir;
  }
  void expect_clean_failure(const CliResult& r, const std::string& message_part) {
    ASSERT_TRUE(r.exited) << "killed by a signal:\n" << r.output;
    EXPECT_NE(r.code, 0) << r.output;
    EXPECT_NE(r.code, 124) << "timed out:\n" << r.output;
    EXPECT_NE(r.code, 3) << "unexpected exception type:\n" << r.output;
    EXPECT_NE(r.output.find(message_part), std::string::npos) << "expected '" << message_part << "' in:\n" << r.output;
  }
  fs::path model_, scratch_;
};

TEST_F(CliTest, HelpWorksForEveryCommand) {
  for (const char* cmd : {"", "embed", "classify", "tokenize", "bench", "eval", "explain", "calibrate", "tune", "sim"}) {
    const CliResult r = run_cli(std::string(cmd) + " --help");
    EXPECT_TRUE(r.exited && r.code == 0) << cmd << ":\n" << r.output;
    EXPECT_NE(r.output.find("--"), std::string::npos) << cmd;
  }
}

TEST_F(CliTest, EmbedWorksOnTheTinyModel) {
  const CliResult r = run_cli("embed --model " + quoted(model_) + " w5 'w6 w7'");
  ASSERT_TRUE(r.exited && r.code == 0) << r.output;
  EXPECT_NE(r.output.find('['), std::string::npos);
}

TEST_F(CliTest, TileSparseOptionTakesAutoOffOrAFraction) {
  const std::string base = "embed --model " + quoted(model_) + " --tile-sparse ";
  for (const char* ok : {"auto", "off", "0", "0.7", "1"}) EXPECT_EQ(run_cli(base + ok + " w5").code, 0) << ok;
  for (const char* bad : {"1.5", "-0.1", "nan", "half", "0.5x", "''"}) {
    const CliResult r = run_cli(base + bad + " w5");
    expect_clean_failure(r, "--tile-sparse");
  }
}

TEST_F(CliTest, BenchTimesPoliciesNextToDense) {
  const fs::path json = scratch_ / "bench.json";
  const CliResult r = run_cli("bench --model " + quoted(model_) + " --seq 12 --batch 2 --warmup 0 --repeats 1 --policy " +
                              "spatten:tokens=0.5 --json " + quoted(json));
  ASSERT_TRUE(r.exited && r.code == 0) << r.output;
  std::ifstream in(json);
  const auto report = nlohmann::json::parse(in);
  ASSERT_EQ(report["results"].size(), 2u);
  EXPECT_EQ(report["results"][0]["engine"], "sieve");
  EXPECT_EQ(report["results"][1]["engine"], "sieve spatten:tokens=0.5");
  // The policy computed less than dense (SpAtten drops tokens from its start layer on).
  EXPECT_LT(report["results"][1]["gflops"].get<double>(), report["results"][0]["gflops"].get<double>());
  expect_clean_failure(run_cli("bench --model " + quoted(model_) + " --seq 12 --batch 1 --policy spatten:tokens=2"),
                       "spatten");
}

TEST_F(CliTest, UnknownOptionIsRejected) {
  const CliResult r = run_cli("embed --model " + quoted(model_) + " --frobnicate hello");
  expect_clean_failure(r, "frobnicate");
  EXPECT_EQ(r.code, 2);
  expect_clean_failure(run_cli("no-such-command"), "no-such-command");
}

TEST_F(CliTest, MissingModelDirectoryOrFiles) {
  expect_clean_failure(run_cli("embed --model " + quoted(scratch_ / "nowhere") + " hi"), "not found");
  const fs::path no_weights = copy_model("no-weights");
  fs::remove(no_weights / "model.safetensors");
  expect_clean_failure(run_cli("embed --model " + quoted(no_weights) + " hi"), "model.safetensors");
  const fs::path no_config = copy_model("no-config");
  fs::remove(no_config / "config.json");
  expect_clean_failure(run_cli("embed --model " + quoted(no_config) + " hi"), "config.json");
  const fs::path no_vocab = copy_model("no-vocab");
  fs::remove(no_vocab / "vocab.txt");
  expect_clean_failure(run_cli("embed --model " + quoted(no_vocab) + " hi"), "vocab");
}

TEST_F(CliTest, TruncatedAndCorruptWeightsAreRejected) {
  const fs::path truncated = copy_model("truncated");
  const auto file = truncated / "model.safetensors";
  fs::resize_file(file, fs::file_size(file) / 2);
  expect_clean_failure(run_cli("embed --model " + quoted(truncated) + " hi"), "safetensors");

  const fs::path garbage = copy_model("garbage");
  std::ofstream(garbage / "model.safetensors", std::ios::binary | std::ios::trunc) << "\xff\xff\xff\xff\xff\xff\xff\x7fnot a header";
  expect_clean_failure(run_cli("embed --model " + quoted(garbage) + " hi"), "safetensors");

  const fs::path bad_config = copy_model("bad-config");
  std::ofstream(bad_config / "config.json", std::ios::trunc) << "{\"model_type\": \"bert\", \"hidden_size\": ";
  expect_clean_failure(run_cli("embed --model " + quoted(bad_config) + " hi"), "config.json");

  const fs::path gpt = copy_model("unsupported");
  std::ofstream(gpt / "config.json", std::ios::trunc) << "{\"model_type\": \"t5\"}";
  expect_clean_failure(run_cli("embed --model " + quoted(gpt) + " hi"), "t5");
}

TEST_F(CliTest, InvalidUtf8InputIsRejected) {
  const fs::path input = scratch_ / "bad.txt";
  std::ofstream(input, std::ios::binary) << "fine line\nbad \xc3\x28 byte\n";
  expect_clean_failure(run_cli("embed --model " + quoted(model_) + " --file " + quoted(input)), "UTF-8");
}

TEST_F(CliTest, LongTextIsTruncatedAndSaysSo) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "w" + std::to_string(5 + i % 100) + " ";  // > 64 positions
  const CliResult r = run_cli("embed --model " + quoted(model_) + " '" + text + "'");
  ASSERT_TRUE(r.exited && r.code == 0) << r.output;
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
}

TEST_F(CliTest, EmptyTextAndMissingInput) {
  const CliResult empty = run_cli("embed --model " + quoted(model_) + " ''");
  EXPECT_TRUE(empty.exited && empty.code == 0) << "an empty text is [CLS] [SEP], a valid input:\n" << empty.output;
  expect_clean_failure(run_cli("embed --model " + quoted(model_)), "no input");
  expect_clean_failure(run_cli("embed --model " + quoted(model_) + " --file " + quoted(scratch_ / "missing.txt")), "missing.txt");
}

TEST_F(CliTest, BadPolicySpecsAreRejected) {
  const std::string base = "explain --model " + quoted(model_) + " -o " + quoted(scratch_ / "x.html") + " w5 --policy ";
  expect_clean_failure(run_cli(base + "magic"), "magic");
  expect_clean_failure(run_cli(base + "spatten:tokens=1.5"), "tokens");
  expect_clean_failure(run_cli(base + "ltp:thresholds=0.1/0.2/0.3"), "threshold");
  EXPECT_FALSE(fs::exists(scratch_ / "x.html")) << "a failed command must not leave output behind";
}

TEST_F(CliTest, EvalRejectsBadDataFiles) {
  const fs::path no_label = scratch_ / "bad.tsv";
  std::ofstream(no_label) << "sentence\tlabel\nw5 w6\tnot-a-number\n";
  expect_clean_failure(run_cli("eval --model " + quoted(model_) + " --data " + quoted(no_label)), "label");
  expect_clean_failure(run_cli("eval --model " + quoted(model_) + " --data " + quoted(scratch_ / "none.tsv")), "none.tsv");
}

// A labelled TSV of `rows` random sentences over the tiny model's vocabulary (w5..w119).
fs::path write_random_tsv(const fs::path& path, int rows) {
  std::mt19937 rng(11);
  std::ofstream out(path);
  out << "sentence\tlabel\n";
  for (int i = 0; i < rows; ++i) {
    const int words = 3 + static_cast<int>(rng() % 20);
    for (int w = 0; w < words; ++w) out << (w ? " " : "") << "w" << 5 + rng() % 115;
    out << "\t" << rng() % 2 << "\n";
  }
  return path;
}

// eval --trace records what each setting computed; sim replays it on both accelerator models, and
// refuses damaged traces, configs and option mixes with a message.
TEST_F(CliTest, EvalTraceReplaysOnTheAcceleratorModels) {
  const fs::path data = write_random_tsv(scratch_ / "trace.tsv", 12), trace = scratch_ / "trace.json";
  const CliResult r = run_cli("eval --threads 1 --model " + quoted(model_) + " --data " + quoted(data) +
                              " -p spatten:tokens=0.5,start=0 -p cta:w=8 --trace " + quoted(trace));
  ASSERT_TRUE(r.exited && r.code == 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(trace));
  ASSERT_EQ(j["settings"].size(), 3u);
  EXPECT_EQ(j["settings"][0]["inputs"].size(), 12u);
  const fs::path out = scratch_ / "sim.json";
  const CliResult spatten = run_cli("sim --arch spatten --trace " + quoted(trace) + " --json " + quoted(out));
  ASSERT_TRUE(spatten.exited && spatten.code == 0) << spatten.output;
  const nlohmann::json s = nlohmann::json::parse(std::ifstream(out));
  EXPECT_DOUBLE_EQ(s["results"][0]["speedup"].get<double>(), 1.0);  // the dense anchor against itself
  EXPECT_GT(s["results"][1]["speedup"].get<double>(), 1.0);         // half the tokens from layer 0 on
  const CliResult cta = run_cli("sim --arch cta --trace " + quoted(trace));
  ASSERT_TRUE(cta.exited && cta.code == 0) << cta.output;
  EXPECT_NE(cta.output.find("cta:w=8 "), std::string::npos) << cta.output;
  const CliResult validate = run_cli("sim --arch cta --validate");
  ASSERT_TRUE(validate.exited && validate.code == 0) << validate.output;

  std::ofstream(scratch_ / "bad.json") << "{\"kind\": \"encoder\", \"shape\": {\"layers\": 2}}";
  expect_clean_failure(run_cli("sim --arch spatten --trace " + quoted(scratch_ / "bad.json")), "settings");
  expect_clean_failure(run_cli("sim --arch spatten --trace " + quoted(scratch_ / "none.json")), "none.json");
  expect_clean_failure(run_cli("sim --arch spatten"), "--trace FILE or --validate");
  expect_clean_failure(run_cli("sim --arch tpu --validate"), "tpu");
  std::ofstream(scratch_ / "config.json") << "{\"multipliers\": 4}";
  expect_clean_failure(run_cli("sim --arch spatten --validate --config " + quoted(scratch_ / "config.json")), "multipliers");
}

TEST_F(CliTest, TuneSearchesRoundsAndBudgetZeroIsLossless) {
  const fs::path data = write_random_tsv(scratch_ / "calib.tsv", 100), json = scratch_ / "tune.json";
  const fs::path validation = write_random_tsv(scratch_ / "validation.tsv", 20);
  const CliResult r = run_cli("tune --threads 1 --model " + quoted(model_) + " --data " + quoted(data) + " --budget 0 --first-rows 24 --json " +
                              quoted(json) + " --verify " + quoted(validation));
  ASSERT_TRUE(r.exited && r.code == 0) << r.output;
  EXPECT_NE(r.output.find("Pareto front"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\nbest: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("verified on"), std::string::npos) << r.output;

  const auto j = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(j["subset_rows"], nlohmann::json::parse("[24, 100]"));
  ASSERT_EQ(j["rounds"].size(), 2u);
  EXPECT_GT(j["candidates"].get<size_t>(), 5u);  // SpAtten tokens, heads, both, calibrated LTP
  EXPECT_EQ(j["rounds"][0]["measured"].size(), j["candidates"].get<size_t>());
  size_t kept = 0;
  for (const auto& m : j["rounds"][0]["measured"]) {
    for (const char* key : {"policy", "precision", "accuracy", "loss_points", "loss_se_points", "speedup", "kept"})
      EXPECT_TRUE(m.contains(key)) << key;
    kept += m["kept"].get<bool>();
  }
  EXPECT_EQ(j["rounds"][1]["measured"].size(), kept) << "the second round measures exactly the survivors";
  EXPECT_EQ(j["rounds"][1]["dense"]["examples"], 100);
  // Budget 0: the choice loses nothing on the calibration rows (or is dense itself).
  EXPECT_LE(j["best"]["loss_points"].get<double>(), 1e-9) << j["best"].dump();
  // The front: last-round points (or dense) that none of the last round's points beats.
  ASSERT_FALSE(j["front"].empty());
  for (const auto& f : j["front"]) {
    EXPECT_EQ(f["examples"], 100);
    for (const auto& m : j["rounds"][1]["measured"]) {
      const double fl = f["loss_points"], fs = f["speedup"], ml = m["loss_points"], ms = m["speedup"];
      EXPECT_FALSE(ml <= fl && ms >= fs && (ml < fl || ms > fs)) << m["policy"] << " beats " << f["policy"];
    }
  }
  EXPECT_EQ(j["verification"]["best"]["examples"], 20);
}

TEST_F(CliTest, TuneTakesTheUsersCandidatesAtEachPrecision) {
  const fs::path data = write_random_tsv(scratch_ / "calib.tsv", 40), json = scratch_ / "tune.json";
  const bool bf16 = bf16_gemm_available();
  const CliResult r = run_cli("tune --threads 1 --model " + quoted(model_) + " --data " + quoted(data) + " --budget 100 --json " + quoted(json) +
                              " -c 'spatten:tokens=1;spatten:tokens=0.5' -c ltp:final=0.01 -c dense" +
                              (bf16 ? " --precision fp32,bf16" : ""));
  ASSERT_TRUE(r.exited && r.code == 0) << r.output;
  const auto j = nlohmann::json::parse(std::ifstream(json));
  ASSERT_EQ(j["rounds"].size(), 1u);  // 40 rows: one round
  std::vector<std::string> measured;
  for (const auto& m : j["rounds"][0]["measured"]) measured.push_back(m["policy"].get<std::string>() + "@" + m["precision"].get<std::string>());
  std::vector<std::string> expected{"spatten:tokens=1@fp32", "spatten:tokens=0.5@fp32", "ltp:final=0.01@fp32"};
  if (bf16)  // dense in bf16 is a candidate (given or not); in fp32 it is the anchor
    for (const char* s : {"dense@bf16", "spatten:tokens=1@bf16", "spatten:tokens=0.5@bf16", "ltp:final=0.01@bf16"}) expected.push_back(s);
  EXPECT_EQ(measured, expected);
}

// Labelled data defaults to batch 1, but an explicit --batch-size is what runs, 32 included (32 is
// the shared default, and eval and tune used to take it for "not given").
TEST_F(CliTest, EvalAndTuneRunTheBatchSizeAsked) {
  const fs::path data = write_random_tsv(scratch_ / "batch.tsv", 40), json = scratch_ / "batch.json";
  const std::string eval = "eval --threads 1 --model " + quoted(model_) + " --data " + quoted(data) + " --json " + quoted(json);
  const std::string tune = "tune --threads 1 --budget 1 -c dense --model " + quoted(model_) + " --data " + quoted(data) +
                           " --json " + quoted(json);
  for (const std::string& base : {eval, tune})
    for (const auto& [flag, expected] : std::vector<std::pair<std::string, int>>{{"", 1}, {" --batch-size 32", 32}, {" --batch-size 4", 4}}) {
      const CliResult r = run_cli(base + flag);
      ASSERT_TRUE(r.exited && r.code == 0) << base << flag << "\n" << r.output;
      EXPECT_EQ(nlohmann::json::parse(std::ifstream(json))["batch_size"].get<int>(), expected) << base << flag;
    }
}

TEST_F(CliTest, TuneRejectsBadBudgetsAndSpecs) {
  const fs::path data = write_random_tsv(scratch_ / "calib.tsv", 10);
  const std::string base = "tune --threads 1 --model " + quoted(model_) + " --data " + quoted(data);
  for (const char* budget : {"-1", "nan", "inf", "abc", "''"}) {
    const CliResult r = run_cli(base + " --budget " + budget);
    expect_clean_failure(r, "budget");
    EXPECT_EQ(r.code, 2) << budget << ": bad usage\n" << r.output;
  }
  EXPECT_EQ(run_cli(base).code, 2) << "--budget is required";
  expect_clean_failure(run_cli(base + " --budget 1 -c magic"), "magic");
  expect_clean_failure(run_cli(base + " --budget 1 -c 'dense;spatten:tokens=1.5'"), "spatten:tokens=1.5");
  expect_clean_failure(run_cli(base + " --budget 1 --precision fp16"), "fp16");
  expect_clean_failure(run_cli(base + " --budget 1 --metric f1"), "f1");
}

}  // namespace
}  // namespace sieve
