// sieve generate: text continuation with a decoder (GPT-2 directory or Llama-family GGUF), streamed token by token, under a
// generation-stage policy (KV-cache pruning, local value pruning, progressive quantization).
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "cli/commands/common.h"
#include "model/decoder.h"
#include "model/sampling.h"
#include "policies/generation_policy.h"
#include "policies/policy_spec.h"
#include "tokenizers/byte_bpe.h"
#include "util/error.h"

namespace sieve::cli {

namespace {

constexpr int kInterruptedExitCode = 130;  // 128 + SIGINT, what shells report for Ctrl-C

volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_interrupt(int) { interrupted = 1; }

struct GenerateOptions {
  std::string model_dir, policy = "dense", prompt;
  int max_new_tokens = 50, threads = 0;
  DecoderOptions decoder;
  SamplingOptions sampling;
  bool ignore_eos = false, chat = false;
};

void run(const GenerateOptions& o) {
  set_threads(o.threads);
  if (o.prompt.empty()) throw Error("empty prompt: give the text to continue");
  auto policy = parse_generation_spec(o.policy);
  TokenSampler sampler(o.sampling);
  const std::unique_ptr<Decoder> model = load_decoder(o.model_dir, o.decoder);
  const ByteLevelBpe tokenizer = load_decoder_tokenizer(o.model_dir);
  std::vector<int32_t> ids = tokenizer.encode(o.chat ? chat_prompt(o.model_dir, o.prompt) : o.prompt);
  const auto limit = static_cast<size_t>(model->shape().max_positions);
  if (ids.size() > limit) {
    std::fprintf(stderr, "sieve: warning: prompt of %zu tokens truncated from the left to the model's %zu positions\n",
                 ids.size(), limit);
    ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(limit));
  }
  const std::optional<int32_t> end_of_text = tokenizer.end_of_text();

  // Ctrl-C sets a flag; the loop stops after the token in flight, so the output is never cut mid-token.
  interrupted = 0;
  std::signal(SIGINT, on_interrupt);
  const auto started = std::chrono::steady_clock::now();
  // The cache is allocated up front: room for this prompt and answer, not the model's whole context.
  const int64_t capacity = static_cast<int64_t>(std::min(limit, ids.size() + static_cast<size_t>(o.max_new_tokens)));
  DecodingSession session(*model, *policy, capacity);
  std::vector<float> logits = session.prefill(ids);
  int generated = 0;
  while (generated < o.max_new_tokens && !interrupted) {
    const int32_t next = sampler.next(logits);
    if (end_of_text && next == *end_of_text && !o.ignore_eos) break;
    const std::string& bytes = tokenizer.token_bytes(next);
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
    ++generated;
    if (generated == o.max_new_tokens || interrupted) break;
    if (session.full()) {
      std::fprintf(stderr, "\nsieve: warning: reached the model's %zu positions; stopping\n", limit);
      break;
    }
    logits = session.step(next);
  }
  std::fputc('\n', stdout);
  std::fflush(stdout);
  std::signal(SIGINT, SIG_DFL);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double steps = static_cast<double>(std::max<int64_t>(session.steps(), 1));
  std::fprintf(stderr, "sieve: %d tokens in %.3f s (%.1f tokens/s), policy %s, KV cache read %.0f bytes/token, %lld tokens cached\n",
               generated, seconds, generated / std::max(seconds, 1e-9), policy->describe().c_str(),
               session.traffic().bytes() / steps, static_cast<long long>(session.cache().size()));
  if (interrupted) std::exit(kInterruptedExitCode);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue a prompt with a decoder: GPT-2 or Llama-family GGUF (greedy unless --temperature > 0)");
  cmd->add_option("--model", o->model_dir, "Hugging Face GPT-2 directory (config.json, model.safetensors, vocab.json + merges.txt), or a Llama-family .gguf file")->required();
  cmd->add_flag("--chat", o->chat, "Wrap the prompt as one user turn of the model's chat template (ChatML GGUFs)");
  cmd->add_option("--policy", o->policy, std::string("Generation policy: ") + kGenerationSpecHelp)->capture_default_str();
  cmd->add_option("--max-new-tokens,-n", o->max_new_tokens, "Tokens to generate")->check(CLI::Range(0, 1 << 20))->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "Sampling temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", o->sampling.top_k, "Sample among the K most likely tokens (0 = all)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--top-p", o->sampling.top_p, "Nucleus sampling: the smallest set with probability >= P")->check(CLI::Range(1e-9, 1.0));
  cmd->add_option("--seed", o->sampling.seed, "Random seed for sampling");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep going after the end-of-text token");
  add_decoder_options(*cmd, o->decoder);
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("prompt", o->prompt, "Text to continue")->required();
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
