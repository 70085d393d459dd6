#include "model/llama_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/gemm.h"
#include "kernels/row_kernels.h"
#include "util/error.h"

namespace sieve {

namespace {

constexpr int64_t kMaxDimension = 1 << 20;  // hidden, ffn, vocab: far above any real model
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxContext = 1 << 20;

// A positive integer metadata value within [1, limit].
int64_t positive(const GgufFile& file, const std::string& key, int64_t limit) {
  const int64_t v = file.integer(key);
  if (v < 1 || v > limit) throw Error(file.path().string() + ": metadata '" + key + "' = " + std::to_string(v) + " is out of range [1, " + std::to_string(limit) + "]");
  return v;
}

// out[:, column .. column + w.rows) = w^T: an nn.Linear-layout weight [out, in] placed into a gemm-layout [in, total] matrix.
void place_transposed(const Tensor& w, Tensor& out, int64_t column) {
  const int64_t rows = w.dim(0), cols = w.dim(1), width = out.dim(1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out.data()[c * width + column + r] = w.data()[r * cols + c];
}

void rms_norm_rows(const Tensor& x, Tensor& out, const Tensor& gamma, double eps, int64_t first_row = 0) {
  const int64_t width = x.dim(1), rows = x.dim(0) - first_row;
  out.reshape({rows, width});
  for (int64_t r = 0; r < rows; ++r)
    row_kernels().rms_norm(x.row(first_row + r), out.row(r), gamma.data(), static_cast<float>(eps), width);
}

}  // namespace

LlamaConfig LlamaConfig::from_gguf(const GgufFile& file) {
  const std::string name = file.path().string();
  const std::string arch = file.string("general.architecture");
  if (arch != "llama") throw Error(name + ": architecture '" + arch + "' is not supported (supported: llama)");
  LlamaConfig c;
  c.hidden = positive(file, "llama.embedding_length", kMaxDimension);
  c.ffn = positive(file, "llama.feed_forward_length", kMaxDimension);
  c.layers = positive(file, "llama.block_count", kMaxLayers);
  c.heads = positive(file, "llama.attention.head_count", kMaxDimension);
  c.kv_heads = file.find("llama.attention.head_count_kv") ? positive(file, "llama.attention.head_count_kv", c.heads) : c.heads;
  c.context_length = positive(file, "llama.context_length", kMaxContext);
  c.vocab_size = file.tensor("token_embd.weight").shape().front();
  if (c.hidden % c.heads != 0) throw Error(name + ": embedding_length " + std::to_string(c.hidden) + " is not divisible by head_count");
  if (c.heads % c.kv_heads != 0) throw Error(name + ": head_count is not a multiple of head_count_kv");
  if (c.head_dim() % 2 != 0) throw Error(name + ": the head size must be even for RoPE");
  if (file.find("llama.rope.dimension_count") && file.integer("llama.rope.dimension_count") != c.head_dim())
    throw Error(name + ": partial rotary embeddings (rope.dimension_count != head size) are not supported");
  if (const GgufValue* scaling = file.find("llama.rope.scaling.type"); scaling && !(scaling->kind == GgufValue::Kind::String && scaling->text == "none"))
    throw Error(name + ": RoPE scaling is not supported");
  if (file.find("llama.rope.freq_base")) c.rope_base = file.number("llama.rope.freq_base");
  if (file.find("llama.attention.layer_norm_rms_epsilon")) c.rms_eps = file.number("llama.attention.layer_norm_rms_epsilon");
  if (!(c.rope_base > 1.0) || !std::isfinite(c.rope_base)) throw Error(name + ": rope.freq_base must be a finite number above 1");
  if (!(c.rms_eps > 0.0) || !(c.rms_eps < 1.0)) throw Error(name + ": layer_norm_rms_epsilon must be in (0, 1)");
  return c;
}

std::filesystem::path LlamaDecoder::gguf_path(const std::filesystem::path& path) {
  std::error_code ignored;
  if (!std::filesystem::is_directory(path, ignored)) return path;
  std::vector<std::filesystem::path> found;
  for (const auto& entry : std::filesystem::directory_iterator(path, ignored))
    if (entry.path().extension() == ".gguf") found.push_back(entry.path());
  if (found.size() != 1)
    throw Error(path.string() + ": expected a GPT-2 directory (config.json) or exactly one .gguf file, found " +
                std::to_string(found.size()) + " .gguf files");
  return found.front();
}

namespace {

// Reads one or more GGUF weights [out_i, in] stacked by rows into one Linear.
struct LinearLoader {
  const GgufFile& file;
  LlamaWeights weights;

