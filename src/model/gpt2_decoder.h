#pragma once
// A GPT-2 decoder (fp32) loaded from a Hugging Face directory: config.json with model_type "gpt2"
// and model.safetensors with GPT-2's tensor names (optionally under "transformer."). GPT-2 is
// pre-LayerNorm: x += attn(ln_1(x)); x += mlp(ln_2(x)); logits = ln_f(x) * wte^T (the LM head
// is tied to the token embeddings). Its linear layers are Conv1D, whose weight is stored
// [in, out]: already the layout gemm() takes, so no transpose at load.
//
// The decoding loop, generation policies and perplexity are shared with every decoder
// (model/decoder.h).
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "model/decoder.h"
#include "model/kv_cache.h"
#include "tensor/tensor.h"

namespace sieve {

class GenerationPolicy;

struct Gpt2Config {
  int64_t vocab_size = 0;
  int64_t n_positions = 0;
  int64_t n_embd = 0;
  int64_t n_head = 0;
  int64_t n_layer = 0;
  int64_t n_inner = 0;  // 4 * n_embd when the config says null
  double layer_norm_epsilon = 1e-5;

  int64_t head_dim() const { return n_embd / n_head; }
  // Reads and validates config.json (or the directory holding it); throws sieve::Error.
  static Gpt2Config load(const std::filesystem::path& path);
};

class Gpt2Decoder final : public Decoder {
 public:
  // Throws sieve::Error naming the file and tensor on anything missing or misshapen.
  static Gpt2Decoder load(const std::filesystem::path& model_dir);

  const Gpt2Config& config() const { return config_; }

  // Runs `ids` at positions cache.tokens_seen().. : their keys/values join the cache, their
  // queries attend to the cache and to each other causally. Returns logits [rows, vocab] for
  // every new token (all_logits) or for the last one only. Does not prune the cache.
  DecoderShape shape() const override;
  std::string architecture() const override { return "gpt2"; }
  Tensor forward(std::span<const int32_t> ids, KvCache& cache, GenerationPolicy& policy, DecodeStage stage,
                 bool all_logits, KvTraffic& traffic) const override;

 private:
  struct Layer {
    Tensor ln1_g, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_g, ln2_b, fc_w, fc_b, fc_proj_w, fc_proj_b;
  };

  Gpt2Config config_;
  Tensor wte_, wte_t_, wpe_;  // wte_t_ = wte^T [n_embd, vocab]: the tied LM head in gemm's layout
  Tensor lnf_g_, lnf_b_;
  std::vector<Layer> layers_;
};

}  // namespace sieve
