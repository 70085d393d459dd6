#include "cli/commands/common.h"

#include <omp.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "kernels/gemm.h"
#include "util/error.h"

namespace sieve::cli {

void add_model_options(CLI::App& cmd, ModelOptions& o) {
  cmd.add_option("--model", o.model_dir, "Hugging Face model directory (default: $SIEVE_MODEL or the installed all-MiniLM-L6-v2)");
  cmd.add_option("--threads", o.threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd.add_option("--batch-size", o.batch_size, "Sequences per forward call")->check(CLI::Range(1, 4096));
  cmd.add_option("--max-length", o.max_length, "Truncate inputs to this many tokens (default: the model's)");
  cmd.add_option("--exits", o.exits_dir, "Early-exit classifiers directory (default: MODEL/exits when present)");
  cmd.add_option("--precision", o.precision, "GEMM arithmetic: fp32 (default, matches the reference) or bf16 (faster, ~1e-2 error)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

void set_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  omp_set_num_threads(threads);
}

TextModel load_model(const ModelOptions& o) {
  set_threads(o.threads);
  TextModel model = TextModel::load(o.model_dir.empty() ? default_model_dir() : std::filesystem::path(o.model_dir), o.exits_dir);
  model.set_precision(parse_precision(o.precision));
  return model;
}

std::vector<std::string> collect_texts(const std::vector<std::string>& args, const std::string& file) {
  if (!args.empty() && !file.empty()) throw Error("give texts as arguments or with --file, not both");
  if (file.empty()) {
    if (args.empty()) throw Error("no input: give texts as arguments or --file FILE");
    return args;
  }
  std::ifstream in_file;
  std::istream* in = &std::cin;
  if (file != "-") {
    if (std::filesystem::is_directory(file)) throw Error("input is a directory: " + file);
    in_file.open(file, std::ios::binary);
    if (!in_file) throw Error("cannot open input file: " + file);
    in = &in_file;
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(*in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  if (lines.empty()) throw Error("input file is empty: " + file);
  return lines;
}

void write_file_atomically(const std::filesystem::path& path, const std::function<void(const std::filesystem::path&)>& write) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  try {
    write(tmp);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

std::string json_escape(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

nlohmann::json eval_result_json(const EvalResult& r) {
  nlohmann::json j{{"policy", r.spec}, {"precision", precision_name(r.precision)}, {"description", r.description},
                   {"examples", r.examples}, {"accuracy", r.accuracy}, {"agreement_with_dense", r.agreement_with_dense},
                   {"gflops_per_example", r.gflops_per_example}, {"flops_reduction", r.flops_reduction},
                   {"latency_ms_per_example", r.latency_ms_per_example}, {"total_seconds", r.total_seconds},
                   {"speedup", r.speedup}, {"tokens_kept_per_layer", r.tokens_kept}, {"heads_per_layer", r.heads_kept},
                   {"exit_layer_histogram", r.exit_layers}, {"attention_seconds", r.attention_seconds},
                   {"attention_speedup", r.attention_speedup}};
  if (r.cta)
    j["cta"] = {{"rl", r.cta_rl}, {"ra", r.cta_ra}, {"overhead", r.cta_overhead}, {"n_per_layer", r.cta_n},
                {"k0_per_layer", r.cta_k0}, {"k1_per_layer", r.cta_k1}, {"k2_per_layer", r.cta_k2}};
  return j;
}

}  // namespace sieve::cli

#include "util/progress.h"

namespace sieve::cli {

void run_batched(const TextModel& model, const std::vector<TextPair>& inputs, const ModelOptions& options,
                 LayerPolicy* policy, const std::function<void(size_t, const SequenceOutput&)>& on_output,
                 ForwardStats* stats) {
  // Tokenize everything first: invalid UTF-8 anywhere fails before any output is produced.
  EncodedBatch all = model.encode(inputs, options.max_length);
  size_t truncated = 0;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (all.truncated[i] && truncated++ < 5)
      std::fprintf(stderr, "sieve: warning: input %zu truncated to %zu tokens\n", i + 1, all.inputs[i].ids.size());
  if (truncated > 5) std::fprintf(stderr, "sieve: warning: %zu inputs truncated in all\n", truncated);

  ProgressBar progress("encoding", static_cast<int64_t>(inputs.size()));
  const size_t batch = static_cast<size_t>(options.batch_size);
  for (size_t begin = 0; begin < inputs.size(); begin += batch) {
    const size_t end = std::min(inputs.size(), begin + batch);
    ForwardStats batch_stats;
    const auto outputs = model.encoder().forward(std::span(all.inputs).subspan(begin, end - begin),
                                                 ForwardOptions{policy}, &batch_stats);
    if (stats) stats->add(batch_stats);
    for (size_t i = begin; i < end; ++i) on_output(i, outputs[i - begin]);
    progress.advance(static_cast<int64_t>(end - begin));
  }
}

}  // namespace sieve::cli
