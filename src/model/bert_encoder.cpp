#include "model/bert_encoder.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

#include "attention/fused_attention.h"
#include "kernels/gemm.h"
#include "kernels/row_kernels.h"
#include "model/safetensors.h"
#include "util/error.h"

namespace sieve {

namespace {

// Row loops are only worth threading when there is enough work per row batch.
constexpr int64_t kParallelMinElements = 1 << 14;

template <typename RowFn>
void for_each_row(int64_t rows, int64_t cols, RowFn&& fn) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMinElements)
  for (int64_t r = 0; r < rows; ++r) fn(r);
}

// Maximal runs of consecutive head indices: one GEMM per run instead of one per head, because the
// rows (QKV) or columns (output projection) of consecutive heads are contiguous in the weights.
std::vector<std::pair<int32_t, int32_t>> head_runs(const std::vector<int32_t>& heads) {
  std::vector<std::pair<int32_t, int32_t>> runs;
  for (int32_t h : heads) {
    if (!runs.empty() && runs.back().second == h) {
      ++runs.back().second;
    } else {
      runs.emplace_back(h, h + 1);
    }
  }
  return runs;
}

// Sequences next to each other that compute the same heads share one GEMM over their rows.
template <typename GroupFn>
void for_each_head_group(const std::vector<PackedSequence>& seqs, GroupFn&& fn) {
  size_t begin = 0;
  while (begin < seqs.size()) {
    size_t end = begin + 1;
    while (end < seqs.size() && seqs[end].heads == seqs[begin].heads) ++end;
    const int64_t row0 = seqs[begin].offset;
    const int64_t rows = seqs[end - 1].offset + seqs[end - 1].length() - row0;
    fn(seqs[begin].heads, row0, rows);
    begin = end;
  }
}

class WeightReader {
 public:
  WeightReader(const SafetensorsFile& file, std::string prefix) : file_(file), prefix_(std::move(prefix)) {}

  Tensor get(const std::string& name, const std::vector<int64_t>& shape) const {
    return file_.load_f32(prefix_ + name, shape);
  }
  // LayerNorm parameters are "weight"/"bias" in current checkpoints, "gamma"/"beta" in old ones.
  std::pair<Tensor, Tensor> layer_norm(const std::string& name, int64_t hidden) const {
    if (file_.contains(prefix_ + name + ".gamma"))
      return {get(name + ".gamma", {hidden}), get(name + ".beta", {hidden})};
    return {get(name + ".weight", {hidden}), get(name + ".bias", {hidden})};
  }
  bool contains(const std::string& name) const { return file_.contains(prefix_ + name); }

 private:
  const SafetensorsFile& file_;
  std::string prefix_;
};

}  // namespace

void BertEncoder::set_rows_per_pass(int64_t rows) {
  if (rows < 1) throw Error("rows per pass must be at least 1, got " + std::to_string(rows));
  rows_per_pass_ = rows;
}

void ForwardStats::add(const ForwardStats& other) {
  flops += other.flops;
  attention_seconds += other.attention_seconds;
  gemm_seconds += other.gemm_seconds;
  cta.add(other.cta);
  work.insert(work.end(), other.work.begin(), other.work.end());
  if (tokens_per_layer.size() < other.tokens_per_layer.size()) {
    tokens_per_layer.resize(other.tokens_per_layer.size());
    heads_per_layer.resize(other.heads_per_layer.size());
  }
  for (size_t i = 0; i < other.tokens_per_layer.size(); ++i) {
    tokens_per_layer[i] += other.tokens_per_layer[i];
    heads_per_layer[i] += other.heads_per_layer[i];
  }
}

