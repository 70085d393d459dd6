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
// Weights (LlamaWeights): dequantized once at load into fp32 for oneDNN's sgemm, and by default also
// kept in their GGUF blocks for the few rows of a decoding step (kernels/quantized_gemm.h), where
// the bytes of weight read per token set the speed.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kernels/quantized_gemm.h"
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

// fp32: every GEMM on dequantized fp32 weights. gguf: steps of up to kQuantizedMaxRows rows read
// the GGUF's quantized blocks (Q4_0, Q4_1, Q8_0; other types stay fp32), longer runs use fp32.
enum class LlamaWeights { Fp32, Gguf };

class LlamaDecoder final : public Decoder {
 public:
  static constexpr int64_t kQuantizedMaxRows = 8;

  // One linear layer: fp32 in gemm's layout [in, out], and (gguf weights) the quantized rows [out, in].
  struct Linear {
    Tensor fp32_t;
    std::optional<QuantizedMatrix> quantized;
  };

  // A .gguf file, or a directory holding exactly one. Throws sieve::Error.
  // `activations`: how decoding steps meet the quantized weights (kernels/quantized_gemm.h): int8
  // as llama.cpp does (fast), or fp32 (equal to the dequantized weights' product: the parity path).
  static LlamaDecoder load(const std::filesystem::path& path, LlamaWeights weights = LlamaWeights::Gguf,
                           QuantizedActivations activations = QuantizedActivations::Int8);
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
    Linear qkv;      // out = (heads + 2 kv_heads) * head_dim: Wq, Wk, Wv stacked
    Linear output;   // [hidden, hidden]
    Linear gate_up;  // out = 2 ffn: Wgate, Wup stacked
    Linear down;     // [ffn -> hidden]
  };
  // y[n, out] (+)= x[n, in] W (rows ldx and ldy apart): quantized rows for short runs when present, else sgemm.
  void apply(const Linear& w, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy, bool accumulate) const;

  LlamaConfig config_;
  QuantizedActivations activations_ = QuantizedActivations::Int8;
  Tensor embed_;      // [vocab, hidden]
  Linear head_;       // [hidden -> vocab]: the LM head (tied: quantized rows only; fp32 is embed_)
  bool head_tied_ = false;
  Tensor output_norm_;
  std::vector<Layer> layers_;
  std::vector<float> rope_cos_, rope_sin_;  // [context_length, head_dim / 2]
};

}  // namespace sieve
