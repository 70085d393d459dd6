#include "cli/commands/common.h"

#include <omp.h>

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "kernels/gemm.h"
#include "util/error.h"

namespace sieve::cli {

void add_decoder_options(CLI::App& cmd, DecoderOptions& options) {
  cmd.add_option("--weights", options.weights, "GGUF models: gguf (decoding steps read the file's quantized blocks) or fp32 (dequantized)")
      ->check(CLI::IsMember({"gguf", "fp32"}))->capture_default_str();
  cmd.add_option("--activations", options.activations,
                 "With gguf weights: int8 (activations quantized per block of 32, integer dot products, as llama.cpp) "
                 "or fp32 (exact product of the dequantized weights)")
      ->check(CLI::IsMember({"int8", "fp32"}))->capture_default_str();
}

void add_model_options(CLI::App& cmd, ModelOptions& o) {
  cmd.add_option("--model", o.model_dir, "Hugging Face model directory (default: $SIEVE_MODEL or the installed all-MiniLM-L6-v2)");
  cmd.add_option("--threads", o.threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd.add_option("--batch-size", o.batch_size, "Sequences per forward call")->check(CLI::Range(1, 4096))
      ->each([&o](const std::string&) { o.batch_size_given = true; });
  cmd.add_option("--max-length", o.max_length, "Truncate inputs to this many tokens (default: the model's)");
  cmd.add_option("--exits", o.exits_dir, "Early-exit classifiers directory (default: MODEL/exits when present)");
  cmd.add_option("--precision", o.precision, "GEMM arithmetic: fp32 (default, matches the reference), bf16 (faster, ~1e-2 error) or int8 (fastest; weights per channel, activations per token)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}));
  cmd.add_option("--tile-sparse", o.tile_sparse,
                 "Weights pruned in tiles (tools/train_tile_pruning.py): fp32 GEMMs skip zero tiles of weights with at least "
                 "this fraction of them zero; auto (" + std::to_string(BertEncoder::kDefaultTileSparsity).substr(0, 3) +
                 ", where skipping starts to pay), off, or a number in [0, 1]")
      ->capture_default_str();
}

double parse_tile_sparse(const std::string& value) {
  if (value == "auto") return BertEncoder::kDefaultTileSparsity;
  if (value == "off") return 2.0;
  size_t used = 0;
  double v = -1.0;
  try {
    v = std::stod(value, &used);
  } catch (const std::exception&) {
  }
  if (used != value.size() || !(v >= 0.0 && v <= 1.0))
    throw Error("--tile-sparse must be auto, off or a number in [0, 1], got '" + value + "'");
  return v;
}

void set_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  omp_set_num_threads(threads);
}

TextModel load_model(const ModelOptions& o) {
  set_threads(o.threads);
  TextModel model = TextModel::load(o.model_dir.empty() ? default_model_dir() : std::filesystem::path(o.model_dir), o.exits_dir);
  model.set_precision(parse_precision(o.precision));
  if (o.tile_sparse != "auto") model.set_tile_sparse(parse_tile_sparse(o.tile_sparse));
  return model;
}

TextSource::TextSource(const std::vector<std::string>& args, const std::string& file) : args_(args), file_(file) {
  if (!args.empty() && !file.empty()) throw Error("give texts as arguments or with --file, not both");
  if (file.empty()) {
    if (args.empty()) throw Error("no input: give texts as arguments or --file FILE");
    for (size_t i = 0; i < args_.size(); ++i) {
      if (args_[i].size() > kMaxTextBytes)
        throw Error("text " + std::to_string(i + 1) + " is longer than the " + std::to_string(kMaxTextBytes >> 20) + " MiB limit");
    }
    return;
  }
  std::istream* in = &std::cin;
  if (file != "-") {
    std::error_code error;
    if (std::filesystem::is_directory(file, error)) throw Error("input is a directory: " + file);
    file_stream_.open(file, std::ios::binary);
    if (!file_stream_) throw Error("cannot open input file: " + file);
    in = &file_stream_;
  }
  lines_ = std::make_unique<LineReader>(*in, file == "-" ? "standard input" : file, kMaxTextBytes);
}

bool TextSource::next_chunk(size_t count, std::vector<std::string>& texts) {
  texts.clear();
  if (!lines_) {  // the arguments, all in the first chunk
    if (texts_read_ == 0) texts = args_;
  } else {
    for (std::string line; texts.size() < count && lines_->next(line);) texts.push_back(std::move(line));
    if (texts_read_ == 0 && texts.empty()) throw Error("input file is empty: " + file_);
  }
  texts_read_ += texts.size();
  return !texts.empty();
}

std::vector<std::string> collect_texts(const std::vector<std::string>& args, const std::string& file, size_t max_texts) {
  TextSource source(args, file);
  std::vector<std::string> all, chunk;
  while (source.next_chunk(4096, chunk)) {
    if (all.size() + chunk.size() > max_texts)
      throw Error("more than " + std::to_string(max_texts) + " inputs; this command takes at most that many");
    std::move(chunk.begin(), chunk.end(), std::back_inserter(all));
  }
  return all;
}

void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write) {
  const std::string name = path.string();
  std::error_code error;
  const auto status = std::filesystem::symlink_status(path, error);
  if (error && error != std::errc::no_such_file_or_directory) throw Error("cannot write " + name + ": " + error.message());
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw Error("cannot write " + name + ": it exists and is not a regular file (a directory, link or device)");
  const std::filesystem::path directory = path.has_parent_path() ? path.parent_path() : ".";
  TempFile tmp(directory, "." + path.filename().string() + ".", ".tmp");
  const mode_t umask_bits = ::umask(0);  // the mode a plain open() would give, not mkstemp's 0600
  ::umask(umask_bits);
  ::fchmod(tmp.fd(), 0666 & ~umask_bits);
  {
    // Reopened by its random name, which only this process knows; O_EXCL made the file ours.
    std::ofstream out(tmp.path(), std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write " + name + ": " + std::strerror(errno));
    write(out);
    out.flush();
    if (!out) throw Error("cannot write " + name + ": " + std::strerror(errno));
    out.close();
    if (!out) throw Error("cannot write " + name + ": " + std::strerror(errno));
  }
  tmp.close();
  std::filesystem::rename(tmp.path(), path, error);
  if (error) throw Error("cannot write " + name + ": " + error.message());
}

std::string json_escape(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.7g", value);
  return text;
}

nlohmann::json tile_sparse_json(const BertEncoder& encoder) {
  const BertEncoder::TileSparseSummary s = encoder.tile_sparse_summary();
  return {{"sparse_weights", s.sparse_weights}, {"weights", s.weights}, {"skipped_tiles", s.skipped_tiles},
          {"tile_k", {s.finest_tile_k, s.deepest_tile_k}}};
}

nlohmann::json eval_result_json(const EvalResult& r) {
  nlohmann::json j{{"policy", r.spec}, {"precision", precision_name(r.precision)}, {"description", r.description},
                   {"examples", r.examples}, {"accuracy", r.accuracy}, {"f1", r.f1}, {"agreement_with_dense", r.agreement_with_dense},
                   {"gflops_per_example", r.gflops_per_example}, {"flops_reduction", r.flops_reduction},
                   {"latency_ms_per_example", r.latency_ms_per_example}, {"total_seconds", r.total_seconds},
                   {"speedup", r.speedup}, {"tokens_kept_per_layer", r.tokens_kept}, {"heads_per_layer", r.heads_kept},
                   {"exit_layer_histogram", r.exit_layers}, {"attention_seconds", r.attention_seconds},
                   {"gemm_seconds", r.gemm_seconds},
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
                 ForwardStats* stats, size_t first_index, bool cls_only_output) {
  // Tokenize everything first: invalid UTF-8 anywhere fails before any output is produced.
  EncodedBatch all = model.encode(inputs, options.max_length);
  size_t truncated = 0;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (all.truncated[i] && truncated++ < 5)
      std::fprintf(stderr, "sieve: warning: input %zu truncated to %zu tokens\n", first_index + i + 1, all.inputs[i].ids.size());
  if (truncated > 5) std::fprintf(stderr, "sieve: warning: %zu inputs truncated in all\n", truncated);

  ProgressBar progress("encoding", static_cast<int64_t>(inputs.size()));
  const size_t batch = static_cast<size_t>(options.batch_size);
  ForwardOptions forward_options{policy};
  forward_options.cls_only_output = cls_only_output;
  for (size_t begin = 0; begin < inputs.size(); begin += batch) {
    const size_t end = std::min(inputs.size(), begin + batch);
    ForwardStats batch_stats;
    const auto outputs = model.encoder().forward(std::span(all.inputs).subspan(begin, end - begin), forward_options, &batch_stats);
    if (stats) stats->add(batch_stats);
    for (size_t i = begin; i < end; ++i) on_output(i, outputs[i - begin]);
    progress.advance(static_cast<int64_t>(end - begin));
  }
}

void run_streamed(const TextModel& model, TextSource& source, const ModelOptions& options,
                  const std::function<void(size_t, const std::string&, const SequenceOutput&)>& on_output,
                  bool cls_only_output) {
  constexpr size_t kChunkTexts = 4096;  // texts (at most 1 MiB each) tokenized and held at once
  std::vector<std::string> texts;
  std::vector<TextPair> inputs;
  for (size_t first = 0; source.next_chunk(kChunkTexts, texts); first += texts.size()) {
    inputs.clear();
    for (const std::string& text : texts) inputs.push_back({text, ""});
    run_batched(model, inputs, options, nullptr,
                [&](size_t i, const SequenceOutput& out) { on_output(first + i, texts[i], out); }, nullptr, first,
                cls_only_output);
  }
}

}  // namespace sieve::cli