BertEncoder BertEncoder::load(const std::filesystem::path& model_dir) {
  if (!std::filesystem::is_directory(model_dir))
    throw Error("model directory not found: " + model_dir.string());
  BertEncoder enc;
  enc.config_ = ModelConfig::load(model_dir / "config.json");
  enc.rows_per_pass_ = std::max<int64_t>(64, kPassValues / std::max<int64_t>(1, enc.config_.hidden_size));
  if (const char* env = std::getenv("SIEVE_ROWS_PER_PASS"); env && *env) {
    char* end = nullptr;
    const long long rows = std::strtoll(env, &end, 10);
    if (*end != '\0' || rows < 1) throw Error("SIEVE_ROWS_PER_PASS must be a positive integer");
    enc.rows_per_pass_ = rows;
  }
  const ModelConfig& c = enc.config_;
  if (c.model_type != "bert")
    throw Error("unsupported model_type '" + c.model_type + "' in " + (model_dir / "config.json").string() +
                " (supported: bert)");
  const auto weights_path = model_dir / "model.safetensors";
  if (!std::filesystem::exists(weights_path))
    throw Error("model.safetensors not found in " + model_dir.string() +
                " (convert a pytorch_model.bin with transformers' save_pretrained(safe_serialization=True))");
  const SafetensorsFile file = SafetensorsFile::open(weights_path);

  // Bare encoders (BertModel) have no prefix; task models (BertForSequenceClassification) use "bert.".
  std::string prefix;
  if (file.contains("bert.embeddings.word_embeddings.weight")) prefix = "bert.";
  else if (!file.contains("embeddings.word_embeddings.weight"))
    throw Error("missing tensor embeddings.word_embeddings.weight in " + weights_path.string() +
                " (is this a BERT checkpoint?)");
  const WeightReader w(file, prefix);

  const int64_t H = c.hidden_size, I = c.intermediate_size, heads = c.num_attention_heads;
  enc.head_dim_ = H / heads;
  enc.word_emb_ = w.get("embeddings.word_embeddings.weight", {c.vocab_size, H});
  enc.pos_emb_ = w.get("embeddings.position_embeddings.weight", {c.max_position_embeddings, H});
  enc.type_emb_ = w.get("embeddings.token_type_embeddings.weight", {c.type_vocab_size, H});
  std::tie(enc.emb_ln_g_, enc.emb_ln_b_) = w.layer_norm("embeddings.LayerNorm", H);

  const int64_t d = enc.head_dim_;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    Layer layer;
    Tensor qkv_w({3 * H, H});
    layer.qkv_b = Tensor({3 * H});
    const char* parts[3] = {"query", "key", "value"};
    for (int part = 0; part < 3; ++part) {
      const Tensor pw = w.get(p + "attention.self." + parts[part] + ".weight", {H, H});
      const Tensor pb = w.get(p + "attention.self." + parts[part] + ".bias", {H});
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t dst = (h * 3 + part) * d;
        std::memcpy(qkv_w.row(dst), pw.row(h * d), sizeof(float) * d * H);
        std::memcpy(layer.qkv_b.data() + dst, pb.data() + h * d, sizeof(float) * d);
      }
    }
    layer.qkv_w = transposed(qkv_w);
    layer.attn_out_w = transposed(w.get(p + "attention.output.dense.weight", {H, H}));
    layer.attn_out_b = w.get(p + "attention.output.dense.bias", {H});
    std::tie(layer.attn_ln_g, layer.attn_ln_b) = w.layer_norm(p + "attention.output.LayerNorm", H);
    layer.ffn_in_w = transposed(w.get(p + "intermediate.dense.weight", {I, H}));
    layer.ffn_in_b = w.get(p + "intermediate.dense.bias", {I});
    layer.ffn_out_w = transposed(w.get(p + "output.dense.weight", {H, I}));
    layer.ffn_out_b = w.get(p + "output.dense.bias", {H});
    std::tie(layer.ffn_ln_g, layer.ffn_ln_b) = w.layer_norm(p + "output.LayerNorm", H);
    for (auto [weight, copies] : layer.weights()) copies->fp32_packed = pack_fp32(*weight);
    enc.layers_.push_back(std::move(layer));
  }
  if (w.contains("pooler.dense.weight")) {
    enc.pooler_w_ = transposed(w.get("pooler.dense.weight", {H, H}));
    enc.pooler_b_ = w.get("pooler.dense.bias", {H});
  }
  // The classification head sits outside the "bert." prefix.
  if (file.contains("classifier.weight")) {
    const std::vector<int64_t>& shape = file.info("classifier.weight").shape;
    if (shape.size() != 2 || shape[0] < 1)
      throw Error("tensor 'classifier.weight' in " + weights_path.string() + " must be a [labels, " + std::to_string(H) +
                  "] matrix");
    const int64_t labels = shape[0];
    enc.classifier_w_ = transposed(file.load_f32("classifier.weight", {labels, H}));
    enc.classifier_b_ = file.load_f32("classifier.bias", {labels});
    if (!enc.has_pooler()) throw Error("checkpoint has a classifier but no pooler: " + weights_path.string());
  }
  if (file.contains("qa_outputs.weight")) {  // BertForQuestionAnswering, also outside the prefix
    enc.qa_w_ = transposed(file.load_f32("qa_outputs.weight", {2, H}));
    enc.qa_b_ = file.load_f32("qa_outputs.bias", {2});
  }
  if (c.hidden_act != Activation::GeluErf)
    throw Error("unsupported hidden_act in " + (model_dir / "config.json").string() + " (supported for BERT: gelu)");
  enc.set_tile_sparse(kDefaultTileSparsity);  // a dense checkpoint has no zero tiles: nothing changes
  return enc;
}

void BertEncoder::embed(std::span<const EncoderInput> inputs, const std::vector<PackedSequence>& seqs,
                        Tensor& x) const {
  const int64_t H = config_.hidden_size;
  const RowKernels& k = row_kernels();
  for (const PackedSequence& s : seqs) {
    const EncoderInput& in = inputs[static_cast<size_t>(s.input_index)];
    for_each_row(s.length(), H, [&](int64_t i) {
      const int32_t type = in.type_ids.empty() ? 0 : in.type_ids[static_cast<size_t>(i)];
      float* row = x.row(s.offset + i);
      const float* word = word_emb_.row(in.ids[static_cast<size_t>(i)]);
      const float* pos = pos_emb_.row(i);
      const float* typ = type_emb_.row(type);
      for (int64_t c = 0; c < H; ++c) row[c] = word[c] + pos[c] + typ[c];
      k.bias_residual_layernorm(row, nullptr, nullptr, emb_ln_g_.data(), emb_ln_b_.data(),
                                static_cast<float>(config_.layer_norm_eps), H);
    });
  }
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::Fp32;
  if (name == "bf16") return Precision::Bf16;
  if (name == "int8") return Precision::Int8;
  throw Error("unknown precision '" + name + "' (fp32, bf16 or int8)");
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::Bf16: return "bf16";
    case Precision::Int8: return "int8";
    default: return "fp32";
  }
}

void BertEncoder::set_precision(Precision precision) {
  if (precision == Precision::Bf16 && !bf16_gemm_available())
    throw Error("this CPU has no bf16 matrix multiply in oneDNN (use --precision fp32)");
  if (precision == Precision::Int8 && !int8_gemm_available())
    throw Error("this CPU has no exact int8 matrix multiply (needs AVX-512 VNNI; use --precision fp32 or bf16)");
  for (Layer& layer : layers_) {
    for (auto [w, copies] : layer.weights()) {
      if (precision == Precision::Bf16) add_bf16_tiles(copies->tile_sparse);  // (no sparse copy: nothing)
      if (copies->has(precision)) continue;
      if (precision == Precision::Bf16) copies->bf16 = to_bf16(*w);
      if (precision == Precision::Int8) copies->int8 = to_int8(*w, /*amx_copy=*/copies == &layer.ffn_in_copies);
    }
  }
  precision_ = precision;
}