  // keep_fp32 = false: only the quantized rows (the tied LM head, whose fp32 is the embedding).
  LlamaDecoder::Linear operator()(std::initializer_list<std::pair<std::string, int64_t>> parts, int64_t in,
                                  bool keep_fp32 = true) const {
    int64_t total = 0;
    for (const auto& [name, out] : parts) total += out;
    LlamaDecoder::Linear linear;
    if (keep_fp32) linear.fp32_t = Tensor({in, total});
    bool quantize = weights == LlamaWeights::Gguf;
    int64_t column = 0;
    for (const auto& [name, out] : parts) {
      if (keep_fp32) place_transposed(file.load_f32(name, {out, in}), linear.fp32_t, column);
      column += out;
      quantize = quantize && quantized_gemm_supports(file.tensor(name).type) &&
                 (!linear.quantized || linear.quantized->type == file.tensor(name).type);
      if (quantize) {
        QuantizedMatrix rows = QuantizedMatrix::from_blocks(file.tensor(name).type, out, in, file.tensor_bytes(name));
        if (linear.quantized) linear.quantized->append_rows(rows);
        else linear.quantized = std::move(rows);
      }
    }
    if (!quantize) linear.quantized.reset();  // a part of another type: all of it runs in fp32
    return linear;
  }
};

}  // namespace

void LlamaDecoder::apply(const Linear& w, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy, bool accumulate) const {
  if (w.quantized && n <= kQuantizedMaxRows) {
    quantized_gemm(*w.quantized, n, x, ldx, y, ldy, accumulate, activations_);
  } else {
    const int64_t in = w.fp32_t.dim(0), out = w.fp32_t.dim(1);
    gemm(n, out, in, {x, ldx}, {w.fp32_t.data(), out}, y, ldy, accumulate ? 1.0f : 0.0f);
  }
}

LlamaDecoder LlamaDecoder::load(const std::filesystem::path& path, LlamaWeights weights, QuantizedActivations activations) {
  const GgufFile file = GgufFile::open(gguf_path(path));
  LlamaDecoder m;
  m.config_ = LlamaConfig::from_gguf(file);
  m.activations_ = activations;
  const LlamaConfig& c = m.config_;
  const int64_t E = c.hidden, F = c.ffn, d = c.head_dim(), Q = c.heads * d, KV = c.kv_heads * d;
  m.embed_ = file.load_f32("token_embd.weight", {c.vocab_size, E});
  m.output_norm_ = file.load_f32("output_norm.weight", {E});
  const LinearLoader linear{file, weights};
  // No output.weight: the LM head is tied to the token embedding (SmolLM2), whose fp32 rows serve
  // both (gemm_nt), so the 28M-weight matrix is not held twice.
  m.head_tied_ = !file.contains("output.weight");
  m.head_ = linear({{m.head_tied_ ? "token_embd.weight" : "output.weight", c.vocab_size}}, E, !m.head_tied_);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer layer;
    layer.attn_norm = file.load_f32(p + "attn_norm.weight", {E});
    layer.ffn_norm = file.load_f32(p + "ffn_norm.weight", {E});
    layer.qkv = linear({{p + "attn_q.weight", Q}, {p + "attn_k.weight", KV}, {p + "attn_v.weight", KV}}, E);
    layer.output = linear({{p + "attn_output.weight", E}}, Q);
    layer.gate_up = linear({{p + "ffn_gate.weight", F}, {p + "ffn_up.weight", F}}, E);
    layer.down = linear({{p + "ffn_down.weight", E}}, F);
    m.layers_.push_back(std::move(layer));
  }
  // cos/sin of position * base^(-2j/d), rounded as Hugging Face computes them (fp32 frequencies
  // and angles), so that parity does not hinge on the table.
  const int64_t half = d / 2;
  m.rope_cos_.resize(static_cast<size_t>(c.context_length * half));
  m.rope_sin_.resize(m.rope_cos_.size());
  for (int64_t j = 0; j < half; ++j) {
    const float inv_freq = 1.0f / std::pow(static_cast<float>(c.rope_base), static_cast<float>(2 * j) / static_cast<float>(d));
    for (int64_t pos = 0; pos < c.context_length; ++pos) {
      const double angle = static_cast<double>(static_cast<float>(pos) * inv_freq);
      m.rope_cos_[static_cast<size_t>(pos * half + j)] = static_cast<float>(std::cos(angle));
      m.rope_sin_[static_cast<size_t>(pos * half + j)] = static_cast<float>(std::sin(angle));
    }
  }
  return m;
}

DecoderShape LlamaDecoder::shape() const {
  const LlamaConfig& c = config_;
  return {static_cast<int>(c.layers), static_cast<int>(c.kv_heads), static_cast<int>(c.heads), c.head_dim(),
          c.context_length, c.vocab_size, c.hidden};
}

void LlamaDecoder::apply_rope(float* head, int64_t position) const {
  const int64_t half = config_.head_dim() / 2;
  const float* cos = rope_cos_.data() + position * half;
  const float* sin = rope_sin_.data() + position * half;
  for (int64_t j = 0; j < half; ++j) {
    const float x0 = head[2 * j], x1 = head[2 * j + 1];
    head[2 * j] = x0 * cos[j] - x1 * sin[j];
    head[2 * j + 1] = x0 * sin[j] + x1 * cos[j];
  }
}

Tensor LlamaDecoder::forward(std::span<const int32_t> ids, KvCache& cache, GenerationPolicy& policy, DecodeStage stage,
                             bool all_logits, KvTraffic& traffic) const {
  const LlamaConfig& c = config_;
  const int64_t n = static_cast<int64_t>(ids.size()), E = c.hidden, F = c.ffn, V = c.vocab_size, d = c.head_dim();
  const int64_t Q = c.heads * d, KV = c.kv_heads * d, QKV = Q + 2 * KV;
  const int64_t start = cache.tokens_seen();
  if (n == 0) throw Error("no tokens to run");
  if (start + n > c.context_length)
    throw Error("sequence of " + std::to_string(start + n) + " tokens exceeds the model's " + std::to_string(c.context_length) + " positions");
  Tensor x({n, E});
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[static_cast<size_t>(i)];
    if (id < 0 || id >= V) throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(V));
    std::memcpy(x.row(i), embed_.row(id), sizeof(float) * static_cast<size_t>(E));
  }
  Tensor normed, qkv({n, QKV}), context({n, Q}), gate_up({n, 2 * F});
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    const int layer_index = static_cast<int>(l);
    rms_norm_rows(x, normed, layer.attn_norm, c.rms_eps);
    apply(layer.qkv, n, normed.data(), E, qkv.data(), QKV, false);
    const int64_t base = cache.size();
    for (int64_t i = 0; i < n; ++i) {
      float* row = qkv.row(i);
      for (int64_t h = 0; h < c.heads + c.kv_heads; ++h) apply_rope(row + h * d, start + i);  // queries, then keys
      // The new tokens' keys and values join the cache before attention: each attends to itself.
      std::memcpy(cache.key(layer_index, base + i), row + Q, sizeof(float) * static_cast<size_t>(KV));
      std::memcpy(cache.value(layer_index, base + i), row + Q + KV, sizeof(float) * static_cast<size_t>(KV));
    }
    cache.quantize_new_rows(layer_index, n);
    attend_new_tokens(cache, layer_index, {qkv.data(), QKV}, n, static_cast<int>(c.heads), policy, stage, context.data(), Q, traffic);
    apply(layer.output, n, context.data(), Q, x.data(), E, true);  // x += context Wo

    rms_norm_rows(x, normed, layer.ffn_norm, c.rms_eps);
    apply(layer.gate_up, n, normed.data(), E, gate_up.data(), 2 * F, false);
    for (int64_t i = 0; i < n; ++i) row_kernels().silu_mul(gate_up.row(i), gate_up.row(i) + F, F);
    apply(layer.down, n, gate_up.data(), 2 * F, x.data(), E, true);  // x += ffn (reads the gate half, stride 2F)
  }
  cache.commit(n);

  // Logits only where asked: the LM head is the largest GEMM of a small model.
  const int64_t first = all_logits ? 0 : n - 1, rows = n - first;
  rms_norm_rows(x, normed, output_norm_, c.rms_eps, first);
  Tensor logits({rows, V});
  if (head_tied_ && !(head_.quantized && rows <= kQuantizedMaxRows))
    gemm_nt(rows, V, E, {normed.data(), E}, {embed_.data(), E}, logits.data(), V);
  else
    apply(head_, rows, normed.data(), E, logits.data(), V, false);
  return logits;
}

}  // namespace sieve
