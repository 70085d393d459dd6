#pragma once
// BERT-family encoder (BERT, MiniLM) loaded from a Hugging Face directory, fp32, with a packed
// variable-length batch and one policy hook per layer (see policies/layer_policy.h).
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attention/cta.h"
#include "kernels/gemm.h"
#include "kernels/tile_sparse_gemm.h"
#include "model/model_config.h"
#include "policies/layer_policy.h"
#include "tensor/tensor.h"

namespace sieve {

struct EncoderInput {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;    // empty = all zeros
  std::vector<uint8_t> is_special;  // empty = first and last token ([CLS] ... [SEP])
};

struct SequenceOutput {
  Tensor hidden;                   // [kept tokens, hidden]: the last layer's output rows
  std::vector<int32_t> positions;  // original position of each row
  int exit_layer = 0;              // number of layers run (num_layers unless a policy exited early)
  std::vector<float> exit_logits;  // the exit classifier's logits when a policy exited early
  // Token freezing (ForwardOptions::freeze_pruned_tokens): the sum of the rows pruned along the way,
  // each as it was when pruned (its last complete layer output), and how many there were. Mean
  // pooling adds them to the surviving rows, so a pruned token still counts in the embedding.
  std::vector<float> frozen_sum;
  int64_t frozen_count = 0;
};

// What one input computed in one layer: the shapes an accelerator model replays (`sieve sim`).
struct LayerWork {
  int32_t tokens = 0;     // rows in this layer's attention: queries, keys and values alike
  int32_t heads = 0;      // heads computed
  int32_t cta_heads = 0;  // of which through CTA
  double cta_k0 = 0, cta_k1 = 0, cta_k2 = 0;  // sums over the CTA heads of their cluster counts
};

// Counted from the shapes actually computed: FLOPs = 2 x multiply-adds of every matrix product
// (embeddings and element-wise work are not counted; they are < 1% of the total).
struct ForwardStats {
  double flops = 0.0;
  std::vector<int64_t> tokens_per_layer;  // rows entering each layer's FFN, summed over the batch
  std::vector<int64_t> heads_per_layer;   // heads computed in each layer, summed over the batch
  double attention_seconds = 0.0;         // wall-clock of the attention blocks (QKV .. Add & LayerNorm)
  double gemm_seconds = 0.0;              // wall-clock of the layers' four weight GEMMs (with epilogues)
  CtaStats cta;                           // filled when a policy selects CTA for some layer
  // [input][layer] with ForwardOptions::record_work (layers an input never reached stay zero);
  // add() appends, so a run over batches keeps its inputs in order.
  std::vector<std::vector<LayerWork>> work;
  void add(const ForwardStats& other);
};

// Arithmetic of the layers' four weight GEMMs (QKV, attention output, FFN in and out). fp32 is
// the default and what the reference parity tests pin; bf16 rounds weights and activations to
// bfloat16 with fp32 accumulation (gemm_bf16); int8 quantizes weights per output channel and
// activations per token, with exact int32 sums (gemm_int8). Everything else (attention, LayerNorm,
// policies, CTA's projections, the exits) stays fp32 in every precision.
enum class Precision { Fp32, Bf16, Int8 };
Precision parse_precision(const std::string& name);  // "fp32" | "bf16" | "int8"; throws Error otherwise
const char* precision_name(Precision precision);     // the name parse_precision takes

struct ForwardOptions {
  LayerPolicy* policy = nullptr;  // null = dense
  // This call's GEMM precision instead of set_precision()'s, so one run can time fp32, bf16 and
  // int8 settings side by side (sieve tune). bf16 and int8 need set_precision() to that precision
  // once, for the weight copies.
  std::optional<Precision> precision = std::nullopt;
  // Keep what pruned tokens were (SequenceOutput::frozen_sum) for pooling; off, a pruned token
  // simply leaves and pooling sees only the survivors.
  bool freeze_pruned_tokens = false;
  // Fill ForwardStats::work (per input and layer: tokens, heads, CTA clusters).
  bool record_work = false;
  // The caller reads only each sequence's [CLS] row after the last layer (classify: pooler and
  // classifier). The last layer's FFN, which is row-wise, then runs on that row alone, and the
  // outputs hold one row per sequence. The [CLS] row itself is unchanged. Off for embeddings,
  // span logits and explain, which read every row.
  bool cls_only_output = false;
};

class BertEncoder {
 public:
  // Loads config.json and model.safetensors, validating names and shapes; throws sieve::Error.
  static BertEncoder load(const std::filesystem::path& model_dir);