void BertEncoder::set_tile_sparse(double min_sparsity, int64_t tile_k) {
  for (Layer& layer : layers_) {
    for (auto [w, copies] : layer.weights()) {
      copies->tile_sparse = {};
      if (min_sparsity > 1.0) continue;
      // best_tile_k already left out the depths below min_sparsity; a fixed depth is checked here.
      const int64_t depth = tile_k == 0                                  ? best_tile_k(*w, min_sparsity)
                            : tile_sparsity(*w, tile_k) >= min_sparsity ? tile_k
                                                                         : 0;
      if (depth > 0) copies->tile_sparse = to_tile_sparse(*w, depth);
      if (!copies->bf16.bits.empty()) add_bf16_tiles(copies->tile_sparse);  // bf16 already set: it reads them
    }
  }
}

BertEncoder::TileSparseSummary BertEncoder::tile_sparse_summary() const {
  TileSparseSummary summary;
  double tiles = 0.0, skipped = 0.0;
  for (const Layer& layer : layers_)
    for (const WeightCopies* copies : {&layer.qkv_copies, &layer.attn_out_copies, &layer.ffn_in_copies, &layer.ffn_out_copies}) {
      ++summary.weights;
      if (!copies->has_tile_sparse()) continue;
      ++summary.sparse_weights;
      const TileSparseMatrix& s = copies->tile_sparse;
      // Weighted by depth, so weights cut into 4- and 16-deep tiles count by the area they skip.
      const auto depth = static_cast<double>(s.tile_k);
      tiles += depth * static_cast<double>(s.total_tiles()), skipped += depth * static_cast<double>(s.total_tiles() - s.tiles());
      summary.finest_tile_k = summary.finest_tile_k == 0 ? s.tile_k : std::min(summary.finest_tile_k, s.tile_k);
      summary.deepest_tile_k = std::max(summary.deepest_tile_k, s.tile_k);
    }
  summary.skipped_tiles = tiles > 0 ? skipped / tiles : 0.0;
  return summary;
}

void BertEncoder::layer_gemm(Precision precision, int64_t m, int64_t n, int64_t k, MatrixRef x, const Tensor& w,
                             const WeightCopies& copies, int64_t row0, int64_t col0, float* c, int64_t ldc, float beta,
                             ForwardStats& stats, Epilogue epilogue) const {
  const auto t0 = std::chrono::steady_clock::now();
  struct AddTime {  // every return below counts
    ForwardStats& stats;
    std::chrono::steady_clock::time_point t0;
    ~AddTime() { stats.gemm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
  } add_time{stats, t0};
  const int64_t ld = w.dim(1);
  const bool whole = row0 == 0 && col0 == 0 && k == w.dim(0) && n == ld;  // then the packed copy serves
  // The tile-sparse copy serves fp32 and bf16 where it exists and the block is on its tile grid
  // (pruned heads off the grid read the dense copy).
  const TileBlock block{row0, row0 + k, col0, n};
  const bool sparse = copies.has_tile_sparse() && tile_aligned(copies.tile_sparse, block);
  switch (precision) {
    case Precision::Bf16:
      if (sparse && copies.tile_sparse.has_bf16) {
        gemm_tile_sparse_bf16(m, x, copies.tile_sparse, block, c, ldc, beta, epilogue);
        return;
      }
      gemm_bf16(m, n, k, x, {copies.bf16.row(row0) + col0, ld, whole ? copies.bf16.packed.get() : nullptr}, c, ldc, beta,
                epilogue);
      return;
    case Precision::Int8:
      gemm_int8(m, n, k, x,
                {copies.int8.row(row0) + col0, ld, copies.int8.scales.data() + col0, whole ? copies.int8.packed.get() : nullptr,
                 whole && !copies.int8.amx.empty() ? copies.int8.amx.data() : nullptr},
                c, ldc, beta, epilogue);
      return;
    default:
      if (sparse) {
        gemm_tile_sparse(m, x, copies.tile_sparse, block, c, ldc, beta, epilogue);
        return;
      }
      gemm(m, n, k, x, {w.row(row0) + col0, ld, whole ? copies.fp32_packed.get() : nullptr}, c, ldc, beta, epilogue);
  }
}

const BertEncoder::Layer::CtaSplitWeights& BertEncoder::cta_split_weights(const Layer& layer) const {
  Layer::CtaSplitWeights& split = *layer.cta_split;
  std::call_once(split.built, [&] {
    const int64_t H = config_.hidden_size, d = head_dim_, heads = config_.num_attention_heads;
    split.q_w = Tensor({H, H}), split.q_b = Tensor({H});
    split.kv_w = Tensor({H, 2 * H}), split.kv_b = Tensor({2 * H});
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t src = h * 3 * d;  // (q_h, k_h, v_h) in qkv_w
      for (int64_t r = 0; r < H; ++r) {
        std::memcpy(split.q_w.row(r) + h * d, layer.qkv_w.row(r) + src, sizeof(float) * d);
        std::memcpy(split.kv_w.row(r) + 2 * h * d, layer.qkv_w.row(r) + src + d, sizeof(float) * 2 * d);
      }
      std::memcpy(split.q_b.data() + h * d, layer.qkv_b.data() + src, sizeof(float) * d);
      std::memcpy(split.kv_b.data() + 2 * h * d, layer.qkv_b.data() + src + d, sizeof(float) * 2 * d);
    }
  });
  return split;
}

namespace {

// --precision bf16 and int8 run attention's two products on bf16 operands (fused_attention.h), as
// their GEMMs already round or quantize the activations; SIEVE_ATTENTION_FP32=1 keeps them in fp32
// (for measuring one against the other).
bool bf16_attention(Precision precision) {
  static const bool keep_fp32 = [] {
    const char* env = std::getenv("SIEVE_ATTENTION_FP32");
    return env && *env && std::string(env) != "0";
  }();
  return precision != Precision::Fp32 && !keep_fp32;
}

}  // namespace

