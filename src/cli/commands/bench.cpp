// sieve bench: latency of the dense encoder on fixed synthetic inputs, optionally side by side with
// ONNX Runtime and PyTorch (bench/baselines.py) measured in the same run on identical inputs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands/common.h"
#include "policies/policy_spec.h"
#include "util/json_file.h"
#include "util/error.h"

namespace sieve::cli {

namespace {

struct BenchOptions {
  std::string model_dir, onnx, json_out, baselines, name;
  std::vector<int> seqs{32, 128, 384}, batches{1, 8};
  std::vector<std::string> precisions{"fp32"};
  std::vector<std::string> policies;  // dense is always timed too, first (the anchor of the ratios)
  int threads = 2, warmup = 3, repeats = 20;
  bool cls_only = false;  // also time each setting as classification runs it (ForwardOptions::cls_only_output)
};

struct Timing {
  double median_ms, p10_ms, p90_ms;
};

Timing summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[static_cast<size_t>(q * static_cast<double>(ms.size() - 1) + 0.5)]; };
  return {at(0.5), at(0.1), at(0.9)};
}

// The same inputs bench/baselines.py builds: [CLS] w... [SEP] with ids spread over the vocabulary
// (BERT's ids; a model with a vocabulary under 21,000 gets ids spread over its own).
std::vector<EncoderInput> synthetic_batch(int batch, int seq, int64_t vocab) {
  const bool bert_ids = vocab > 21000;
  if (!bert_ids && vocab < 2) throw Error("the model's vocabulary is too small to benchmark");
  std::vector<EncoderInput> inputs(static_cast<size_t>(batch));
  for (int j = 0; j < batch; ++j) {
    for (int i = 0; i < seq; ++i) {
      const int64_t spread = static_cast<int64_t>(i) * 7919 + static_cast<int64_t>(j) * 104729;
      const int64_t id = i == 0 ? (bert_ids ? 101 : 0) : i == seq - 1 ? (bert_ids ? 102 : 1)
                                : bert_ids ? 1000 + spread % 20000 : spread % vocab;
      inputs[static_cast<size_t>(j)].ids.push_back(static_cast<int32_t>(id));
    }
  }
  return inputs;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

nlohmann::json run_baselines(const BenchOptions& o, const std::filesystem::path& model_dir, const std::string& name) {
  const std::string src = SIEVE_SOURCE_DIR;
  const char* py_env = std::getenv("SIEVE_PYTHON");
  const std::string python = py_env && *py_env ? py_env : src + "/.venv/bin/python";
  std::string onnx = o.onnx;
  if (onnx.empty()) onnx = src + "/out/onnx/" + name + ".onnx";
  if (o.baselines.find("ort") != std::string::npos) {
    const std::string export_cmd = shell_quote(python) + " " + shell_quote(src + "/tools/export_onnx.py") + " --model " +
                                   shell_quote(model_dir.string()) + " --out " + shell_quote(onnx) + " >&2";
    if (std::system(export_cmd.c_str()) != 0) throw Error("ONNX export failed: " + export_cmd);
  }
  const TempFile results(std::filesystem::temp_directory_path(), "sieve-baselines-", ".json");
  const std::filesystem::path& out = results.path();
  const std::string cmd = shell_quote(python) + " " + shell_quote(src + "/bench/baselines.py") + " --model " +
                          shell_quote(model_dir.string()) + " --onnx " + shell_quote(onnx) + " --seq " + join(o.seqs) +
                          " --batch " + join(o.batches) + " --threads " + std::to_string(o.threads) + " --warmup " +
                          std::to_string(o.warmup) + " --repeats " + std::to_string(o.repeats) + " --engines " +
                          shell_quote(o.baselines) + " --out " + shell_quote(out.string()) + " >&2";
  if (std::system(cmd.c_str()) != 0) throw Error("baseline benchmark failed: " + cmd);
  return read_json_file(out, kMaxTokenizerJsonBytes);
}

void run(const BenchOptions& o) {
  const std::filesystem::path model_dir = o.model_dir.empty() ? default_model_dir() : std::filesystem::path(o.model_dir);
  set_threads(o.threads);
  BertEncoder encoder = BertEncoder::load(model_dir);
  std::vector<Precision> precisions;  // parsed first: a bad name or spec fails before any timing
  for (const auto& p : o.precisions) precisions.push_back(parse_precision(p));
  std::vector<std::string> specs = o.policies;
  if (std::find(specs.begin(), specs.end(), "dense") == specs.end()) specs.insert(specs.begin(), "dense");
  std::vector<std::unique_ptr<PolicyChain>> policies;
  for (const auto& spec : specs) policies.push_back(parse_policy_spec(spec, encoder.config()));
  const std::string name = o.name.empty() ? std::filesystem::absolute(model_dir).lexically_normal().filename().string() : o.name;

  nlohmann::json results = nlohmann::json::array();
  std::fprintf(stderr, "sieve bench: %s, %d threads\n", name.c_str(), o.threads);
  for (size_t i = 0; i < precisions.size(); ++i) {
    encoder.set_precision(precisions[i]);
    for (size_t k = 0; k < policies.size(); ++k) {
      for (const bool cls_only : {false, true}) {
        if (cls_only && !o.cls_only) continue;
        // "sieve", "sieve-bf16", "sieve spatten:tokens=0.5", "sieve cls-only": one column per precision,
        // policy and output.
        std::string engine = precisions[i] == Precision::Fp32 ? "sieve" : "sieve-" + o.precisions[i];
        if (!policies[k]->empty()) engine += " " + specs[k];
        if (cls_only) engine += " cls-only";
        ForwardOptions options;
        if (!policies[k]->empty()) options.policy = policies[k].get();
        options.cls_only_output = cls_only;
        for (int seq : o.seqs) {
          if (seq < 2 || seq > encoder.config().max_position_embeddings) throw Error("--seq " + std::to_string(seq) + " outside [2, max positions]");
          for (int batch : o.batches) {
            const auto inputs = synthetic_batch(batch, seq, encoder.config().vocab_size);
            std::vector<double> ms;
            ForwardStats stats;
            for (int r = 0; r < o.warmup + o.repeats; ++r) {
              const auto t0 = std::chrono::steady_clock::now();
              encoder.forward(inputs, options, &stats);  // overwrites stats: the last run's remain
              const double elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
              if (r >= o.warmup) ms.push_back(elapsed);
            }
            const Timing t = summarize(ms);
            results.push_back({{"engine", engine}, {"model", name}, {"seq", seq}, {"batch", batch}, {"threads", o.threads},
                               {"median_ms", t.median_ms}, {"p10_ms", t.p10_ms}, {"p90_ms", t.p90_ms},
                               {"gflops", stats.flops / 1e9}, {"tokens_per_layer", stats.tokens_per_layer}});
            std::fprintf(stderr, "  %s seq %4d batch %2d: %8.2f ms\n", engine.c_str(), seq, batch, t.median_ms);
          }
        }
      }
    }
  }
  nlohmann::json report{{"model", name}, {"threads", o.threads}, {"results", results}};
  if (!o.baselines.empty()) {
    nlohmann::json base = run_baselines(o, model_dir, name);
    for (auto& r : base["results"]) {
      r["model"] = name;
      report["results"].push_back(r);
    }
    report["machine"] = base["machine"];
  }

  // Table: one row per shape, one column per engine, then Sieve / ORT.
  std::map<std::pair<int, int>, std::map<std::string, double>> table;
  std::vector<std::string> engines;
  for (const auto& r : report["results"]) {
    const std::string e = r["engine"];
    if (std::find(engines.begin(), engines.end(), e) == engines.end()) engines.push_back(e);
    table[{r["seq"].get<int>(), r["batch"].get<int>()}][e] = r["median_ms"].get<double>();
  }
  std::printf("model %s, %d threads, median latency (ms)\n%6s %6s", name.c_str(), o.threads, "seq", "batch");
  for (const auto& e : engines) std::printf(" %10s", e.c_str());
  const bool ratio = std::find(engines.begin(), engines.end(), "ort") != engines.end();
  if (ratio) std::printf(" %10s", "sieve/ort");
  std::printf("\n");
  for (auto& [shape, row] : table) {
    std::printf("%6d %6d", shape.first, shape.second);
    for (const auto& e : engines) std::printf(" %10.2f", row.count(e) ? row[e] : 0.0);
    if (ratio) {
      const double r = row["sieve"] / row["ort"];
      std::printf(" %10.3f", r);
      for (auto& res : report["results"])
        if (res["engine"] == "sieve" && res["seq"] == shape.first && res["batch"] == shape.second) res["ratio_vs_ort"] = r;
    }
    std::printf("\n");
  }
  if (!o.json_out.empty()) {
    write_file_atomically(o.json_out, [&](std::ostream& out) { out << report.dump(2) << "\n"; });
    std::fprintf(stderr, "wrote %s\n", o.json_out.c_str());
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Latency of the dense encoder, optionally against ONNX Runtime and PyTorch");
  cmd->add_option("--model", o->model_dir, "Model directory (default: the installed all-MiniLM-L6-v2)");
  cmd->add_option("--name", o->name, "Name for the model in the report (default: directory name)");
  cmd->add_option("--seq", o->seqs, "Sequence lengths")->delimiter(',');
  cmd->add_option("--batch", o->batches, "Batch sizes")->delimiter(',')->check(CLI::Range(1, 1024));
  cmd->add_option("--policy", o->policies,
                  "Also time these policies on the synthetic batches, each its own column (repeatable; dense is "
                  "always timed)");
  cmd->add_option("--precision", o->precisions, "Sieve's GEMM precisions to measure: fp32, bf16, int8 (default fp32)")->delimiter(',');
  cmd->add_flag("--cls-only", o->cls_only,
                "Also time each setting as classification runs it: the last layer's FFN on [CLS] only (its own "
                "column, 'cls-only')");
  cmd->add_option("--threads", o->threads, "Threads for every engine")->check(CLI::Range(1, 1024));
  cmd->add_option("--warmup", o->warmup, "Untimed runs per shape")->check(CLI::Range(0, 1000));
  cmd->add_option("--repeats", o->repeats, "Timed runs per shape (median reported)")->check(CLI::Range(1, 100000));
  cmd->add_option("--baselines", o->baselines, "Also measure these engines via bench/baselines.py: ort,torch");
  cmd->add_option("--onnx", o->onnx, "ONNX file for ONNX Runtime (default: exported to out/onnx/)");
  cmd->add_option("--json", o->json_out, "Write the results as JSON to FILE");
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