  const ModelConfig& config() const { return config_; }
  // Switches the layers' GEMMs to `precision` (bf16 or int8 copies of the weights are made once
  // and kept; the fp32 ones stay, for CTA and the exits). Throws Error if the CPU cannot run it.
  void set_precision(Precision precision);
  Precision precision() const { return precision_; }
  // E.T.'s tile sparsity (tools/train_tile_pruning.py): fp32 GEMMs on a layer weight with at least
  // `min_sparsity` of its tiles (tile_k inputs x 16 outputs) all zero read a copy that keeps only
  // the non-zero tiles (kernels/tile_sparse_gemm.h); other weights stay dense. load() applies
  // kDefaultTileSparsity, below which the sparse kernel is slower than dense sgemm (measured:
  // bench/gemm/tile_sparse_matmul.cpp); a value above 1 turns it off. bf16 GEMMs read the copy's
  // bf16 tiles (even tile_k); int8 stays dense. tile_k 0 picks each weight's depth (best_tile_k).
  static constexpr double kDefaultTileSparsity = 0.5;
  void set_tile_sparse(double min_sparsity, int64_t tile_k = 0);
  // How many of the layers' weights read a tile-sparse copy, and the fraction of their tiles skipped.
  struct TileSparseSummary {
    int sparse_weights = 0, weights = 0;
    double skipped_tiles = 0.0;  // fraction of the sparse weights' area in skipped tiles
    int64_t finest_tile_k = 0, deepest_tile_k = 0;  // tile depths chosen (0: no sparse weight)
  };
  TileSparseSummary tile_sparse_summary() const;
  // Most rows (tokens) one pass through the layers takes: forward() runs a longer batch in passes
  // of whole sequences. One pass of 32 x 213 tokens held ~100 MB of activations, more than the
  // workspace keeps between passes (so they were page-faulted in every time) and the caches hold.
  // The default keeps a pass at kPassValues = rows x hidden (2,048 rows for MiniLM-L6, 1,024 for
  // BERT-base): at batch 32 x 213-384 tokens, 2 threads, one pass of the whole batch was
  // 1.07-1.13x slower in fp32, 1.13-1.28x in bf16, 1.37-1.42x in int8 (MiniLM), 1.2x in int8
  // (BERT-base-sized); 1-4k rows were within noise of each other for MiniLM.
  // SIEVE_ROWS_PER_PASS overrides the default at load, for measuring.
  static constexpr int64_t kPassValues = int64_t{2048} * 384;
  void set_rows_per_pass(int64_t rows);
  int64_t rows_per_pass() const { return rows_per_pass_; }
  bool has_pooler() const { return !pooler_w_.empty(); }
  bool has_classifier() const { return !classifier_w_.empty(); }
  int num_labels() const { return has_classifier() ? static_cast<int>(classifier_w_.dim(1)) : 0; }
  // An extractive question-answering head (BertForQuestionAnswering's qa_outputs: [2, H]).
  bool has_qa_head() const { return !qa_w_.empty(); }

  std::vector<SequenceOutput> forward(std::span<const EncoderInput> inputs, const ForwardOptions& options = {},
                                      ForwardStats* stats = nullptr) const;

  // Pooling over what forward() returned. mean: average of the rows (all tokens when nothing was
  // pruned, as sentence-transformers does), frozen rows included when there are any; cls: row of
  // position 0.
  static std::vector<float> mean_pool(const SequenceOutput& out);
  static std::vector<float> cls_vector(const SequenceOutput& out);
  // BERT pooler: tanh(W * h_cls + b). Requires has_pooler().
  std::vector<float> pooler_output(const SequenceOutput& out) const;
  // Sequence-classification logits: the early exit's if the sequence exited, else
  // classifier(pooler_output). Requires has_classifier().
  std::vector<float> classify(const SequenceOutput& out) const;
  // Question answering: start and end logits of every position of an input of `length` tokens,
  // qa_outputs(h) per surviving row. A position with no row (pruned or skimmed) gets -infinity,
  // so no answer can start or end there. Requires has_qa_head().
  struct SpanLogits {
    std::vector<float> start, end;
  };
  SpanLogits span_logits(const SequenceOutput& out, size_t length) const;