void BertEncoder::attention_block(Precision precision, const Layer& layer, int layer_index, const CtaConfig::Layer* cta,
                                  const std::vector<PackedSequence>& seqs, const Tensor& x,
                                  Tensor& qkv, Tensor& context, Tensor& out,
                                  std::vector<std::vector<float>>* received,
                                  std::vector<std::vector<float>>* head_magnitude, std::vector<DiagonalBlocks>* diagonal,
                                  int64_t diagonal_size, ForwardStats& stats) const {
  const int64_t H = config_.hidden_size, d = head_dim_, rows = x.dim(0);
  const int heads = static_cast<int>(config_.num_attention_heads);
  const RowKernels& k = row_kernels();
  struct SharedCta {
    CtaCompressed z;
    std::vector<float> qbar;   // [k0, H]: C0 Wq + bq, live heads' columns
    std::vector<float> kvbar;  // [k1 + k2, 2H]: [C1; C2] [Wk Wv] (+ bias on the C1 rows)
  };
  // Per sequence, for share=layer; kept warm across calls. The reference is what the OpenMP
  // threads below use: inside a parallel region the thread_local name is each thread's own copy.
  thread_local std::vector<SharedCta> shared_cta_buffers;
  std::vector<SharedCta>& shared_cta = shared_cta_buffers;

  if (!cta) {
    // Q, K, V for the heads each sequence still computes; qkv columns of pruned heads stay unwritten.
    qkv.reshape({rows, 3 * H});
    for_each_head_group(seqs, [&](const std::vector<int32_t>& hs, int64_t row0, int64_t n) {
      for (auto [h0, h1] : head_runs(hs)) {
        const int64_t col0 = h0 * 3 * d, width = (h1 - h0) * 3 * d;
        layer_gemm(precision, n, width, H, {x.row(row0), H}, layer.qkv_w, layer.qkv_copies, 0, col0, qkv.row(row0) + col0, 3 * H,
                   0.0f, stats, {.bias = layer.qkv_b.data() + col0});
        stats.flops += 2.0 * n * width * H;
      }
    });
  } else if (cta->shared) {
    // CTA with one clustering per layer: the LSH projections of every row (3 l columns), the
    // compression of each sequence, then per sequence two GEMMs for all live heads at once: the
    // query centroids C0 on the Q columns, the key/value centroids [C1; C2] on the K|V columns.
    const Layer::CtaSplitWeights& split = cta_split_weights(layer);
    const int64_t hw = 3 * static_cast<int64_t>(cta->lsh.front().l());
    qkv.reshape({rows, hw});
    gemm(rows, hw, H, {x.data(), H}, {cta->directions_t.data(), hw}, qkv.data(), hw);
    shared_cta.resize(seqs.size());
#pragma omp parallel for schedule(dynamic, 1) if (seqs.size() > 1)
    for (size_t si = 0; si < seqs.size(); ++si) {
      const PackedSequence& s = seqs[si];
      CtaHeadInput in;
      in.x = x.row(s.offset), in.x_stride = H, in.n = s.length(), in.dim = H, in.head_dim = d;
      in.projections = qkv.row(s.offset), in.proj_stride = hw;
      for (int level = 0; level < 3; ++level) in.lsh[level] = &cta->lsh[static_cast<size_t>(level)];
      cta_compress(in, shared_cta[si].z);
    }
    for (size_t si = 0; si < seqs.size(); ++si) {
      SharedCta& sc = shared_cta[si];
      const int64_t k0 = sc.z.ct0.clusters, k1 = sc.z.ct1.clusters, kc = k1 + sc.z.ct2.clusters;
      sc.qbar.resize(static_cast<size_t>(k0 * H));
      sc.kvbar.resize(static_cast<size_t>(kc * 2 * H));
      for (auto [h0, h1] : head_runs(seqs[si].heads)) {
        const int64_t q0 = h0 * d, kv0 = 2 * h0 * d, width = (h1 - h0) * d;
        gemm(k0, width, H, {sc.z.c0.data(), H}, {split.q_w.data() + q0, H}, sc.qbar.data() + q0, H);
        gemm(kc, 2 * width, H, {sc.z.ccat.data(), H}, {split.kv_w.data() + kv0, 2 * H}, sc.kvbar.data() + kv0, 2 * H);
        // Bias on the query and LSH_1 rows only (see cta.h: the residual centroids get none).
        for (int64_t r = 0; r < k0; ++r) k.bias_add(sc.qbar.data() + r * H + q0, split.q_b.data() + q0, width);
        for (int64_t r = 0; r < k1; ++r) k.bias_add(sc.kvbar.data() + r * 2 * H + kv0, split.kv_b.data() + kv0, 2 * width);
      }
    }
  } else {
    // CTA projects only centroids; what it needs per token is the LSH projections <x, a> of the
    // live heads' LSH_0/1/2 directions (3 l columns per head), one GEMM per head run.
    const int64_t hw = 3 * static_cast<int64_t>(cta->lsh.front().l()), cols = heads * hw;
    qkv.reshape({rows, cols});
    for_each_head_group(seqs, [&](const std::vector<int32_t>& hs, int64_t row0, int64_t n) {
      for (auto [h0, h1] : head_runs(hs))
        gemm(n, (h1 - h0) * hw, H, {x.row(row0), H}, {cta->directions_t.data() + h0 * hw, cols}, qkv.row(row0) + h0 * hw, cols);
    });
  }

  // One work item per (sequence, live head); each writes its own context columns and statistics.
  struct Item { size_t seq; int32_t head; };
  std::vector<Item> items;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int32_t h : seqs[s].heads) items.push_back({s, h});
    const size_t n = static_cast<size_t>(seqs[s].length());
    if (received) (*received)[s].assign(static_cast<size_t>(heads) * n, 0.0f);
    if (head_magnitude) (*head_magnitude)[s].assign(static_cast<size_t>(heads), 0.0f);
    if (!cta) stats.flops += 4.0 * static_cast<double>(n) * n * d * seqs[s].heads.size();
  }
  context.reshape({rows, H});
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<CtaHeadResult> cta_results(cta ? items.size() : 0);
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t it = 0; it < items.size(); ++it) {
    const PackedSequence& s = seqs[items[it].seq];
    const int32_t h = items[it].head;
    HeadStatistics hs;
    if (received) hs.received = (*received)[items[it].seq].data() + h * s.length();
    if (head_magnitude) hs.output_magnitude = &(*head_magnitude)[items[it].seq][static_cast<size_t>(h)];
    if (diagonal) {
      DiagonalBlocks& blocks = (*diagonal)[items[it].seq];
      hs.diagonal = {blocks.row_block.data(), blocks.first_row.data(), blocks.end_row.data(), diagonal_size,
                     blocks.probs.data() + h * blocks.blocks() * diagonal_size * diagonal_size};
    }
    if (cta && cta->shared) {
      const SharedCta& sc = shared_cta[items[it].seq];
      const int64_t k0 = sc.z.ct0.clusters, kc = sc.z.ct1.clusters + sc.z.ct2.clusters, n = s.length();
      cta_results[it] = cta_attend(sc.z, n, d, scale, sc.qbar.data() + h * d, H, sc.kvbar.data() + 2 * h * d, 2 * H,
                                   context.row(s.offset) + h * d, H, hs);
      CtaCounts& c = cta_results[it].counts;
      c.linear_macs = static_cast<double>(k0 + 2 * kc) * H * d;  // this head's columns of the two GEMMs
      c.dense_linear_macs = 3.0 * n * H * d;
      const double share = 1.0 / static_cast<double>(s.heads.size());  // the sequence's hashing, split over its heads
      c.overhead_ops += share * (2.0 * static_cast<double>(cta->lsh.front().l()) * 3 * n * H + 3.0 * n * H);
      continue;
    }
    if (cta) {
      const int l = cta->lsh.front().l();
      CtaHeadInput in;
      in.x = x.row(s.offset), in.x_stride = H, in.n = s.length(), in.dim = H, in.head_dim = d;
      in.projections = qkv.row(s.offset) + h * 3 * l, in.proj_stride = qkv.dim(1);
      for (int level = 0; level < 3; ++level) in.lsh[level] = &cta->lsh[static_cast<size_t>(h * 3 + level)];
      in.w_q = layer.qkv_w.data() + h * 3 * d, in.w_kv = in.w_q + d, in.w_stride = 3 * H;
      in.b_q = layer.qkv_b.data() + h * 3 * d, in.b_kv = in.b_q + d;
      in.scale = scale;
      cta_results[it] = cta_head_attention(in, context.row(s.offset) + h * d, H, hs);
      continue;
    }
    const float* base = qkv.row(s.offset) + h * 3 * d;
    HeadView view{base, base + d, base + 2 * d, 3 * H, context.row(s.offset) + h * d, H};
    fused_attention(view, s.length(), d, scale, hs, bf16_attention(precision));
  }
  // CTA bookkeeping: FLOPs actually computed, and per example the MACs the paper's RL and RA
  // compare (dense layers of a CTA run count at their dense cost, so RL/RA cover the whole model).
  if (!stats.cta.per_example.empty()) {
    const size_t li = static_cast<size_t>(layer_index);
    for (size_t it = 0; it < items.size(); ++it) {
      const PackedSequence& s = seqs[items[it].seq];
      CtaCounts c;
      if (cta) {
        c = cta_results[it].counts;
        stats.cta.k0[li] += cta_results[it].k0, stats.cta.k1[li] += cta_results[it].k1;
        stats.cta.k2[li] += cta_results[it].k2, stats.cta.n[li] += static_cast<double>(s.length());
        ++stats.cta.heads[li];
        if (!stats.work.empty()) {
          LayerWork& w = stats.work[static_cast<size_t>(s.input_index)][li];
          ++w.cta_heads;
          w.cta_k0 += cta_results[it].k0, w.cta_k1 += cta_results[it].k1, w.cta_k2 += cta_results[it].k2;
        }
      } else {
        c.dense_linear_macs = c.linear_macs = 3.0 * s.length() * H * d;
        c.dense_attention_macs = c.attention_macs = 2.0 * s.length() * s.length() * d;
      }
      stats.cta.per_example[static_cast<size_t>(s.input_index)].add(c);
    }
  }
  if (cta)
    for (const CtaHeadResult& r : cta_results)
      stats.flops += 2.0 * (r.counts.linear_macs + r.counts.attention_macs) + r.counts.overhead_ops;

  // Output projection over the live heads' columns only, then bias + residual + LayerNorm.
  out.reshape({rows, H});
  for_each_head_group(seqs, [&](const std::vector<int32_t>& hs, int64_t row0, int64_t n) {
    const auto runs = head_runs(hs);
    if (runs.empty()) std::memset(out.row(row0), 0, sizeof(float) * n * H);
    float beta = 0.0f;
    for (auto [h0, h1] : runs) {
      const int64_t col0 = h0 * d, width = (h1 - h0) * d;
      layer_gemm(precision, n, H, width, {context.row(row0) + col0, H}, layer.attn_out_w, layer.attn_out_copies, col0, 0, out.row(row0), H, beta,
                 stats);
      beta = 1.0f;
      stats.flops += 2.0 * n * H * width;
    }
  });
  for_each_row(rows, H, [&](int64_t r) {
    k.bias_residual_layernorm(out.row(r), layer.attn_out_b.data(), x.row(r), layer.attn_ln_g.data(),
                              layer.attn_ln_b.data(), static_cast<float>(config_.layer_norm_eps), H);
  });
}

