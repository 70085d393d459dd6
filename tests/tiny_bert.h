#pragma once
// A tiny random BERT checkpoint written to a temp directory, so encoder and policy tests run in
// milliseconds and do not need the downloaded model. Also a naive masked reference forward pass.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "tensor/tensor.h"

namespace sieve::testing {

struct TinyBertShape {
  int layers = 2, hidden = 64, heads = 4, intermediate = 128, vocab = 120, positions = 64, labels = 0;
};

inline std::filesystem::path make_tiny_bert(const std::string& name, TinyBertShape s, unsigned seed = 7) {
  const auto dir = std::filesystem::temp_directory_path() / ("sieve-tiny-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.2f);
  std::map<std::string, Tensor> tensors;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, float offset = 0.0f) {
    Tensor t(shape);
    for (int64_t i = 0; i < t.size(); ++i) t.data()[i] = offset + dist(rng);
    tensors.emplace(n, std::move(t));
  };
  const int64_t H = s.hidden, I = s.intermediate;
  add("embeddings.word_embeddings.weight", {s.vocab, H});
  add("embeddings.position_embeddings.weight", {s.positions, H});
  add("embeddings.token_type_embeddings.weight", {2, H});
  add("embeddings.LayerNorm.weight", {H}, 1.0f);
  add("embeddings.LayerNorm.bias", {H});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    for (const char* part : {"query", "key", "value"}) {
      add(p + "attention.self." + part + ".weight", {H, H});
      add(p + "attention.self." + part + ".bias", {H});
    }
    add(p + "attention.output.dense.weight", {H, H});
    add(p + "attention.output.dense.bias", {H});
    add(p + "attention.output.LayerNorm.weight", {H}, 1.0f);
    add(p + "attention.output.LayerNorm.bias", {H});
    add(p + "intermediate.dense.weight", {I, H});
    add(p + "intermediate.dense.bias", {I});
    add(p + "output.dense.weight", {H, I});
    add(p + "output.dense.bias", {H});
    add(p + "output.LayerNorm.weight", {H}, 1.0f);
    add(p + "output.LayerNorm.bias", {H});
  }
  add("pooler.dense.weight", {H, H});
  add("pooler.dense.bias", {H});
  if (s.labels > 0) {
    add("classifier.weight", {s.labels, H});
    add("classifier.bias", {s.labels});
  }
  std::vector<std::pair<std::string, const Tensor*>> list;
  for (const auto& [n, t] : tensors) list.emplace_back(n, &t);
  write_safetensors(dir / "model.safetensors", list);

  std::ofstream cfg(dir / "config.json");
  cfg << "{\"model_type\": \"bert\", \"architectures\": [\"" << (s.labels ? "BertForSequenceClassification" : "BertModel")
      << "\"], \"vocab_size\": " << s.vocab << ", \"hidden_size\": " << H << ", \"num_hidden_layers\": " << s.layers
      << ", \"num_attention_heads\": " << s.heads << ", \"intermediate_size\": " << I
      << ", \"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-12, \"max_position_embeddings\": " << s.positions
      << ", \"type_vocab_size\": 2, \"pad_token_id\": 0";
  if (s.labels) {
    cfg << ", \"id2label\": {";
    for (int i = 0; i < s.labels; ++i) cfg << (i ? ", " : "") << "\"" << i << "\": \"L" << i << "\"";
    cfg << "}";
  }
  cfg << "}\n";
  std::ofstream vocab(dir / "vocab.txt");
  vocab << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (int i = 5; i < s.vocab; ++i) vocab << "w" << i << "\n";
  return dir;
}

// Naive BERT forward in double precision with masks: at layer l only the tokens in alive[l] are
// attended to (as keys) and only the heads in heads[l] contribute. Rows that a compacting engine
// dropped are still computed here, but nothing reads them: the "masked dense reference".
struct MaskedReference {
  std::map<std::string, Tensor> w;
  TinyBertShape s;

  explicit MaskedReference(const std::filesystem::path& dir, TinyBertShape shape) : s(shape) {
    const auto file = SafetensorsFile::open(dir / "model.safetensors");
    for (const auto& n : file.names()) w.emplace(n, file.load_f32(n));
  }
  const float* p(const std::string& n) const { return w.at(n).data(); }

