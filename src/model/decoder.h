#pragma once
// What every decoder-only language model offers the one decoding loop (DecodingSession): its
// shape, and a forward pass over new tokens against a KV cache. GPT-2 (model/gpt2_decoder.h) and the
// Llama family (model/llama_decoder.h) implement it; generation, perplexity, the generation
// policies and the CLI see only this interface.
//
// DecodingSession::prefill runs the prompt (all tokens in one pass, causal attention), step() one
// new token against the KV cache; the generation policy is consulted inside attention and after
// every token (policies/generation_policy.h).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/kv_cache.h"
#include "tensor/tensor.h"
#include "tokenizers/byte_bpe.h"

namespace sieve {

class GenerationPolicy;

struct DecoderShape {
  int layers = 0;
  int kv_heads = 0;         // heads the KV cache stores (fewer than query heads with grouped-query attention)
  int query_heads = 0;
  int64_t head_dim = 0;
  int64_t max_positions = 0;
  int64_t vocab_size = 0;
  int64_t hidden = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual DecoderShape shape() const = 0;
  // "gpt2", "llama": what was loaded.
  virtual std::string architecture() const = 0;
  // Runs `ids` at positions cache.tokens_seen().. : their keys/values join the cache, their
  // queries attend to the cache and to each other causally. Returns logits [rows, vocab] for
  // every new token (all_logits) or for the last one only. Does not prune the cache.
  virtual Tensor forward(std::span<const int32_t> ids, KvCache& cache, GenerationPolicy& policy, DecodeStage stage,
                         bool all_logits, KvTraffic& traffic) const = 0;
};

// How a GGUF decoder keeps its weights (model/llama_decoder.h): "gguf" (the file's quantized blocks
// for decoding steps, fp32 for the prompt) or "fp32" (dequantized only). GPT-2 is fp32 either way.
// With gguf weights, `activations` says how decoding steps multiply them: "int8" (activations
// quantized per block of 32, integer dot products, as llama.cpp) or "fp32" (exact: the parity path).
struct DecoderOptions {
  std::string weights = "gguf";
  std::string activations = "int8";
};

// A GPT-2 directory (config.json + model.safetensors) or a Llama-family GGUF file (or a directory
// holding exactly one .gguf). Throws sieve::Error.
std::unique_ptr<Decoder> load_decoder(const std::filesystem::path& path, const DecoderOptions& options = {});

// The tokenizer of a decoder named as load_decoder() takes it (vocab.json + merges.txt or
// tokenizer.json beside a GPT-2; the GGUF's own metadata for a .gguf).
ByteLevelBpe load_decoder_tokenizer(const std::filesystem::path& path);

// A single user turn in the model's chat format, ending where the assistant's answer begins.
// Supported: ChatML templates (<|im_start|>role\ncontent<|im_end|>\n), as SmolLM2's GGUF carries,
// with the default system message the template writes when none is given. Jinja is not evaluated:
// other templates are refused with an Error.
std::string chat_prompt(const std::filesystem::path& path, const std::string& user_message);

// One sequence being decoded: its cache, its policy, and what it read from the cache.
class DecodingSession {
 public:
  // `policy` must outlive the session; it is reset here. The cache holds up to `capacity` tokens
  // (0: the model's max_positions), allocated now: ask for what the sequence needs.
  DecodingSession(const Decoder& model, GenerationPolicy& policy, int64_t capacity = 0);

  // The prompt: returns the logits of its last token ([vocab]); when all_logits is non-null it
  // receives [tokens, vocab]. Only once, on an empty session.
  std::vector<float> prefill(std::span<const int32_t> ids, Tensor* all_logits = nullptr);
  // One more token: returns its logits. Throws when the capacity is reached.
  std::vector<float> step(int32_t id);

  const KvCache& cache() const { return cache_; }
  bool full() const { return cache_.tokens_seen() >= capacity_; }
  const KvTraffic& traffic() const { return traffic_; }  // over step() calls
  int64_t steps() const { return steps_; }

 private:
  void prune_cache();
  void check_room(int64_t tokens) const;

  const Decoder& model_;
  GenerationPolicy& policy_;
  int64_t capacity_;
  KvCache cache_;
  KvTraffic traffic_;
  int64_t steps_ = 0;
};

}  // namespace sieve
