// sieve perplexity: perplexity of a decoder (GPT-2 directory or Llama-family GGUF) over a text file,
// for the dense decoder and each generation policy in one run, with KV-cache bytes read and speed.
// Protocols and scoring: eval/perplexity.h.
#include <nlohmann/json.hpp>

#include "cli/commands/common.h"
#include "eval/perplexity.h"
#include "model/decoder.h"
#include "policies/generation_policy.h"
#include "policies/policy_spec.h"
#include "sim/workload_trace.h"
#include "tokenizers/byte_bpe.h"
#include "util/error.h"
#include "util/files.h"

namespace sieve::cli {

namespace {

// The text is tokenized whole: 64 MiB is ~16M tokens, about 60 times WikiText-2's test split.
constexpr uint64_t kMaxPerplexityDataBytes = 64ull << 20;

struct PerplexityOptions {
  std::string model_dir, data, json_path, trace_path, protocol = "sliding", scoring = "auto";
  std::vector<std::string> policies;
  int64_t window = 0, stride = 0;  // 0: min(positions, 1024), window / 2
  int64_t max_windows = 0, first_window = 0;
  bool context_steps = false;
  int threads = 0;
  DecoderOptions decoder;
};

// The default window: the model's positions, at most 1024 (a Llama's 8k context would make every
// window a minute of work).
constexpr int64_t kDefaultMaxWindow = 1024;

void run(const PerplexityOptions& o) {
  set_threads(o.threads);
  // Parse every spec first: a typo fails before minutes of evaluation.
  std::vector<std::unique_ptr<GenerationPolicyChain>> policies;
  policies.push_back(parse_generation_spec("dense"));
  for (const std::string& spec : o.policies)
    if (spec != "dense") policies.push_back(parse_generation_spec(spec));
  const std::unique_ptr<Decoder> model = load_decoder(o.model_dir, o.decoder);
  const ByteLevelBpe tokenizer = load_decoder_tokenizer(o.model_dir);
  const std::vector<int32_t> ids = tokenizer.encode(read_file_bounded(o.data, kMaxPerplexityDataBytes));
  PerplexitySetup setup;
  setup.protocol = o.protocol == "chunks" ? PerplexityProtocol::Chunks : PerplexityProtocol::Sliding;
  setup.window = o.window > 0 ? o.window : std::min(model->shape().max_positions, kDefaultMaxWindow);
  setup.stride = setup.protocol == PerplexityProtocol::Chunks ? setup.window
                                                              : (o.stride > 0 ? o.stride : std::max<int64_t>(1, setup.window / 2));
  setup.max_windows = o.max_windows;
  setup.first_window = o.first_window;
  setup.context_steps = o.context_steps;
  if (o.context_steps && o.scoring == "prefill") throw Error("--context-steps needs --scoring steps or auto");
  if (o.stride > 0 && setup.protocol == PerplexityProtocol::Chunks) throw Error("--stride applies to --protocol sliding only");
  // Prefill scoring runs the prompt stage only, where generation policies do not act: dense only.
  if (o.scoring == "prefill" && policies.size() > 1) throw Error("--scoring prefill measures dense only; generation policies need --scoring steps");
  auto scoring_for = [&](const GenerationPolicyChain& policy) {
    if (o.scoring == "steps") return PerplexityScoring::Steps;
    if (o.scoring == "prefill") return PerplexityScoring::Prefill;
    return policy.empty() ? PerplexityScoring::Prefill : PerplexityScoring::Steps;  // auto
  };

  std::printf("%zu tokens, %s protocol, window %lld, stride %lld\n", ids.size(), o.protocol.c_str(),
              static_cast<long long>(setup.window), static_cast<long long>(setup.stride));
  std::printf("%12s %14s %9s %9s %9s %10s %10s  %s\n", "perplexity", "KV bytes/tok", "vs dense", "key bits", "LSB rate",
              "cached", "tokens/s", "policy");
  // Warm-up: oneDNN generates its GEMM kernels on first use, which would be billed to dense's tokens/s.
  if (ids.size() >= 2) {
    const int64_t warm = std::min<int64_t>(static_cast<int64_t>(ids.size()), std::min<int64_t>(setup.window, 16));
    evaluate_perplexity(*model, std::span(ids).first(static_cast<size_t>(warm)), *policies.front(), warm, warm);
  }
  nlohmann::json results = nlohmann::json::array();
  double dense_bytes = 0.0;
  const DecoderShape shape = model->shape();
  sim::WorkloadTrace trace;
  trace.kind = sim::WorkloadTrace::Kind::Decoder;
  trace.source = o.model_dir + " on " + o.data;
  trace.decoder = {shape.layers, shape.kv_heads, shape.query_heads, shape.head_dim};
  for (auto& policy : policies) {
    PerplexitySetup this_setup = setup;
    this_setup.scoring = scoring_for(*policy);
    const PerplexityResult r = evaluate_perplexity(*model, ids, *policy, this_setup);
    if (results.empty()) dense_bytes = r.kv_bytes_per_token;
    trace.decoder_settings.push_back({r.policy, r.steps, r.perplexity, r.traffic});
    const double ratio = dense_bytes > 0 ? r.kv_bytes_per_token / dense_bytes : 0.0;
    std::printf("%12.4f %14.0f %9.3f %9.2f %9.3f %10.1f %10.1f  %s\n", r.perplexity, r.kv_bytes_per_token, ratio,
                r.mean_key_bits, r.lsb_refetch_rate, r.mean_cached_tokens, r.tokens_per_second, r.policy.c_str());
    std::fflush(stdout);
    results.push_back({{"policy", r.policy}, {"perplexity", r.perplexity}, {"mean_nll", r.mean_nll},
                       {"tokens_scored", r.tokens_scored}, {"windows", r.windows}, {"steps", r.steps},
                       {"scoring", this_setup.scoring == PerplexityScoring::Prefill ? "prefill" : "steps"},
                       {"kv_bytes_per_token", r.kv_bytes_per_token}, {"kv_bytes_vs_dense", ratio},
                       {"mean_key_bits", r.mean_key_bits}, {"lsb_refetch_rate", r.lsb_refetch_rate},
                       {"mean_cached_tokens", r.mean_cached_tokens}, {"tokens_per_second", r.tokens_per_second},
                       {"window_mean_nll", r.window_mean_nll}});
  }
  if (!o.trace_path.empty()) {
    write_file_atomically(o.trace_path, [&](std::ostream& file) { file << sim::trace_to_json(trace).dump(2) << "\n"; });
    std::fprintf(stderr, "wrote %s\n", o.trace_path.c_str());
  }
  if (o.json_path.empty()) return;
  const nlohmann::json out = {{"model", o.model_dir}, {"data", o.data}, {"tokens", ids.size()}, {"protocol", o.protocol},
                              {"weights", o.decoder.weights}, {"activations", o.decoder.activations},
                              {"window", setup.window}, {"stride", setup.stride}, {"first_window", setup.first_window}, {"max_windows", setup.max_windows},
                              {"context_steps", setup.context_steps},
                              {"results", results}};
  write_file_atomically(o.json_path, [&](std::ostream& file) { file << out.dump(2) << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.json_path.c_str());
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a decoder (GPT-2 or Llama-family GGUF), dense and under generation policies");
  cmd->add_option("--model", o->model_dir, "Hugging Face GPT-2 directory, or a Llama-family .gguf file")->required();
  cmd->add_option("--data", o->data, "Text file")->required();
  cmd->add_option("--policy", o->policies, std::string("Generation policy, repeatable (dense always runs first): ") + kGenerationSpecHelp);
  cmd->add_option("--protocol", o->protocol, "sliding (windows `stride` apart, Hugging Face's guide) or chunks (llama.cpp's: "
                                             "non-overlapping windows, second half scored)")
      ->check(CLI::IsMember({"sliding", "chunks"}))->capture_default_str();
  cmd->add_option("--scoring", o->scoring, "steps (one generation step per scored token: policies act), prefill (one pass "
                                           "per window: dense only), auto (prefill for dense, steps for policies)")
      ->check(CLI::IsMember({"auto", "steps", "prefill"}))->capture_default_str();
  cmd->add_option("--window", o->window, "Tokens per window (default: the model's positions, at most 1024)")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--stride", o->stride, "sliding: tokens between windows (default: window / 2)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-windows", o->max_windows, "Evaluate only N windows (0: all)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--first-window", o->first_window, "Skip the windows before this one (e.g. a calibration slice)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--json", o->json_path, "Also write the results as JSON to FILE");
  cmd->add_option("--trace", o->trace_path, "Write each setting's KV-cache reads (elements, bits, refetches) to FILE, for `sieve sim`");
  cmd->add_flag("--context-steps", o->context_steps, "Steps scoring: feed each window's unscored context as generation steps "
                                                     "too, so every token reads the policy's cache (llama.cpp's perplexity with a "
                                                     "quantized KV cache); default: the context is an fp32 prompt");
  add_decoder_options(*cmd, o->decoder);
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
