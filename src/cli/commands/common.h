#pragma once
// Pieces every `sieve` subcommand shares: model/thread options, reading inputs, writing outputs
// without leaving half-written files behind.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "eval/evaluator.h"
#include "model/text_model.h"

namespace sieve::cli {

struct ModelOptions {
  std::string model_dir;
  int threads = 0;        // 0 = all cores
  int batch_size = 32;
  size_t max_length = 0;  // 0 = the model's own
  std::string exits_dir;  // empty = <model>/exits when present
  std::string precision = "fp32";  // the layers' GEMMs: fp32 or bf16
};

void add_model_options(CLI::App& cmd, ModelOptions& options);
// Loads the model and sets the thread count for the BLAS library and the engine's kernels.
TextModel load_model(const ModelOptions& options);
void set_threads(int threads);

// Texts from positional arguments, or one per line from --file ("-" = stdin). Empty lines in a file
// are kept (they are valid, empty inputs) except a final newline.
std::vector<std::string> collect_texts(const std::vector<std::string>& args, const std::string& file);

// Writes to path.tmp then renames, so a failure never leaves a truncated output file.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(const std::filesystem::path&)>& write);

std::string json_escape(const std::string& s);

// One evaluator result as JSON, the same in `sieve eval --json` and `sieve tune --json`.
nlohmann::json eval_result_json(const EvalResult& r);

// Each subcommand registers itself; main() only dispatches.
void register_embed(CLI::App& app);
void register_classify(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_bench(CLI::App& app);
void register_eval(CLI::App& app);
void register_explain(CLI::App& app);
void register_calibrate(CLI::App& app);
void register_tune(CLI::App& app);        // fastest policy within an accuracy budget (tune.cpp)
void register_generate(CLI::App& app);    // GPT-2 decoding (generate.cpp)
void register_perplexity(CLI::App& app);  // GPT-2 perplexity (perplexity.cpp)

}  // namespace sieve::cli

namespace sieve::cli {

// Tokenizes and runs `inputs` through the encoder in batches, with a progress bar on long inputs and
// one warning per truncated input; calls on_output(i, output) for input i in order.
void run_batched(const TextModel& model, const std::vector<TextPair>& inputs, const ModelOptions& options,
                 LayerPolicy* policy, const std::function<void(size_t, const SequenceOutput&)>& on_output,
                 ForwardStats* stats = nullptr);

}  // namespace sieve::cli
