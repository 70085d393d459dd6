#include "model/exit_heads.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/gemm.h"
#include "kernels/row_kernels.h"
#include "model/safetensors.h"
#include "util/error.h"
#include "util/json_file.h"

namespace sieve {

namespace {

// [a; b]: b's rows after a's (both [r, c], or vectors), for one fused key+value projection.
Tensor stack_rows(const Tensor& a, const Tensor& b) {
  std::vector<int64_t> shape = a.shape();
  shape[0] += b.dim(0);
  Tensor t(shape);
  std::copy(a.data(), a.data() + a.size(), t.data());
  std::copy(b.data(), b.data() + b.size(), t.data() + a.size());
  return t;
}

// Attention of the [CLS] query q [heads * d] over n rows x [n, din], with the key and value
// projections folded into the query side instead of computed for every row:
//   softmax_j(q_h . (Wk_h x_j + bk_h)) = softmax_j((Wk_h^T q_h) . x_j)   (q_h . bk_h is the same for
//   every j and cancels in the softmax), and  sum_j p_j (Wv_h x_j + bv_h) = Wv_h (sum_j p_j x_j) + bv_h.
// The same numbers as projecting K and V for all rows, for 4 n din heads multiply-adds instead of
// 2 n din (2 heads d): this is what keeps an exit classifier cheap next to a layer on long inputs.
// wkv is [din, 2 heads d] (key columns, then value columns), bkv [2 heads d]; returns the MACs done.
double folded_cls_attention(const float* q, const float* x, int64_t n, int64_t din, const Tensor& wkv,
                            const Tensor& bkv, int heads, int64_t d, float* context) {
  const int64_t width = heads * d;
  const float* w = wkv.data();
  const RowKernels& k = row_kernels();
  // (Both folds below go through the vectorized dot / axpy row kernels, along the weight's rows: as
  // scalar loops, the second one across the rows, they were most of an exit's time at batch 1.)
  std::vector<float> folded_query(static_cast<size_t>(din * heads));  // [din, heads]: Wk_h^T q_h
  for (int64_t i = 0; i < din; ++i)
    for (int h = 0; h < heads; ++h)
      folded_query[static_cast<size_t>(i * heads + h)] = k.dot(w + i * 2 * width + h * d, q + h * d, d);
  std::vector<float> scores(static_cast<size_t>(n * heads)), probs(static_cast<size_t>(heads * n));
  gemm(n, heads, din, {x, din}, {folded_query.data(), heads}, scores.data(), heads);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int h = 0; h < heads; ++h) {
    float* p = probs.data() + h * n;
    for (int64_t j = 0; j < n; ++j) p[j] = scores[static_cast<size_t>(j * heads + h)] * scale;
    k.softmax(p, n);
  }
  std::vector<float> mean_rows(static_cast<size_t>(heads * din));  // [heads, din]: sum_j p_hj x_j
  gemm(heads, din, n, {probs.data(), n}, {x, din}, mean_rows.data(), din);
  std::copy(bkv.data() + width, bkv.data() + 2 * width, context);
  for (int h = 0; h < heads; ++h)
    for (int64_t i = 0; i < din; ++i)
      k.axpy(mean_rows[static_cast<size_t>(h * din + i)], w + i * 2 * width + width + h * d, context + h * d, d);
  return 2.0 * din * width + 2.0 * n * din * heads;
}

// Sizes above these are a damaged file, not a classifier.
constexpr int64_t kMaxExitLabels = 1 << 20;
constexpr int64_t kMaxExitWidth = 1 << 20;

// Typed, range-checked fields of exits.json: every error names the file and the field, and no
// value is silently cut to fit (2^40 is refused, not read as 0).
struct ExitsField {
  std::string file;

  [[noreturn]] void fail(const std::string& name, const std::string& problem) const {
    throw Error("bad " + file + ": '" + name + "' " + problem);
  }
  const nlohmann::json& require(const nlohmann::json& object, const char* name) const {
    if (!object.is_object()) fail(name, "must be inside a JSON object");
    const auto it = object.find(name);
    if (it == object.end()) fail(name, "is missing");
    return *it;
  }
  int64_t integer(const nlohmann::json& object, const char* name, int64_t low, int64_t high) const {
    return json_integer(require(object, name), low, high, "bad " + file + ": '" + name + "'");
  }
  std::string string(const nlohmann::json& object, const char* name) const {
    const nlohmann::json& value = require(object, name);
    if (!value.is_string()) fail(name, "must be a string");
    return value.get<std::string>();
  }
  double positive_number(const nlohmann::json& object, const char* name, double fallback) const {
    const auto it = object.find(name);
    if (it == object.end()) return fallback;
    if (!it->is_number() || !(it->get<double>() > 0) || !std::isfinite(it->get<double>()))
      fail(name, "must be a positive number");
    return it->get<double>();
  }
};

}  // namespace