 private:
  // A weight's other copies: for --precision bf16 and int8, each made by the first set_precision()
  // to it, and the tile-sparse one (set_tile_sparse) that fp32 GEMMs read instead of the dense one.
  struct WeightCopies {
    std::shared_ptr<const PackedWeights> fp32_packed;  // the fp32 weight in oneDNN's layout (gemm.h)
    Bf16Matrix bf16;
    Int8Matrix int8;
    TileSparseMatrix tile_sparse;
    bool has_tile_sparse() const { return !tile_sparse.block_start.empty(); }
    // Whether the copy `precision` reads is made (fp32 needs none).
    bool has(Precision precision) const {
      return precision == Precision::Bf16 ? !bf16.bits.empty() : precision != Precision::Int8 || !int8.codes.empty();
    }
  };
  struct Layer {
    // Weights are stored transposed ([in, out]) for gemm(). qkv_w is [H, 3H] with its columns
    // grouped per head: (q_h, k_h, v_h) for h = 0..heads-1, so a run of live heads is one column block.
    Tensor qkv_w;
    Tensor qkv_b;  // [3H], same grouping
    Tensor attn_out_w, attn_out_b, attn_ln_g, attn_ln_b;
    Tensor ffn_in_w, ffn_in_b, ffn_out_w, ffn_out_b, ffn_ln_g, ffn_ln_b;
    WeightCopies qkv_copies, attn_out_copies, ffn_in_copies, ffn_out_copies;
    // CTA with one clustering per layer (share=layer) projects the query centroids on the Q
    // columns only and the key/value centroids on the K|V columns only, each as one GEMM for all
    // heads; these are qkv_w's columns regrouped that way, built on the first such call.
    struct CtaSplitWeights {
      Tensor q_w, q_b;    // [H, H], [H]: head h's Q columns at h d
      Tensor kv_w, kv_b;  // [H, 2H], [2H]: head h's K columns at 2 h d, its V columns right after
      std::once_flag built;
    };
    std::unique_ptr<CtaSplitWeights> cta_split = std::make_unique<CtaSplitWeights>();
    // The four weight GEMMs' (weight, copies) pairs, for code that treats them alike.
    std::array<std::pair<const Tensor*, WeightCopies*>, 4> weights() {
      return {{{&qkv_w, &qkv_copies}, {&attn_out_w, &attn_out_copies}, {&ffn_in_w, &ffn_in_copies}, {&ffn_out_w, &ffn_out_copies}}};
    }
  };
  // C = epilogue(x W (+ C when accumulate)), W one of the layer's transposed weights (its fp32 and
  // low-precision copies given together) or a block of its columns starting at col0 / of its rows
  // starting at row0. int8 applies the epilogue (bias, GELU) while dequantizing; fp32 and bf16 in
  // a pass of their own.
  void layer_gemm(Precision precision, int64_t m, int64_t n, int64_t k, MatrixRef x, const Tensor& w,
                  const WeightCopies& copies, int64_t row0, int64_t col0, float* c, int64_t ldc, float beta,
                  ForwardStats& stats, Epilogue epilogue = {}) const;

  void embed(std::span<const EncoderInput> inputs, const std::vector<PackedSequence>& seqs, Tensor& x) const;
  // cta: Compressed Token Attention's hashes for this layer, or null for dense attention.
  void attention_block(Precision precision, const Layer& layer, int layer_index, const CtaConfig::Layer* cta,
                       const std::vector<PackedSequence>& seqs, const Tensor& x,
                       Tensor& qkv, Tensor& context, Tensor& out, std::vector<std::vector<float>>* received,
                       std::vector<std::vector<float>>* head_magnitude, std::vector<DiagonalBlocks>* diagonal,
                       int64_t diagonal_size, ForwardStats& stats) const;
  const Layer::CtaSplitWeights& cta_split_weights(const Layer& layer) const;
  void ffn_block(Precision precision, const Layer& layer, const Tensor& x, Tensor& intermediate, Tensor& out, ForwardStats& stats) const;

  ModelConfig config_;
  int64_t head_dim_ = 0;
  Precision precision_ = Precision::Fp32;
  int64_t rows_per_pass_ = 0;  // set by load()
  Tensor word_emb_, pos_emb_, type_emb_, emb_ln_g_, emb_ln_b_;
  std::vector<Layer> layers_;
  Tensor pooler_w_, pooler_b_;          // pooler_w_ is [H, H] transposed
  Tensor classifier_w_, classifier_b_;  // classifier_w_ is [H, labels]
  Tensor qa_w_, qa_b_;                  // qa_w_ is [H, 2]: start, end
};

}  // namespace sieve