  static void layer_norm(std::vector<double>& x, const float* g, const float* b) {
    double mean = 0, var = 0;
    for (double v : x) mean += v;
    mean /= static_cast<double>(x.size());
    for (double v : x) var += (v - mean) * (v - mean);
    var /= static_cast<double>(x.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = (x[i] - mean) / std::sqrt(var + 1e-12) * g[i] + b[i];
  }
  static std::vector<double> linear(const std::vector<double>& x, const float* W, const float* b, int out, int in) {
    std::vector<double> y(static_cast<size_t>(out));
    for (int o = 0; o < out; ++o) {
      double acc = b[o];
      for (int i = 0; i < in; ++i) acc += static_cast<double>(W[o * in + i]) * x[static_cast<size_t>(i)];
      y[static_cast<size_t>(o)] = acc;
    }
    return y;
  }

  // Returns the final hidden rows for every original position; layer_inputs (if given) gets the
  // rows entering each layer, [layer][position][hidden], for checking token freezing; probs (if
  // given) the attention probabilities, [layer][head][query position][key position] (0 for keys
  // not alive and heads not computed).
  using Probabilities = std::vector<std::vector<std::vector<std::vector<double>>>>;
  std::vector<std::vector<double>> forward(const std::vector<int32_t>& ids, const std::vector<std::set<int>>& alive,
                                           const std::vector<std::set<int>>& heads,
                                           std::vector<std::vector<std::vector<double>>>* layer_inputs = nullptr,
                                           Probabilities* probs = nullptr) const {
    const int n = static_cast<int>(ids.size()), H = s.hidden, d = s.hidden / s.heads;
    std::vector<std::vector<double>> h(static_cast<size_t>(n), std::vector<double>(static_cast<size_t>(H)));
    for (int t = 0; t < n; ++t) {
      for (int c = 0; c < H; ++c)
        h[t][c] = static_cast<double>(p("embeddings.word_embeddings.weight")[ids[t] * H + c]) +
                  p("embeddings.position_embeddings.weight")[t * H + c] + p("embeddings.token_type_embeddings.weight")[c];
      layer_norm(h[t], p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"));
    }
    for (int l = 0; l < s.layers; ++l) {
      if (layer_inputs) layer_inputs->push_back(h);
      const std::string pre = "encoder.layer." + std::to_string(l) + ".";
      std::vector<std::vector<double>> q(n), k(n), v(n);
      for (int t = 0; t < n; ++t) {
        q[t] = linear(h[t], p(pre + "attention.self.query.weight"), p(pre + "attention.self.query.bias"), H, H);
        k[t] = linear(h[t], p(pre + "attention.self.key.weight"), p(pre + "attention.self.key.bias"), H, H);
        v[t] = linear(h[t], p(pre + "attention.self.value.weight"), p(pre + "attention.self.value.bias"), H, H);
      }
      std::vector<std::vector<double>> next(static_cast<size_t>(n));
      if (probs) probs->emplace_back(s.heads, std::vector<std::vector<double>>(n, std::vector<double>(n, 0.0)));
      for (int i = 0; i < n; ++i) {
        std::vector<double> ctx(static_cast<size_t>(H), 0.0);
        for (int hd : heads[l]) {
          std::vector<double> sc;
          double mx = -1e300, sum = 0;
          for (int j : alive[l]) {
            double dot = 0;
            for (int c = 0; c < d; ++c) dot += q[i][hd * d + c] * k[j][hd * d + c];
            sc.push_back(dot / std::sqrt(static_cast<double>(d)));
            mx = std::max(mx, sc.back());
          }
          for (double& x : sc) sum += (x = std::exp(x - mx));
          size_t idx = 0;
          for (int j : alive[l]) {
            for (int c = 0; c < d; ++c) ctx[hd * d + c] += sc[idx] / sum * v[j][hd * d + c];
            if (probs) probs->back()[hd][i][j] = sc[idx] / sum;
            ++idx;
          }
        }
        auto a = linear(ctx, p(pre + "attention.output.dense.weight"), p(pre + "attention.output.dense.bias"), H, H);
        for (int c = 0; c < H; ++c) a[c] += h[i][c];
        layer_norm(a, p(pre + "attention.output.LayerNorm.weight"), p(pre + "attention.output.LayerNorm.bias"));
        auto f = linear(a, p(pre + "intermediate.dense.weight"), p(pre + "intermediate.dense.bias"), s.intermediate, H);
        for (double& x : f) x = 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
        auto o = linear(f, p(pre + "output.dense.weight"), p(pre + "output.dense.bias"), H, s.intermediate);
        for (int c = 0; c < H; ++c) o[c] += a[c];
        layer_norm(o, p(pre + "output.LayerNorm.weight"), p(pre + "output.LayerNorm.bias"));
        next[i] = std::move(o);
      }
      h = std::move(next);
    }
    return h;
  }
};

}  // namespace sieve::testing