void BertEncoder::ffn_block(Precision precision, const Layer& layer, const Tensor& x, Tensor& intermediate, Tensor& out,
                            ForwardStats& stats) const {
  const int64_t H = config_.hidden_size, I = config_.intermediate_size, rows = x.dim(0);
  const RowKernels& k = row_kernels();
  intermediate.reshape({rows, I});
  layer_gemm(precision, rows, I, H, {x.data(), H}, layer.ffn_in_w, layer.ffn_in_copies, 0, 0, intermediate.data(), I, 0.0f, stats,
             {.bias = layer.ffn_in_b.data(), .gelu = true});
  out.reshape({rows, H});
  layer_gemm(precision, rows, H, I, {intermediate.data(), I}, layer.ffn_out_w, layer.ffn_out_copies, 0, 0, out.data(), H, 0.0f, stats);
  for_each_row(rows, H, [&](int64_t r) {
    k.bias_residual_layernorm(out.row(r), layer.ffn_out_b.data(), x.row(r), layer.ffn_ln_g.data(),
                              layer.ffn_ln_b.data(), static_cast<float>(config_.layer_norm_eps), H);
  });
  stats.flops += 4.0 * static_cast<double>(rows) * H * I;
}

namespace {

// Moves the kept rows of each sequence to the front of its new slot. Rows only move towards lower
// indices, so compaction in place is safe when done in order.
void compact_rows(Tensor& x, std::vector<PackedSequence>& seqs, const std::vector<std::vector<uint8_t>>& keep) {
  const int64_t H = x.dim(1);
  int64_t dst = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    PackedSequence& seq = seqs[s];
    size_t kept = 0;
    for (int64_t i = 0; i < seq.length(); ++i) {
      if (!keep[s][static_cast<size_t>(i)]) continue;
      if (dst != seq.offset + i) std::memmove(x.row(dst), x.row(seq.offset + i), sizeof(float) * H);
      seq.positions[kept] = seq.positions[static_cast<size_t>(i)];
      seq.is_special[kept] = seq.is_special[static_cast<size_t>(i)];
      ++kept;
      ++dst;
    }
    seq.positions.resize(kept);
    seq.is_special.resize(kept);
  }
  assign_offsets(seqs);
  x.reshape({dst, H});
}

