#pragma once
// Pieces every `sieve` subcommand shares: model/thread options, reading inputs, writing outputs
// without leaving half-written files behind.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "eval/evaluator.h"
#include "model/decoder.h"
#include "model/text_model.h"
#include "util/files.h"

namespace sieve::cli {

struct ModelOptions {
  std::string model_dir;
  int threads = 0;        // 0 = all cores
  int batch_size = 32;
  bool batch_size_given = false;  // --batch-size was on the command line (eval and tune default to 1 otherwise)
  size_t max_length = 0;  // 0 = the model's own
  std::string exits_dir;  // empty = <model>/exits when present
  std::string precision = "fp32";  // the layers' GEMMs: fp32, bf16 or int8
  std::string tile_sparse = "auto";  // E.T. tile-sparse weights: auto, off, or the minimum tile sparsity
};

void add_model_options(CLI::App& cmd, ModelOptions& options);
// --tile-sparse's value as BertEncoder::set_tile_sparse takes it (off: above 1); throws Error.
double parse_tile_sparse(const std::string& value);
// --weights and --activations of the decoder commands (generate, perplexity, bench-decoder).
void add_decoder_options(CLI::App& cmd, DecoderOptions& options);
// Loads the model and sets the thread count for the BLAS library and the engine's kernels.
TextModel load_model(const ModelOptions& options);
void set_threads(int threads);

// Longest single input text, in bytes: the model reads at most 512 tokens of it anyway, and a
// bound keeps a file without newlines (or /dev/zero) from being read into memory whole.
inline constexpr size_t kMaxTextBytes = 1 << 20;

// Texts from positional arguments, or one per line from --file ("-" = stdin), read a chunk at a
// time so a million-line file never sits in memory whole. Empty lines in a file are kept (they are
// valid, empty inputs) except a final newline. Throws Error for a missing file, a text over
// kMaxTextBytes, a read error, or no input at all.
class TextSource {
 public:
  TextSource(const std::vector<std::string>& args, const std::string& file);
  // Replaces `texts` with up to `count` more texts; false when none were left.
  bool next_chunk(size_t count, std::vector<std::string>& texts);
  size_t texts_read() const { return texts_read_; }

 private:
  std::vector<std::string> args_;
  std::string file_;
  std::ifstream file_stream_;
  std::unique_ptr<LineReader> lines_;
  size_t texts_read_ = 0;
};

// All texts of a TextSource, refused beyond max_texts (for commands that need them together).
std::vector<std::string> collect_texts(const std::vector<std::string>& args, const std::string& file,
                                       size_t max_texts = 1'000'000);

// Writes `path` through a new temporary file in the same directory, renamed over `path` only when
// everything was written, so a failure (a full disk, a file-size limit) never leaves a truncated
// output. The temporary is created exclusively with a random name, so a planted "<path>.tmp"
// symlink is never followed; a target that exists and is not a regular file (a directory, a
// device, a symlink) is refused rather than replaced.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

std::string json_escape(const std::string& s);
// A number for JSON output: %.7g, or null for NaN and infinity (bare "nan" is not JSON).
std::string json_number(double value);

// One evaluator result as JSON, the same in `sieve eval --json` and `sieve tune --json`.
// What set_tile_sparse chose: {sparse_weights, weights, skipped_tiles, tile_k: [finest, deepest]}.
nlohmann::json tile_sparse_json(const BertEncoder& encoder);
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
void register_perplexity(CLI::App& app);  // decoder perplexity (perplexity.cpp)
void register_sim(CLI::App& app);         // accelerator models (sim.cpp)
void register_bench_decoder(CLI::App& app);  // decoder speed (bench_decoder.cpp)
void register_serve(CLI::App& app);       // HTTP server (serve.cpp, over serving/)
void register_qa(CLI::App& app);          // extractive question answering (qa.cpp)

}  // namespace sieve::cli

namespace sieve::cli {

// Tokenizes and runs `inputs` through the encoder in batches, with a progress bar on long inputs and
// one warning per truncated input; calls on_output(i, output) for input i in order.
// first_index: the number of inputs handled before these, for the input numbers in warnings.
void run_batched(const TextModel& model, const std::vector<TextPair>& inputs, const ModelOptions& options,
                 LayerPolicy* policy, const std::function<void(size_t, const SequenceOutput&)>& on_output,
                 ForwardStats* stats = nullptr, size_t first_index = 0, bool cls_only_output = false);

// Runs every text of a TextSource through the model, a chunk at a time: memory stays bounded by
// the chunk whatever the number of inputs. on_output(i, text, output) gets input i's text.
// cls_only_output: on_output reads only the [CLS] row (ForwardOptions::cls_only_output).
void run_streamed(const TextModel& model, TextSource& source, const ModelOptions& options,
                  const std::function<void(size_t, const std::string&, const SequenceOutput&)>& on_output,
                  bool cls_only_output = false);

}  // namespace sieve::cli
