#include "model/exit_heads.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/gemm.h"
#include "kernels/row_kernels.h"
#include "model/safetensors.h"
#include "util/error.h"

namespace sieve {

ExitHeads ExitHeads::load(const std::filesystem::path& dir, const ModelConfig& config) {
  const auto json_path = dir / "exits.json";
  std::ifstream in(json_path);
  if (!in) throw Error("exit classifiers not found: " + json_path.string() + " (make them with tools/train_exits.py)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
    if (j.value("format", "") != "sieve-exits") throw Error("not a sieve-exits file");
  } catch (const std::exception& e) {
    throw Error("cannot read " + json_path.string() + ": " + e.what());
  }
  ExitHeads e;
  const int64_t H = config.hidden_size;
  try {
    e.variant_ = j.at("variant").get<std::string>();
    e.num_labels_ = j.at("num_labels").get<int>();
    if (j.at("hidden_size").get<int64_t>() != H) throw Error("hidden_size differs from the model's");
    if (e.variant_ != "light" && e.variant_ != "block") throw Error("variant must be light or block");
    if (e.num_labels_ < 2) throw Error("num_labels must be at least 2");
  } catch (const nlohmann::json::exception& ex) {
    throw Error("bad " + json_path.string() + ": " + ex.what());
  } catch (const Error& ex) {
    throw Error("bad " + json_path.string() + ": " + ex.what());
  }
  const SafetensorsFile file = SafetensorsFile::open(dir / "exits.safetensors");
  e.hidden_ = H;
  e.heads_.resize(static_cast<size_t>(config.num_hidden_layers));
  const int64_t N = e.num_labels_;
  for (const auto& layer_json : j.at("layers")) {
    const int l = layer_json.get<int>();
    if (l < 0 || l >= config.num_hidden_layers - 1)
      throw Error("bad " + json_path.string() + ": exit layer " + std::to_string(l) + " out of range");
    const std::string p = "exit." + std::to_string(l) + ".";
    Head h;
    h.pooler_w = transposed(file.load_f32(p + "pooler.weight", {H, H}));
    h.pooler_b = file.load_f32(p + "pooler.bias", {H});
    h.classifier_w = transposed(file.load_f32(p + "classifier.weight", {N, H}));
    h.classifier_b = file.load_f32(p + "classifier.bias", {N});
    if (e.variant_ == "block") {
      const auto& bj = j.at("block");
      Block b;
      b.heads = bj.at("num_attention_heads").get<int>();
      b.eps = bj.value("layer_norm_eps", 1e-12f);
      const int64_t I = bj.at("intermediate_size").get<int64_t>();
      if (b.heads <= 0 || H % b.heads != 0) throw Error("bad " + json_path.string() + ": block heads must divide hidden_size");
      const std::string q = p + "block.";
      b.wq = transposed(file.load_f32(q + "attention.self.query.weight", {H, H}));
      b.bq = file.load_f32(q + "attention.self.query.bias", {H});
      const Tensor wk = file.load_f32(q + "attention.self.key.weight", {H, H});
      const Tensor wv = file.load_f32(q + "attention.self.value.weight", {H, H});
      Tensor wkv({2 * H, H}), bkv({2 * H});
      std::copy(wk.data(), wk.data() + H * H, wkv.data());
      std::copy(wv.data(), wv.data() + H * H, wkv.data() + H * H);
      const Tensor bk = file.load_f32(q + "attention.self.key.bias", {H});
      const Tensor bv = file.load_f32(q + "attention.self.value.bias", {H});
      std::copy(bk.data(), bk.data() + H, bkv.data());
      std::copy(bv.data(), bv.data() + H, bkv.data() + H);
      b.wkv = transposed(wkv);
      b.bkv = std::move(bkv);
      b.wo = transposed(file.load_f32(q + "attention.output.dense.weight", {H, H}));
      b.bo = file.load_f32(q + "attention.output.dense.bias", {H});
      b.ln1_g = file.load_f32(q + "attention.output.LayerNorm.weight", {H});
      b.ln1_b = file.load_f32(q + "attention.output.LayerNorm.bias", {H});
      b.wi = transposed(file.load_f32(q + "intermediate.dense.weight", {I, H}));
      b.bi = file.load_f32(q + "intermediate.dense.bias", {I});
      b.wo2 = transposed(file.load_f32(q + "output.dense.weight", {H, I}));
      b.bo2 = file.load_f32(q + "output.dense.bias", {H});
      b.ln2_g = file.load_f32(q + "output.LayerNorm.weight", {H});
      b.ln2_b = file.load_f32(q + "output.LayerNorm.bias", {H});
      h.block = std::move(b);
    }
    e.heads_[static_cast<size_t>(l)] = std::move(h);
  }
  return e;
}

bool ExitHeads::has_exit_after(int layer) const {
  return layer >= 0 && layer < static_cast<int>(heads_.size()) && heads_[static_cast<size_t>(layer)].has_value();
}

std::vector<float> ExitHeads::block_cls_row(const Block& b, const float* rows, int64_t n, double* flops) const {
  const int64_t H = hidden_, d = H / b.heads, I = b.bi.dim(0);
  const RowKernels& k = row_kernels();
  // K and V for every row (the [CLS] query attends to all of them), Q for the [CLS] row only.
  Tensor kv({n, 2 * H});
  gemm(n, 2 * H, H, {rows, H}, {b.wkv.data(), 2 * H}, kv.data(), 2 * H);
  for (int64_t r = 0; r < n; ++r) k.bias_add(kv.row(r), b.bkv.data(), 2 * H);
  std::vector<float> q(static_cast<size_t>(H)), context(static_cast<size_t>(H), 0.0f), scores(static_cast<size_t>(n));
  gemm(1, H, H, {rows, H}, {b.wq.data(), H}, q.data(), H);
  k.bias_add(q.data(), b.bq.data(), H);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int h = 0; h < b.heads; ++h) {
    for (int64_t j = 0; j < n; ++j) {
      float dot = 0.0f;
      for (int64_t c = 0; c < d; ++c) dot += q[static_cast<size_t>(h * d + c)] * kv.row(j)[h * d + c];
      scores[static_cast<size_t>(j)] = dot * scale;
    }
    k.softmax(scores.data(), n);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < d; ++c) context[static_cast<size_t>(h * d + c)] += scores[static_cast<size_t>(j)] * kv.row(j)[H + h * d + c];
  }
  std::vector<float> attn(static_cast<size_t>(H)), inter(static_cast<size_t>(I)), out(static_cast<size_t>(H));
  gemm(1, H, H, {context.data(), H}, {b.wo.data(), H}, attn.data(), H);
  k.bias_residual_layernorm(attn.data(), b.bo.data(), rows, b.ln1_g.data(), b.ln1_b.data(), b.eps, H);
  gemm(1, I, H, {attn.data(), H}, {b.wi.data(), I}, inter.data(), I);
  k.bias_gelu(inter.data(), b.bi.data(), I);
  gemm(1, H, I, {inter.data(), I}, {b.wo2.data(), H}, out.data(), H);
  k.bias_residual_layernorm(out.data(), b.bo2.data(), attn.data(), b.ln2_g.data(), b.ln2_b.data(), b.eps, H);
  *flops += 2.0 * n * H * 2 * H + 2.0 * H * H + 4.0 * n * H + 2.0 * H * H + 4.0 * H * I;
  return out;
}

std::vector<float> ExitHeads::logits(int layer, const float* rows, int64_t n, double* flops) const {
  if (!has_exit_after(layer)) throw Error("no exit classifier after layer " + std::to_string(layer));
  const Head& head = *heads_[static_cast<size_t>(layer)];
  const int64_t H = hidden_, N = num_labels_;
  std::vector<float> cls(rows, rows + H);
  if (head.block) cls = block_cls_row(*head.block, rows, n, flops);
  std::vector<float> pooled(static_cast<size_t>(H)), out(static_cast<size_t>(N));
  gemm(1, H, H, {cls.data(), H}, {head.pooler_w.data(), H}, pooled.data(), H);
  for (int64_t c = 0; c < H; ++c) pooled[static_cast<size_t>(c)] = std::tanh(pooled[static_cast<size_t>(c)] + head.pooler_b.data()[c]);
  gemm(1, N, H, {pooled.data(), H}, {head.classifier_w.data(), N}, out.data(), N);
  for (int64_t c = 0; c < N; ++c) out[static_cast<size_t>(c)] += head.classifier_b.data()[c];
  *flops += 2.0 * H * H + 2.0 * H * N;
  return out;
}

}  // namespace sieve