// Token freezing: adds the rows of `x` that `keep` drops to their input's running sum.
void freeze_dropped_rows(const Tensor& x, const std::vector<PackedSequence>& seqs,
                         const std::vector<std::vector<uint8_t>>& keep, std::vector<SequenceOutput>& outputs) {
  const int64_t H = x.dim(1);
  for (size_t s = 0; s < seqs.size(); ++s) {
    SequenceOutput& out = outputs[static_cast<size_t>(seqs[s].input_index)];
    for (int64_t i = 0; i < seqs[s].length(); ++i) {
      if (keep[s][static_cast<size_t>(i)]) continue;
      if (out.frozen_sum.empty()) out.frozen_sum.assign(static_cast<size_t>(H), 0.0f);
      const float* row = x.row(seqs[s].offset + i);
      for (int64_t c = 0; c < H; ++c) out.frozen_sum[static_cast<size_t>(c)] += row[c];
      ++out.frozen_count;
    }
  }
}

}  // namespace

std::vector<SequenceOutput> BertEncoder::forward(std::span<const EncoderInput> inputs, const ForwardOptions& options,
                                                 ForwardStats* stats_out) const {
  const ModelConfig& c = config_;
  const int num_layers = static_cast<int>(c.num_hidden_layers), heads = static_cast<int>(c.num_attention_heads);
  const int64_t H = c.hidden_size;

  std::vector<PackedSequence> seqs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const EncoderInput& in = inputs[i];
    const int64_t n = static_cast<int64_t>(in.ids.size());
    if (n == 0) throw Error("input " + std::to_string(i) + " has no tokens");
    if (n > c.max_position_embeddings)
      throw Error("input " + std::to_string(i) + " has " + std::to_string(n) + " tokens; the model takes at most " +
                  std::to_string(c.max_position_embeddings));
    if (!in.type_ids.empty() && in.type_ids.size() != in.ids.size())
      throw Error("input " + std::to_string(i) + ": type_ids length differs from ids length");
    if (!in.is_special.empty() && in.is_special.size() != in.ids.size())
      throw Error("input " + std::to_string(i) + ": is_special length differs from ids length");
    for (int32_t id : in.ids)
      if (id < 0 || id >= c.vocab_size) throw Error("input " + std::to_string(i) + ": token id " + std::to_string(id) + " outside the vocabulary");
    for (int32_t t : in.type_ids)
      if (t < 0 || t >= c.type_vocab_size) throw Error("input " + std::to_string(i) + ": token type " + std::to_string(t) + " out of range");
    PackedSequence s;
    s.input_index = static_cast<int>(i);
    s.positions.resize(static_cast<size_t>(n));
    for (int64_t p = 0; p < n; ++p) s.positions[static_cast<size_t>(p)] = static_cast<int32_t>(p);
    if (in.is_special.empty()) {
      s.is_special.assign(static_cast<size_t>(n), 0);
      s.is_special.front() = s.is_special.back() = 1;
    } else {
      s.is_special = in.is_special;
    }
    s.heads.resize(static_cast<size_t>(heads));
    for (int h = 0; h < heads; ++h) s.heads[static_cast<size_t>(h)] = h;
    seqs.push_back(std::move(s));
  }

  ForwardStats stats;
  stats.tokens_per_layer.assign(static_cast<size_t>(num_layers), 0);
  stats.heads_per_layer.assign(static_cast<size_t>(num_layers), 0);
  if (options.record_work) stats.work.assign(inputs.size(), std::vector<LayerWork>(static_cast<size_t>(num_layers)));
  std::vector<SequenceOutput> outputs(inputs.size());

  // The activations live in a per-thread workspace kept between passes: allocated afresh, their
  // first touch (page faults on new mmap'd memory) cost ~4 % of a pass at 384 tokens x 8. Up to
  // kKeptWorkspaceBytes stay allocated after a pass (a server's 16k-token batch would otherwise
  // keep ~250 MB for MiniLM-L6). A nested pass on the same thread (none today) gets its own.
  struct Workspace {
    Tensor x, qkv, context, attn, intermediate;
    bool in_use = false;
    int64_t bytes() const {
      return static_cast<int64_t>(sizeof(float)) *
             (x.capacity() + qkv.capacity() + context.capacity() + attn.capacity() + intermediate.capacity());
    }
  };
  constexpr int64_t kKeptWorkspaceBytes = int64_t{64} << 20;
  thread_local Workspace thread_workspace;
  Workspace nested;
  Workspace& ws = thread_workspace.in_use ? nested : thread_workspace;
  ws.in_use = true;
  struct Release {
    Workspace& ws;
    ~Release() {
      if (ws.bytes() > kKeptWorkspaceBytes) ws = Workspace{};
      ws.in_use = false;
    }
  } release{ws};
  Tensor &x = ws.x, &qkv = ws.qkv, &context = ws.context, &attn = ws.attn, &intermediate = ws.intermediate;

  LayerPolicy* policy = options.policy;
  const Precision precision = options.precision.value_or(precision_);
  if (!layers_.empty() && !layers_.front().qkv_copies.has(precision))
    throw Error(std::string("forward: ") + precision_name(precision) + " asked for, but its weight copies were never made (set_precision first)");
  const PolicyNeeds needs = policy ? policy->needs() : PolicyNeeds{};
  // Block-Skim numbers its blocks from each input's first non-special token.
  std::vector<int32_t> first_plain(inputs.size(), 0);
  if (needs.diagonal_block_size > 0) {
    for (const PackedSequence& s : seqs) {
      const auto plain = std::find(s.is_special.begin(), s.is_special.end(), 0);
      first_plain[static_cast<size_t>(s.input_index)] = static_cast<int32_t>(plain - s.is_special.begin());
    }
  }
  if (policy) policy->begin(seqs, num_layers, heads);
  std::vector<std::vector<float>> received, head_magnitude;
  std::vector<DiagonalBlocks> diagonal;
  for (int l = 0; policy && l < num_layers; ++l) {
    if (!policy->attention_backend(l)) continue;
    stats.cta.per_example.assign(inputs.size(), {});
    for (auto* v : {&stats.cta.k0, &stats.cta.k1, &stats.cta.k2, &stats.cta.n}) v->assign(static_cast<size_t>(num_layers), 0.0);
    stats.cta.heads.assign(static_cast<size_t>(num_layers), 0);
    break;
  }

  // A batch of more than rows_per_pass_ rows runs in passes of consecutive whole sequences, each
  // through all layers (why and what it gains: bert_encoder.h, kPassValues). Sequences never
  // interact, so the outputs are the same. Policies get one begin() for the whole batch and, per
  // layer, the sequences of the pass: they key their state by input_index, as they must anyway
  // once early exits thin the batch.
  std::vector<PackedSequence> pending = std::move(seqs);
  for (size_t next = 0; next < pending.size();) {
    seqs.clear();
    int64_t pass_rows = 0;
    do {
      pass_rows += pending[next].length();
      seqs.push_back(std::move(pending[next++]));
    } while (next < pending.size() && pass_rows + pending[next].length() <= rows_per_pass_);
    assign_offsets(seqs);
    x.reshape({pass_rows, H});
    embed(inputs, seqs, x);
    for (int l = 0; l < num_layers && !seqs.empty(); ++l) {
      const Layer& layer = layers_[static_cast<size_t>(l)];
      received.resize(needs.attention_received ? seqs.size() : 0);
      head_magnitude.resize(needs.head_magnitude ? seqs.size() : 0);
      for (const auto& s : seqs) {
        stats.heads_per_layer[static_cast<size_t>(l)] += static_cast<int64_t>(s.heads.size());
        if (stats.work.empty()) continue;
        LayerWork& w = stats.work[static_cast<size_t>(s.input_index)][static_cast<size_t>(l)];
        w.tokens = static_cast<int32_t>(s.length()), w.heads = static_cast<int32_t>(s.heads.size());
      }
      const CtaConfig* cta = policy ? policy->attention_backend(l) : nullptr;
      const int64_t block_size = needs.diagonal_blocks_in(l) ? needs.diagonal_block_size : 0;
      if (block_size > 0 && cta) throw Error("diagonal attention blocks (Block-Skim) cannot be read from a CTA layer");
      diagonal.clear();
      for (const PackedSequence& s : seqs) {
        if (block_size > 0) diagonal.push_back(make_diagonal_blocks(s, first_plain[static_cast<size_t>(s.input_index)], block_size, heads));
      }
      const auto t0 = std::chrono::steady_clock::now();
      attention_block(precision, layer, l, cta ? &cta->layers[static_cast<size_t>(l)] : nullptr, seqs, x, qkv, context, attn,
                      needs.attention_received ? &received : nullptr, needs.head_magnitude ? &head_magnitude : nullptr,
                      block_size > 0 ? &diagonal : nullptr, block_size, stats);
      stats.attention_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

      std::vector<std::vector<uint8_t>> drop_after_ffn;  // keep masks applied after the FFN, if deferred
      if (policy) {
        bool any_dropped = false;
        const AttentionLayerView view{l, num_layers, heads, seqs, received, head_magnitude, &attn, diagonal, block_size};
        PruneDecision decision = decide_pruning(*policy, view, seqs, &any_dropped);
        if (any_dropped && decision.drop_before_ffn) {
          // x still holds this layer's input, the dropped tokens' last complete layer output.
          if (options.freeze_pruned_tokens) freeze_dropped_rows(x, seqs, decision.keep_token, outputs);
          compact_rows(attn, seqs, decision.keep_token);
        } else if (any_dropped) {
          drop_after_ffn = std::move(decision.keep_token);
        }
      }
      for (const auto& s : seqs) stats.tokens_per_layer[static_cast<size_t>(l)] += s.length();
      if (options.cls_only_output && l + 1 == num_layers) {
        // Only [CLS] (row 0: special, never pruned) is read after this layer; the FFN is row-wise.
        std::vector<std::vector<uint8_t>> cls_row;
        for (const PackedSequence& s : seqs) {
          cls_row.emplace_back(static_cast<size_t>(s.length()), 0);
          cls_row.back()[0] = 1;
        }
        compact_rows(attn, seqs, cls_row);
        drop_after_ffn.clear();  // a deferred drop (at=next) has nothing left to drop
      }

      ffn_block(precision, layer, attn, intermediate, x, stats);
      if (!drop_after_ffn.empty()) {
        if (options.freeze_pruned_tokens) freeze_dropped_rows(x, seqs, drop_after_ffn, outputs);
        compact_rows(x, seqs, drop_after_ffn);
        drop_after_ffn.clear();
      }

      const bool last = l + 1 == num_layers;
      ExitDecision exits;
      exits.exit_now.assign(seqs.size(), last ? 1 : 0);
      if (policy && !last) policy->after_layer(LayerOutputView{l, num_layers, seqs, &x}, exits);
      if (std::any_of(exits.exit_now.begin(), exits.exit_now.end(), [](uint8_t v) { return v; })) {
        std::vector<PackedSequence> staying;
        std::vector<std::vector<uint8_t>> keep_rows;
        for (size_t s = 0; s < seqs.size(); ++s) {
          PackedSequence& seq = seqs[s];
          if (exits.exit_now[s]) {
            SequenceOutput& out = outputs[static_cast<size_t>(seq.input_index)];
            out.hidden = Tensor({seq.length(), H});
            std::memcpy(out.hidden.data(), x.row(seq.offset), sizeof(float) * seq.length() * H);
            out.positions = seq.positions;
            out.exit_layer = l + 1;
            if (s < exits.logits.size()) out.exit_logits = std::move(exits.logits[s]);
          }
          keep_rows.emplace_back(static_cast<size_t>(seq.length()), exits.exit_now[s] ? 0 : 1);
        }
        compact_rows(x, seqs, keep_rows);
        std::erase_if(seqs, [](const PackedSequence& s) { return s.positions.empty(); });
        assign_offsets(seqs);
      }
    }
  }
  if (policy) stats.flops += policy->own_flops();
  if (stats_out) *stats_out = std::move(stats);
  return outputs;
}

