// sieve perplexity: sliding-window perplexity of a GPT-2 model over a text file, for the dense
// decoder and each generation policy in one run, with KV-cache bytes read and speed.
#include <nlohmann/json.hpp>

#include "cli/commands/common.h"
#include "eval/perplexity.h"
#include "model/gpt2_decoder.h"
#include "policies/generation_policy.h"
#include "policies/policy_spec.h"
#include "tokenizers/byte_bpe.h"
#include "util/error.h"
#include "util/files.h"

namespace sieve::cli {

namespace {

// The text is tokenized whole: 64 MiB is ~16M tokens, about 60 times WikiText-2's test split.
constexpr uint64_t kMaxPerplexityDataBytes = 64ull << 20;

struct PerplexityOptions {
  std::string model_dir, data, json_path;
  std::vector<std::string> policies;
  int64_t window = 0, stride = 0;  // 0: n_positions, window / 2
  int threads = 0;
};

void run(const PerplexityOptions& o) {
  set_threads(o.threads);
  // Parse every spec first: a typo fails before minutes of evaluation.
  std::vector<std::unique_ptr<GenerationPolicyChain>> policies;
  policies.push_back(parse_generation_spec("dense"));
  for (const std::string& spec : o.policies)
    if (spec != "dense") policies.push_back(parse_generation_spec(spec));
  const Gpt2Decoder model = Gpt2Decoder::load(o.model_dir);
  const ByteLevelBpe tokenizer = ByteLevelBpe::from_model_dir(o.model_dir);
  const std::vector<int32_t> ids = tokenizer.encode(read_file_bounded(o.data, kMaxPerplexityDataBytes));
  const int64_t window = o.window > 0 ? o.window : model.config().n_positions;
  const int64_t stride = o.stride > 0 ? o.stride : std::max<int64_t>(1, window / 2);

  std::printf("%zu tokens, window %lld, stride %lld\n", ids.size(), static_cast<long long>(window), static_cast<long long>(stride));
  std::printf("%12s %14s %9s %9s %9s %10s %10s  %s\n", "perplexity", "KV bytes/tok", "vs dense", "key bits", "LSB rate",
              "cached", "tokens/s", "policy");
  // Warm-up: oneDNN generates its GEMM kernels on first use, which would be billed to dense's tokens/s.
  if (ids.size() >= 2) {
    const int64_t warm = std::min<int64_t>(static_cast<int64_t>(ids.size()), std::min<int64_t>(window, 16));
    evaluate_perplexity(model, std::span(ids).first(static_cast<size_t>(warm)), *policies.front(), warm, warm);
  }
  nlohmann::json results = nlohmann::json::array();
  double dense_bytes = 0.0;
  for (auto& policy : policies) {
    const PerplexityResult r = evaluate_perplexity(model, ids, *policy, window, stride);
    if (results.empty()) dense_bytes = r.kv_bytes_per_token;
    const double ratio = dense_bytes > 0 ? r.kv_bytes_per_token / dense_bytes : 0.0;
    std::printf("%12.4f %14.0f %9.3f %9.2f %9.3f %10.1f %10.1f  %s\n", r.perplexity, r.kv_bytes_per_token, ratio,
                r.mean_key_bits, r.lsb_refetch_rate, r.mean_cached_tokens, r.tokens_per_second, r.policy.c_str());
    std::fflush(stdout);
    results.push_back({{"policy", r.policy}, {"perplexity", r.perplexity}, {"mean_nll", r.mean_nll},
                       {"tokens_scored", r.tokens_scored}, {"steps", r.steps},
                       {"kv_bytes_per_token", r.kv_bytes_per_token}, {"kv_bytes_vs_dense", ratio},
                       {"mean_key_bits", r.mean_key_bits}, {"lsb_refetch_rate", r.lsb_refetch_rate},
                       {"mean_cached_tokens", r.mean_cached_tokens}, {"tokens_per_second", r.tokens_per_second}});
  }
  if (o.json_path.empty()) return;
  const nlohmann::json out = {{"model", o.model_dir}, {"data", o.data}, {"tokens", ids.size()},
                              {"window", window}, {"stride", stride}, {"results", results}};
  write_file_atomically(o.json_path, [&](std::ostream& file) { file << out.dump(2) << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.json_path.c_str());
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Sliding-window perplexity of a GPT-2 model, dense and under generation policies");
  cmd->add_option("--model", o->model_dir, "Hugging Face GPT-2 directory")->required();
  cmd->add_option("--data", o->data, "Text file")->required();
  cmd->add_option("--policy", o->policies, std::string("Generation policy, repeatable (dense always runs first): ") + kGenerationSpecHelp);
  cmd->add_option("--window", o->window, "Tokens per window (default: the model's positions)")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--stride", o->stride, "Tokens between windows (default: window / 2)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--json", o->json_path, "Also write the results as JSON to FILE");
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