ExitHeads ExitHeads::load(const std::filesystem::path& dir, const ModelConfig& config) {
  const auto json_path = dir / "exits.json";
  if (!std::filesystem::exists(std::filesystem::symlink_status(json_path)))
    throw Error("exit classifiers not found: " + json_path.string() + " (make them with tools/train_exits.py)");
  const nlohmann::json j = read_json_file(json_path, kMaxSmallJsonBytes);
  const ExitsField field{json_path.string()};
  if (!j.is_object() || j.value("format", nlohmann::json()) != "sieve-exits")
    throw Error("bad " + json_path.string() + ": not a sieve-exits file (\"format\": \"sieve-exits\" is missing)");
  ExitHeads e;
  const int64_t H = config.hidden_size;
  e.variant_ = field.string(j, "variant");
  if (e.variant_ != "light" && e.variant_ != "block" && e.variant_ != "fastbert")
    field.fail("variant", "must be light, block or fastbert");
  e.num_labels_ = static_cast<int>(field.integer(j, "num_labels", 2, kMaxExitLabels));
  if (field.integer(j, "hidden_size", 1, kMaxExitWidth) != H) field.fail("hidden_size", "differs from the model's");
  const nlohmann::json& layers = field.require(j, "layers");
  if (!layers.is_array()) field.fail("layers", "must be an array of layer indices");
  // Every exit sits after a layer that has another after it; checked before any weight is read.
  std::vector<int> exit_layers;
  for (const auto& layer : layers) {
    exit_layers.push_back(static_cast<int>(json_integer(layer, 0, config.num_hidden_layers - 2, "bad " + json_path.string() + ": exit layer")));
  }
  const SafetensorsFile file = SafetensorsFile::open(dir / "exits.safetensors");
  e.hidden_ = H;
  e.heads_.resize(static_cast<size_t>(config.num_hidden_layers));
  const int64_t N = e.num_labels_;
  for (const int l : exit_layers) {
    const std::string p = "exit." + std::to_string(l) + ".";
    Head h;
    int64_t C = H;  // width of the row the pooler reads
    if (e.variant_ == "fastbert") {
      Fastbert f;
      const nlohmann::json& fastbert = field.require(j, "fastbert");
      const int64_t D = field.integer(fastbert, "hidden_size", 1, kMaxExitWidth);
      f.heads = static_cast<int>(field.integer(fastbert, "num_attention_heads", 1, D));
      if (D % f.heads != 0) field.fail("fastbert", "num_attention_heads must divide hidden_size");
      f.reduce_w = transposed(file.load_f32(p + "reduce.weight", {D, H}));
      f.reduce_b = file.load_f32(p + "reduce.bias", {D});
      f.wq = transposed(file.load_f32(p + "query.weight", {D, D}));
      f.bq = file.load_f32(p + "query.bias", {D});
      f.wkv = transposed(stack_rows(file.load_f32(p + "key.weight", {D, D}), file.load_f32(p + "value.weight", {D, D})));
      f.bkv = stack_rows(file.load_f32(p + "key.bias", {D}), file.load_f32(p + "value.bias", {D}));
      f.wo = transposed(file.load_f32(p + "output.weight", {D, D}));
      f.bo = file.load_f32(p + "output.bias", {D});
      h.fastbert = std::move(f);
      C = D;
    }
    h.pooler_w = transposed(file.load_f32(p + "pooler.weight", {C, C}));
    h.pooler_b = file.load_f32(p + "pooler.bias", {C});
    h.classifier_w = transposed(file.load_f32(p + "classifier.weight", {N, C}));
    h.classifier_b = file.load_f32(p + "classifier.bias", {N});
    if (e.variant_ == "block") {
      const nlohmann::json& bj = field.require(j, "block");
      Block b;
      b.heads = static_cast<int>(field.integer(bj, "num_attention_heads", 1, H));
      b.eps = static_cast<float>(field.positive_number(bj, "layer_norm_eps", 1e-12));
      const int64_t I = field.integer(bj, "intermediate_size", 1, kMaxExitWidth);
      if (H % b.heads != 0) field.fail("block", "num_attention_heads must divide hidden_size");
      const std::string q = p + "block.";
      b.wq = transposed(file.load_f32(q + "attention.self.query.weight", {H, H}));
      b.bq = file.load_f32(q + "attention.self.query.bias", {H});
      b.wkv = transposed(stack_rows(file.load_f32(q + "attention.self.key.weight", {H, H}),
                                    file.load_f32(q + "attention.self.value.weight", {H, H})));
      b.bkv = stack_rows(file.load_f32(q + "attention.self.key.bias", {H}), file.load_f32(q + "attention.self.value.bias", {H}));
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
  // Q for the [CLS] row only; K and V are folded into it (folded_cls_attention).
  std::vector<float> q(static_cast<size_t>(H)), context(static_cast<size_t>(H));
  gemm(1, H, H, {rows, H}, {b.wq.data(), H}, q.data(), H);
  k.bias_add(q.data(), b.bq.data(), H);
  const double attention_macs = folded_cls_attention(q.data(), rows, n, H, b.wkv, b.bkv, b.heads, d, context.data());
  std::vector<float> attn(static_cast<size_t>(H)), inter(static_cast<size_t>(I)), out(static_cast<size_t>(H));
  gemm(1, H, H, {context.data(), H}, {b.wo.data(), H}, attn.data(), H);
  k.bias_residual_layernorm(attn.data(), b.bo.data(), rows, b.ln1_g.data(), b.ln1_b.data(), b.eps, H);
  gemm(1, I, H, {attn.data(), H}, {b.wi.data(), I}, inter.data(), I);
  k.bias_gelu(inter.data(), b.bi.data(), I);
  gemm(1, H, I, {inter.data(), I}, {b.wo2.data(), H}, out.data(), H);
  k.bias_residual_layernorm(out.data(), b.bo2.data(), attn.data(), b.ln2_g.data(), b.ln2_b.data(), b.eps, H);
  *flops += 2.0 * attention_macs + 2.0 * H * H + 2.0 * H * H + 4.0 * H * I;
  return out;
}

std::vector<float> ExitHeads::fastbert_cls_row(const Fastbert& f, const float* rows, int64_t n, double* flops) const {
  const int64_t H = hidden_, D = f.bq.dim(0), d = D / f.heads;
  const RowKernels& k = row_kernels();
  // tanh(reduce(x)) on every row, Q of the [CLS] row only; K and V are folded into it.
  Tensor reduced({n, D});
  gemm(n, D, H, {rows, H}, {f.reduce_w.data(), D}, reduced.data(), D);
  for (int64_t r = 0; r < n; ++r) k.bias_tanh(reduced.row(r), f.reduce_b.data(), D);
  std::vector<float> q(static_cast<size_t>(D)), context(static_cast<size_t>(D)), out(static_cast<size_t>(D));
  gemm(1, D, D, {reduced.data(), D}, {f.wq.data(), D}, q.data(), D);
  k.bias_add(q.data(), f.bq.data(), D);
  const double attention_macs = folded_cls_attention(q.data(), reduced.data(), n, D, f.wkv, f.bkv, f.heads, d, context.data());
  gemm(1, D, D, {context.data(), D}, {f.wo.data(), D}, out.data(), D);
  k.bias_add(out.data(), f.bo.data(), D);
  *flops += 2.0 * n * H * D + 2.0 * attention_macs + 2.0 * D * D + 2.0 * D * D;
  return out;
}

std::vector<float> ExitHeads::logits(int layer, const float* rows, int64_t n, double* flops) const {
  if (!has_exit_after(layer)) throw Error("no exit classifier after layer " + std::to_string(layer));
  const Head& head = *heads_[static_cast<size_t>(layer)];
  const int64_t N = num_labels_;
  std::vector<float> cls(rows, rows + hidden_);
  if (head.block) cls = block_cls_row(*head.block, rows, n, flops);
  if (head.fastbert) cls = fastbert_cls_row(*head.fastbert, rows, n, flops);
  const int64_t C = static_cast<int64_t>(cls.size());
  std::vector<float> pooled(static_cast<size_t>(C)), out(static_cast<size_t>(N));
  gemm(1, C, C, {cls.data(), C}, {head.pooler_w.data(), C}, pooled.data(), C);
  row_kernels().bias_tanh(pooled.data(), head.pooler_b.data(), C);
  gemm(1, N, C, {pooled.data(), C}, {head.classifier_w.data(), N}, out.data(), N);
  for (int64_t c = 0; c < N; ++c) out[static_cast<size_t>(c)] += head.classifier_b.data()[c];
  *flops += 2.0 * C * C + 2.0 * C * N;
  return out;
}

}  // namespace sieve