std::vector<float> BertEncoder::mean_pool(const SequenceOutput& out) {
  const int64_t n = out.hidden.dim(0), H = out.hidden.dim(1);
  std::vector<float> v = out.frozen_sum.empty() ? std::vector<float>(static_cast<size_t>(H), 0.0f) : out.frozen_sum;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < H; ++c) v[static_cast<size_t>(c)] += out.hidden.row(i)[c];
  for (float& x : v) x /= static_cast<float>(n + out.frozen_count);
  return v;
}

std::vector<float> BertEncoder::cls_vector(const SequenceOutput& out) {
  // Position 0 is [CLS]; it is special and never pruned, so it is always row 0.
  return {out.hidden.row(0), out.hidden.row(0) + out.hidden.dim(1)};
}

std::vector<float> BertEncoder::pooler_output(const SequenceOutput& out) const {
  if (!has_pooler()) throw Error("this checkpoint has no pooler");
  const int64_t H = config_.hidden_size;
  std::vector<float> cls = cls_vector(out), pooled(static_cast<size_t>(H));
  gemm(1, H, H, {cls.data(), H}, {pooler_w_.data(), H}, pooled.data(), H);
  for (int64_t c = 0; c < H; ++c) pooled[static_cast<size_t>(c)] = std::tanh(pooled[static_cast<size_t>(c)] + pooler_b_.data()[c]);
  return pooled;
}

