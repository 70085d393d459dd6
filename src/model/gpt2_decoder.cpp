#include "model/gpt2_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "kernels/gemm.h"
#include "kernels/row_kernels.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "policies/generation_policy.h"
#include "util/error.h"

namespace sieve {

namespace {

using nlohmann::json;

constexpr int64_t kMaxSize = 1 << 30;

// x[i] = gelu_new(x[i] + bias[i]): GPT-2's tanh approximation of GELU (not in RowKernels, whose
// bias_gelu is BERT's exact erf form).
void bias_gelu_tanh(float* x, const float* bias, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] + bias[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

// out = LayerNorm(x) row by row (GPT-2 normalizes a copy: x stays the residual stream).
void layer_norm_rows(const Tensor& x, Tensor& out, const Tensor& gamma, const Tensor& beta, double eps) {
  out.reshape(x.shape());
  std::memcpy(out.data(), x.data(), sizeof(float) * static_cast<size_t>(x.size()));
  const int64_t width = x.dim(1);
  for (int64_t r = 0; r < x.dim(0); ++r)
    row_kernels().bias_residual_layernorm(out.row(r), nullptr, nullptr, gamma.data(), beta.data(), static_cast<float>(eps), width);
}

[[noreturn]] void fail_field(const std::filesystem::path& file, const std::string& field, const std::string& problem) {
  throw Error(file.string() + ": field '" + field + "' " + problem);
}

void add_bias_rows(Tensor& x, const Tensor& bias) {
  for (int64_t r = 0; r < x.dim(0); ++r) row_kernels().bias_add(x.row(r), bias.data(), x.dim(1));
}

}  // namespace

Gpt2Config Gpt2Config::load(const std::filesystem::path& path) {
  std::filesystem::path file;
  const json root = read_config_json(path, &file);
  auto fail = [&file](const std::string& field, const std::string& problem) { fail_field(file, field, problem); };
  try {
    const std::string model_type = root.value("model_type", "");
    if (model_type != "gpt2") fail("model_type", "is '" + model_type + "' (supported: gpt2)");
    auto positive = [&](const char* field, int64_t fallback) {
      const auto it = root.find(field);
      if (it == root.end() || it->is_null()) {
        if (fallback > 0) return fallback;
        fail_field(file, field, "is missing");
      }
      if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > kMaxSize)
        fail(field, "must be a positive integer, got " + it->dump());
      return it->get<int64_t>();
    };
    Gpt2Config c;
    c.vocab_size = positive("vocab_size", 0);
    c.n_positions = positive("n_positions", 0);
    c.n_embd = positive("n_embd", 0);
    c.n_head = positive("n_head", 0);
    c.n_layer = positive("n_layer", 0);
    c.n_inner = positive("n_inner", 4 * c.n_embd);
    if (c.n_embd % c.n_head != 0) fail("n_embd", "is not divisible by n_head");
    if (const auto eps = root.find("layer_norm_epsilon"); eps != root.end()) {
      if (!eps->is_number() || !(eps->get<double>() > 0) || !std::isfinite(eps->get<double>()))
        fail("layer_norm_epsilon", "must be a positive number");
      c.layer_norm_epsilon = eps->get<double>();
    }
    const std::string act = root.value("activation_function", "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      fail("activation_function", "is '" + act + "' (supported: gelu_new, gelu_pytorch_tanh)");
    if (root.value("scale_attn_by_inverse_layer_idx", false)) fail("scale_attn_by_inverse_layer_idx", "true is not supported");
    if (!root.value("scale_attn_weights", true)) fail("scale_attn_weights", "false is not supported");
    return c;
  } catch (const json::exception& e) {  // a field of the wrong JSON type, e.g. "n_head": "4"
    throw Error(file.string() + ": " + e.what());
  }
}

Gpt2Decoder Gpt2Decoder::load(const std::filesystem::path& model_dir) {
  if (!std::filesystem::is_directory(model_dir)) throw Error("model directory not found: " + model_dir.string());
  Gpt2Decoder m;
  m.config_ = Gpt2Config::load(model_dir / "config.json");
  const Gpt2Config& c = m.config_;
  const auto weights_path = model_dir / "model.safetensors";
  if (!std::filesystem::exists(weights_path)) throw Error("model.safetensors not found in " + model_dir.string());
  const SafetensorsFile file = SafetensorsFile::open(weights_path);
  // GPT2Model has bare names; GPT2LMHeadModel puts them under "transformer.".
  const std::string prefix = file.contains("transformer.wte.weight") ? "transformer." : "";
  if (!file.contains(prefix + "wte.weight"))
    throw Error("missing tensor wte.weight in " + weights_path.string() + " (is this a GPT-2 checkpoint?)");
  auto get = [&](const std::string& name, std::vector<int64_t> shape) { return file.load_f32(prefix + name, shape); };

  const int64_t E = c.n_embd, I = c.n_inner;
  m.wte_ = get("wte.weight", {c.vocab_size, E});
  m.wpe_ = get("wpe.weight", {c.n_positions, E});
  m.wte_t_ = transposed(m.wte_);
  m.lnf_g_ = get("ln_f.weight", {E});
  m.lnf_b_ = get("ln_f.bias", {E});
  if (file.contains("lm_head.weight")) {
    const Tensor head = file.load_f32("lm_head.weight", {c.vocab_size, E});
    if (!std::equal(head.span().begin(), head.span().end(), m.wte_.span().begin()))
      throw Error(weights_path.string() + ": lm_head.weight differs from wte.weight (an untied LM head is not supported)");
  }
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    Layer layer;
    layer.ln1_g = get(p + "ln_1.weight", {E});
    layer.ln1_b = get(p + "ln_1.bias", {E});
    layer.qkv_w = get(p + "attn.c_attn.weight", {E, 3 * E});  // Conv1D: [in, out]
    layer.qkv_b = get(p + "attn.c_attn.bias", {3 * E});
    layer.proj_w = get(p + "attn.c_proj.weight", {E, E});
    layer.proj_b = get(p + "attn.c_proj.bias", {E});
    layer.ln2_g = get(p + "ln_2.weight", {E});
    layer.ln2_b = get(p + "ln_2.bias", {E});
    layer.fc_w = get(p + "mlp.c_fc.weight", {E, I});
    layer.fc_b = get(p + "mlp.c_fc.bias", {I});
    layer.fc_proj_w = get(p + "mlp.c_proj.weight", {I, E});
    layer.fc_proj_b = get(p + "mlp.c_proj.bias", {E});
    m.layers_.push_back(std::move(layer));
  }
  return m;
}

DecoderShape Gpt2Decoder::shape() const {
  const Gpt2Config& c = config_;
  return {static_cast<int>(c.n_layer), static_cast<int>(c.n_head), static_cast<int>(c.n_head), c.head_dim(),
          c.n_positions, c.vocab_size, c.n_embd};
}

Tensor Gpt2Decoder::forward(std::span<const int32_t> ids, KvCache& cache, GenerationPolicy& policy, DecodeStage stage,
                            bool all_logits, KvTraffic& traffic) const {
  const Gpt2Config& c = config_;
  const int64_t n = static_cast<int64_t>(ids.size()), E = c.n_embd, I = c.n_inner, V = c.vocab_size;
  const int64_t start = cache.tokens_seen();
  if (n == 0) throw Error("no tokens to run");
  if (start + n > c.n_positions)
    throw Error("sequence of " + std::to_string(start + n) + " tokens exceeds the model's " + std::to_string(c.n_positions) + " positions");
  Tensor x({n, E});
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[static_cast<size_t>(i)];
    if (id < 0 || id >= V) throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(V));
    const float* word = wte_.row(id);
    const float* position = wpe_.row(start + i);
    for (int64_t k = 0; k < E; ++k) x.row(i)[k] = word[k] + position[k];
  }
  Tensor normed, qkv, context, hidden({n, I});
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    layer_norm_rows(x, normed, layer.ln1_g, layer.ln1_b, c.layer_norm_epsilon);
    qkv.reshape({n, 3 * E});
    gemm(n, 3 * E, E, {normed.data(), E}, {layer.qkv_w.data(), 3 * E}, qkv.data(), 3 * E);
    add_bias_rows(qkv, layer.qkv_b);
    // The new tokens' keys and values join the cache before attention: each attends to itself.
    const int64_t base = cache.size();
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(cache.key(static_cast<int>(l), base + i), qkv.row(i) + E, sizeof(float) * E);
      std::memcpy(cache.value(static_cast<int>(l), base + i), qkv.row(i) + 2 * E, sizeof(float) * E);
    }
    cache.quantize_new_rows(static_cast<int>(l), n);
    context.reshape({n, E});
    attend_new_tokens(cache, static_cast<int>(l), {qkv.data(), 3 * E}, n, static_cast<int>(c.n_head), policy, stage,
                      context.data(), E, traffic);
    gemm(n, E, E, {context.data(), E}, {layer.proj_w.data(), E}, x.data(), E, 1.0f);  // x += context * W
    add_bias_rows(x, layer.proj_b);
    layer_norm_rows(x, normed, layer.ln2_g, layer.ln2_b, c.layer_norm_epsilon);
    gemm(n, I, E, {normed.data(), E}, {layer.fc_w.data(), I}, hidden.data(), I);
    for (int64_t r = 0; r < n; ++r) bias_gelu_tanh(hidden.row(r), layer.fc_b.data(), I);
    gemm(n, E, I, {hidden.data(), I}, {layer.fc_proj_w.data(), E}, x.data(), E, 1.0f);
    add_bias_rows(x, layer.fc_proj_b);
  }
  cache.commit(n);

  // Logits only where asked: the LM head is the largest GEMM of a small model.
  const int64_t first = all_logits ? 0 : n - 1, rows = n - first;
  Tensor last({rows, E});
  std::memcpy(last.data(), x.row(first), sizeof(float) * static_cast<size_t>(rows * E));
  layer_norm_rows(last, normed, lnf_g_, lnf_b_, c.layer_norm_epsilon);
  Tensor logits({rows, V});
  gemm(rows, V, E, {normed.data(), E}, {wte_t_.data(), V}, logits.data(), V);
  return logits;
}

}  // namespace sieve
