#pragma once
// A Llama-family decoder (SmolLM2, Llama 2/3, ...) read from a GGUF file (model/gguf.h):
//   x = embed[ids]
//   per block: x += Wo · attention(RoPE(Wq · rms(x)), RoPE(Wk · rms(x)), Wv · rms(x))
//              x += Wdown · (silu(Wgate · rms(x)) * (Wup · rms(x)))
//   logits = Wout · rms(x)   (Wout = the token embedding when the file has no output.weight)
// Grouped-query attention: the KV cache stores head_count_kv heads; query head h reads KV head
// h / (head_count / head_count_kv), and the generation policies work on the KV heads.
//
// RoPE: llama.cpp's converter permutes the rows of Wq and Wk so that the rotation pairs adjacent
// elements (2i, 2i+1) of each head; Hugging Face's checkpoints pair (i, i + d/2) instead
// ("rotate_half"). Sieve rotates adjacent pairs on the GGUF's own rows, which is the same
// computation as Hugging Face's on the un-permuted rows (tested in tests/llama_test.cpp).
//
// Weights are dequantized once at load into fp32 (the GEMMs are oneDNN's sgemm).
#include <filesystem>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "model/gguf.h"

namespace sieve {

struct LlamaConfig {
  int64_t vocab_size = 0;
  int64_t hidden = 0;
  int64_t ffn = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t context_length = 0;
  double rope_base = 10000.0;
  double rms_eps = 1e-5;

  int64_t head_dim() const { return hidden / heads; }
  // From the GGUF metadata (llama.*); throws Error naming the key that is missing or wrong.
  static LlamaConfig from_gguf(const GgufFile& file);
};

class LlamaDecoder final : public Decoder {
 public:
  // A .gguf file, or a directory holding exactly one. Throws sieve::Error.
  static LlamaDecoder load(const std::filesystem::path& path);
  // The GGUF file a path names (the path itself, or the one .gguf in a directory).
  static std::filesystem::path gguf_path(const std::filesystem::path& path);

  const LlamaConfig& config() const { return config_; }
  DecoderShape shape() const override;
  std::string architecture() const override { return "llama"; }
  Tensor forward(std::span<const int32_t> ids, KvCache& cache, GenerationPolicy& policy, DecodeStage stage,
                 bool all_logits, KvTraffic& traffic) const override;

  // Rotates one head's vector in place for `position` (adjacent pairs; exposed for tests).
  void apply_rope(float* head, int64_t position) const;

 private:
  struct Layer {
    Tensor attn_norm, ffn_norm;
    Tensor qkv_t;      // [hidden, (heads + 2 kv_heads) * head_dim]: Wq, Wk, Wv side by side, gemm's layout
    Tensor output_t;   // [hidden, hidden]
    Tensor gate_up_t;  // [hidden, 2 ffn]: Wgate, Wup side by side
    Tensor down_t;     // [ffn, hidden]
  };

  LlamaConfig config_;
  Tensor embed_;      // [vocab, hidden]
  Tensor head_t_;     // [hidden, vocab]: the LM head in gemm's layout
  Tensor output_norm_;
  std::vector<Layer> layers_;
  std::vector<float> rope_cos_, rope_sin_;  // [context_length, head_dim / 2]
};

}  // namespace sieve
