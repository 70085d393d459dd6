#pragma once
// Early-exit classifiers (FastBERT / Magic Pyramid), one after each of the first L-1 layers, as
// tools/train_exits.py exports them into <model>/exits/:
//   exits.json         {"format": "sieve-exits", "version": 1, "variant": "light"|"block", "num_labels": N,
//                       "hidden_size": H, "layers": [0, ...], "block": {"num_attention_heads", "intermediate_size",
//                       "layer_norm_eps"}}
//   exits.safetensors  exit.{l}.pooler.{weight,bias}, exit.{l}.classifier.{weight,bias}
//                      and for "block" exit.{l}.block.<BertLayer parameter names>
//                      and for "fastbert" exit.{l}.{reduce,query,key,value,output}.{weight,bias}, with
//                      "fastbert": {"hidden_size": D, "num_attention_heads": h} in exits.json
// light = pooler + classifier on the [CLS] row; block = one Transformer layer, then pooler + classifier;
// fastbert = FastBERT's student classifier: tanh(Linear H->D) on every row, h-head self-attention in D
// dimensions (output projection, no residual or LayerNorm), [CLS] row, tanh(Linear D->D), Linear D->N.
// Only the [CLS] row of an exit's attention output is used, so Q, attention and the FFN run for the
// [CLS] row alone, and the key/value projections are folded into the query (exit_heads.cpp): the
// same result at a fraction of the cost; the per-row work left is fastbert's reduce projection.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "tensor/tensor.h"

namespace sieve {

class ExitHeads {
 public:
  // Reads dir/exits.json and dir/exits.safetensors, validating shapes against `config`.
  static ExitHeads load(const std::filesystem::path& dir, const ModelConfig& config);

  const std::string& variant() const { return variant_; }
  int num_labels() const { return num_labels_; }
  bool has_exit_after(int layer) const;
  // Logits of the exit after `layer` for one sequence's rows [n, H] (row 0 is [CLS]). Adds the FLOPs
  // spent (2 x multiply-adds, as everywhere) to *flops.
  std::vector<float> logits(int layer, const float* rows, int64_t n, double* flops) const;

 private:
  struct Block {
    Tensor wq, bq;    // wq [H, H] transposed
    Tensor wkv, bkv;  // [H, 2H] transposed: key columns, then value columns
    Tensor wo, bo, ln1_g, ln1_b;
    Tensor wi, bi, wo2, bo2, ln2_g, ln2_b;
    int heads = 0;
    float eps = 1e-12f;
  };
  struct Fastbert {
    Tensor reduce_w, reduce_b;  // reduce_w [H, D] transposed
    Tensor wq, bq;              // [D, D] transposed
    Tensor wkv, bkv;            // [D, 2D] transposed: key columns, then value columns
    Tensor wo, bo;              // [D, D] transposed
    int heads = 0;
  };
  struct Head {
    std::optional<Block> block;
    std::optional<Fastbert> fastbert;
    Tensor pooler_w, pooler_b;          // pooler_w [C, C] transposed; C = H, or D for fastbert
    Tensor classifier_w, classifier_b;  // classifier_w [C, N] transposed
  };
  std::vector<float> block_cls_row(const Block& b, const float* rows, int64_t n, double* flops) const;
  std::vector<float> fastbert_cls_row(const Fastbert& f, const float* rows, int64_t n, double* flops) const;

  std::string variant_;
  int num_labels_ = 0;
  int64_t hidden_ = 0;
  std::vector<std::optional<Head>> heads_;  // [layer]
};

}  // namespace sieve
