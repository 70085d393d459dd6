// sieve bench-decoder: a decoder's speed at batch 1, as llama.cpp's users measure it: prompt
// processing (tokens/s evaluating a prompt from an empty cache) and decoding (tokens/s of greedy
// steps after a prompt), dense and under generation policies, on WikiText-2 text. The peer's side
// is bench/llama_cpp_speed.py; bench/decoder_speed.py runs both in one run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands/common.h"
#include "model/decoder.h"
#include "policies/generation_policy.h"
#include "policies/policy_spec.h"
#include "util/error.h"
#include "util/files.h"

namespace sieve::cli {

namespace {

constexpr uint64_t kMaxTextBytes = 64ull << 20;

struct BenchDecoderOptions {
  std::string model_dir, data, json_path;
  std::vector<int64_t> prompt_tokens{128, 512};
  int64_t decode_prompt = 128, decode_tokens = 128, long_decode_tokens = 64;
  std::vector<int64_t> long_contexts{1024, 4096};
  std::vector<std::string> policies;
  int repeats = 5, threads = 2;
  DecoderOptions decoder;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Prompt processing: tokens/s of prefill over `ids` from an empty cache (median of repeats, after a warm-up).
nlohmann::json measure_prompt(const Decoder& model, std::span<const int32_t> ids, int repeats) {
  auto dense = parse_generation_spec("dense");
  std::vector<double> seconds;
  for (int r = 0; r <= repeats; ++r) {
    DecodingSession session(model, *dense, static_cast<int64_t>(ids.size()));
    const auto start = std::chrono::steady_clock::now();
    session.prefill(ids);
    if (r > 0) seconds.push_back(seconds_since(start));
  }
  const double s = median(seconds);
  return {{"tokens", ids.size()}, {"seconds_median", s}, {"tokens_per_s", static_cast<double>(ids.size()) / s}};
}

// Decoding: greedy steps after a prompt; tokens/s over the steps only (median of repeats).
nlohmann::json measure_decode(const Decoder& model, const std::string& spec, std::span<const int32_t> prompt,
                              int64_t new_tokens, int repeats) {
  std::vector<double> seconds;
  double kv_bytes = 0, cached = 0;
  for (int r = 0; r <= repeats; ++r) {
    auto policy = parse_generation_spec(spec);
    DecodingSession session(model, *policy, static_cast<int64_t>(prompt.size()) + new_tokens);
    std::vector<float> logits = session.prefill(prompt);
    const auto start = std::chrono::steady_clock::now();
    for (int64_t t = 0; t < new_tokens; ++t) {
      const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      logits = session.step(next);
    }
    if (r > 0) seconds.push_back(seconds_since(start));
    kv_bytes = session.traffic().bytes() / static_cast<double>(std::max<int64_t>(session.steps(), 1));
    cached = static_cast<double>(session.cache().size());
  }
  const double s = median(seconds);
  return {{"policy", spec}, {"prompt_tokens", prompt.size()}, {"new_tokens", new_tokens}, {"seconds_median", s},
          {"tokens_per_s", static_cast<double>(new_tokens) / s}, {"kv_bytes_per_token", kv_bytes}, {"cached_at_end", cached}};
}

void run(const BenchDecoderOptions& o) {
  set_threads(o.threads);
  std::vector<std::string> specs{"dense"};
  for (const std::string& spec : o.policies) {
    parse_generation_spec(spec);  // a typo fails before minutes of measuring
    if (spec != "dense") specs.push_back(spec);
  }
  const std::unique_ptr<Decoder> model = load_decoder(o.model_dir, o.decoder);
  const ByteLevelBpe tokenizer = load_decoder_tokenizer(o.model_dir);
  const std::vector<int32_t> ids = tokenizer.encode(read_file_bounded(o.data, kMaxTextBytes), false);
  auto first = [&](int64_t n) {
    if (n > static_cast<int64_t>(ids.size())) throw Error(o.data + " has only " + std::to_string(ids.size()) + " tokens, " + std::to_string(n) + " needed");
    if (n + o.decode_tokens > model->shape().max_positions) throw Error(std::to_string(n) + " tokens exceed the model's positions");
    return std::span<const int32_t>(ids).first(static_cast<size_t>(n));
  };
  nlohmann::json prompts = nlohmann::json::array(), decodes = nlohmann::json::array();
  for (int64_t n : o.prompt_tokens) {
    prompts.push_back(measure_prompt(*model, first(n), o.repeats));
    std::printf("prompt %5lld tokens: %8.1f tokens/s\n", static_cast<long long>(n), prompts.back()["tokens_per_s"].get<double>());
    std::fflush(stdout);
  }
  for (const std::string& spec : specs) {
    decodes.push_back(measure_decode(*model, spec, first(o.decode_prompt), o.decode_tokens, o.repeats));
    for (int64_t context : o.long_contexts)
      decodes.push_back(measure_decode(*model, spec, first(context), o.long_decode_tokens, std::max(1, o.repeats / 2)));
  }
  for (const nlohmann::json& d : decodes)
    std::printf("decode after %5lld: %8.1f tokens/s, KV %10.0f bytes/token  %s\n", d["prompt_tokens"].get<long long>(),
                d["tokens_per_s"].get<double>(), d["kv_bytes_per_token"].get<double>(), d["policy"].get<std::string>().c_str());
  if (o.json_path.empty()) return;
  const nlohmann::json out = {{"engine", "sieve"}, {"model", o.model_dir}, {"weights", o.decoder.weights}, {"activations", o.decoder.activations}, {"threads", o.threads},
                              {"repeats", o.repeats}, {"prompt", prompts}, {"decode", decodes}};
  write_file_atomically(o.json_path, [&](std::ostream& file) { file << out.dump(2) << "\n"; });
}

}  // namespace

void register_bench_decoder(CLI::App& app) {
  auto o = std::make_shared<BenchDecoderOptions>();
  CLI::App* cmd = app.add_subcommand("bench-decoder", "A decoder's prompt and decoding speed at batch 1 (tokens/s), dense and under generation policies");
  cmd->add_option("--model", o->model_dir, "Hugging Face GPT-2 directory, or a Llama-family .gguf file")->required();
  cmd->add_option("--data", o->data, "Text whose tokens are the prompts (e.g. WikiText-2's wiki.test.raw)")->required();
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prompt lengths for prompt processing")->capture_default_str();
  cmd->add_option("--decode-prompt", o->decode_prompt, "Prompt before the decoding measurement")->capture_default_str();
  cmd->add_option("--decode-tokens", o->decode_tokens, "Greedy steps timed")->capture_default_str();
  cmd->add_option("--long-contexts", o->long_contexts, "Prompt lengths for decoding at long context")->capture_default_str();
  cmd->add_option("--long-decode-tokens", o->long_decode_tokens, "Greedy steps timed after a long prompt")->capture_default_str();
  cmd->add_option("--policy", o->policies, std::string("Generation policy, repeatable (dense always runs): ") + kGenerationSpecHelp);
  cmd->add_option("--repeats", o->repeats, "Timed repeats (median), after one warm-up")->check(CLI::Range(1, 1000))->capture_default_str();
  add_decoder_options(*cmd, o->decoder);
  cmd->add_option("--json", o->json_path, "Also write the results as JSON to FILE");
  cmd->add_option("--threads", o->threads, "Threads")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