BertEncoder::SpanLogits BertEncoder::span_logits(const SequenceOutput& out, size_t length) const {
  if (!has_qa_head()) throw Error("this checkpoint has no question-answering head (qa_outputs)");
  const int64_t H = config_.hidden_size, rows = out.hidden.dim(0);
  std::vector<float> both(static_cast<size_t>(rows * 2));
  gemm(rows, 2, H, {out.hidden.data(), H}, {qa_w_.data(), 2}, both.data(), 2);
  SpanLogits logits;
  logits.start.assign(length, -std::numeric_limits<float>::infinity());
  logits.end = logits.start;
  for (int64_t r = 0; r < rows; ++r) {
    const auto position = static_cast<size_t>(out.positions[static_cast<size_t>(r)]);
    if (position >= length) throw Error("span_logits: row at position " + std::to_string(position) + " of an input of " + std::to_string(length));
    logits.start[position] = both[static_cast<size_t>(2 * r)] + qa_b_.data()[0];
    logits.end[position] = both[static_cast<size_t>(2 * r + 1)] + qa_b_.data()[1];
  }
  return logits;
}

std::vector<float> BertEncoder::classify(const SequenceOutput& out) const {
  if (!has_classifier()) throw Error("this checkpoint has no sequence-classification head");
  if (!out.exit_logits.empty()) return out.exit_logits;
  const int64_t H = config_.hidden_size, labels = num_labels();
  const std::vector<float> pooled = pooler_output(out);
  std::vector<float> logits(static_cast<size_t>(labels));
  gemm(1, labels, H, {pooled.data(), H}, {classifier_w_.data(), labels}, logits.data(), labels);
  for (int64_t i = 0; i < labels; ++i) logits[static_cast<size_t>(i)] += classifier_b_.data()[i];
  return logits;
}

}  // namespace sieve
