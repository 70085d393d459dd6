#include "cuda/cuda_encoder.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "cuda/cuda_check.h"
#include "cuda/gemm.h"
#include "cuda/host/attention_plan.h"
#include "cuda/kernels.h"
#include "kernels/gemm.h"
#include "model/safetensors.h"
#include "util/error.h"

namespace sieve::cuda {

namespace {

DeviceBuffer<__half> upload_half(const float* data, size_t n) {
  std::vector<__half> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = __float2half(data[i]);
  DeviceBuffer<__half> d(n);
  d.upload(h.data(), n);
  return d;
}
DeviceBuffer<__half> upload_half(const Tensor& t) { return upload_half(t.data(), static_cast<size_t>(t.size())); }

DeviceBuffer<float> upload_float(const Tensor& t) {
  DeviceBuffer<float> d(static_cast<size_t>(t.size()));
  d.upload(t.data(), static_cast<size_t>(t.size()));
  return d;
}

template <typename T>
void upload_vector(DeviceBuffer<T>& buffer, const std::vector<T>& v, cudaStream_t stream) {
  buffer.reserve(std::max<size_t>(v.size(), 1));
  if (!v.empty()) buffer.upload(v.data(), v.size(), stream);
}

struct DeviceLayer {
  // Same layouts as the CPU encoder: weights transposed to [in, out], QKV columns grouped per head.
  DeviceBuffer<__half> qkv_w, qkv_b, attn_out_w, attn_out_b, ffn_in_w, ffn_in_b, ffn_out_w, ffn_out_b;
  DeviceBuffer<float> attn_ln_g, attn_ln_b, ffn_ln_g, ffn_ln_b;
};

}  // namespace

struct CudaBertEncoder::Impl {
  ModelConfig config;
  int64_t head_dim = 0;
  std::string device;
  DeviceBuffer<__half> word_emb, pos_emb, type_emb;
  DeviceBuffer<float> emb_ln_g, emb_ln_b;
  std::vector<DeviceLayer> layers;
  Tensor pooler_w, pooler_b, classifier_w, classifier_b;  // host FP32, as BertEncoder's
  // Declared before gemm and the workspace, so it is destroyed after them (members go in reverse).
  struct StreamOwner {
    cudaStream_t stream = nullptr;
    ~StreamOwner() {
      if (stream) cudaStreamDestroy(stream);
    }
  } stream_owner;
  cudaStream_t stream = nullptr;  // == stream_owner.stream
  CublasGemm gemm;

  // Workspace reused across calls; capacities only grow.
  mutable DeviceBuffer<__half> x, x_alt, qkv, context, attn, attn_alt, intermediate, exit_rows;
  mutable DeviceBuffer<float> received, head_magnitude, staging;
  mutable PinnedHostBuffer<float> host_statistics;  // where the statistics land on the host
  mutable DeviceBuffer<int32_t> cu_seqlens, source_rows, ids, positions, type_ids;
  mutable DeviceBuffer<AttentionWorkItem> items;

  // rows x H of `src` to host FP32.
  void download_rows(const __half* src, int64_t rows, float* dst) const {
    const int64_t n = rows * config.hidden_size;
    if (n == 0) return;
    staging.reserve(static_cast<size_t>(n));
    half_to_float(src, staging.get(), n, stream);
    staging.download(dst, static_cast<size_t>(n), stream);
  }
  // Compacts `buffer` (rows x width) through `alt` to the rows compact_sequences keeps.
  void compact(DeviceBuffer<__half>& buffer, DeviceBuffer<__half>& alt, std::vector<PackedSequence>& seqs,
               const std::vector<std::vector<uint8_t>>& keep, int64_t width) const {
    const std::vector<int32_t> rows = compact_sequences(seqs, keep);
    upload_vector(source_rows, rows, stream);
    alt.reserve(std::max<size_t>(rows.size() * static_cast<size_t>(width), 1));
    gather_rows(buffer.get(), alt.get(), source_rows.get(), static_cast<int64_t>(rows.size()), width, stream);
    std::swap(buffer, alt);
  }
  void attention_block(const DeviceLayer& layer, const std::vector<PackedSequence>& seqs, int64_t rows,
                       bool want_received, bool want_magnitude, AttentionPlan& plan, ForwardStats& stats) const;
  void ffn_block(const DeviceLayer& layer, int64_t rows, ForwardStats& stats) const;
};

CudaBertEncoder::CudaBertEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBertEncoder::CudaBertEncoder(CudaBertEncoder&&) noexcept = default;
CudaBertEncoder& CudaBertEncoder::operator=(CudaBertEncoder&&) noexcept = default;
CudaBertEncoder::~CudaBertEncoder() = default;

const ModelConfig& CudaBertEncoder::config() const { return impl_->config; }
bool CudaBertEncoder::has_pooler() const { return !impl_->pooler_w.empty(); }
bool CudaBertEncoder::has_classifier() const { return !impl_->classifier_w.empty(); }
int CudaBertEncoder::num_labels() const { return has_classifier() ? static_cast<int>(impl_->classifier_w.dim(1)) : 0; }
std::string CudaBertEncoder::device_name() const { return impl_->device; }

CudaBertEncoder CudaBertEncoder::load(const std::filesystem::path& model_dir) {
  if (!device_available()) throw Error("no CUDA device is available");
  if (!std::filesystem::is_directory(model_dir)) throw Error("model directory not found: " + model_dir.string());
  auto impl = std::make_unique<Impl>();
  cudaDeviceProp prop{};
  SIEVE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  impl->device = prop.name;
  SIEVE_CUDA_CHECK(cudaStreamCreateWithFlags(&impl->stream_owner.stream, cudaStreamNonBlocking));
  impl->stream = impl->stream_owner.stream;
  impl->gemm.set_stream(impl->stream);

  impl->config = ModelConfig::load(model_dir / "config.json");
  const ModelConfig& c = impl->config;
  if (c.model_type != "bert") throw Error("unsupported model_type '" + c.model_type + "' (supported: bert)");
  if (c.hidden_act != Activation::GeluErf) throw Error("unsupported hidden_act (the CUDA backend supports gelu)");
  const int64_t H = c.hidden_size, I = c.intermediate_size, heads = c.num_attention_heads, d = H / heads;
  impl->head_dim = d;
  if (!attention_head_dim_supported(d)) throw Error("CUDA backend: head_dim " + std::to_string(d) + " not supported");
  if (H % 8 != 0 || I % 8 != 0) throw Error("CUDA backend: hidden and intermediate sizes must be multiples of 8");

  const auto weights_path = model_dir / "model.safetensors";
  if (!std::filesystem::exists(weights_path)) throw Error("model.safetensors not found in " + model_dir.string());
  const SafetensorsFile file = SafetensorsFile::open(weights_path);
  // The same names as BertEncoder::load: optional "bert." prefix, LayerNorm weight/bias or gamma/beta.
  std::string prefix;
  if (file.contains("bert.embeddings.word_embeddings.weight")) prefix = "bert.";
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape) { return file.load_f32(prefix + name, shape); };
  auto layer_norm = [&](const std::string& name) {
    if (file.contains(prefix + name + ".gamma")) return std::pair{get(name + ".gamma", {H}), get(name + ".beta", {H})};
    return std::pair{get(name + ".weight", {H}), get(name + ".bias", {H})};
  };
  auto upload_ln = [&](const std::string& name, DeviceBuffer<float>& g, DeviceBuffer<float>& b) {
    const auto [tg, tb] = layer_norm(name);
    g = upload_float(tg);
    b = upload_float(tb);
  };

  impl->word_emb = upload_half(get("embeddings.word_embeddings.weight", {c.vocab_size, H}));
  impl->pos_emb = upload_half(get("embeddings.position_embeddings.weight", {c.max_position_embeddings, H}));
  impl->type_emb = upload_half(get("embeddings.token_type_embeddings.weight", {c.type_vocab_size, H}));
  upload_ln("embeddings.LayerNorm", impl->emb_ln_g, impl->emb_ln_b);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    DeviceLayer layer;
    Tensor qkv_w({3 * H, H}), qkv_b({3 * H});
    const char* parts[3] = {"query", "key", "value"};
    for (int part = 0; part < 3; ++part) {
      const Tensor pw = get(p + "attention.self." + parts[part] + ".weight", {H, H});
      const Tensor pb = get(p + "attention.self." + parts[part] + ".bias", {H});
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t dst = (h * 3 + part) * d;
        std::memcpy(qkv_w.row(dst), pw.row(h * d), sizeof(float) * d * H);
        std::memcpy(qkv_b.data() + dst, pb.data() + h * d, sizeof(float) * d);
      }
    }
    layer.qkv_w = upload_half(transposed(qkv_w));
    layer.qkv_b = upload_half(qkv_b);
    layer.attn_out_w = upload_half(transposed(get(p + "attention.output.dense.weight", {H, H})));
    layer.attn_out_b = upload_half(get(p + "attention.output.dense.bias", {H}));
    upload_ln(p + "attention.output.LayerNorm", layer.attn_ln_g, layer.attn_ln_b);
    layer.ffn_in_w = upload_half(transposed(get(p + "intermediate.dense.weight", {I, H})));
    layer.ffn_in_b = upload_half(get(p + "intermediate.dense.bias", {I}));
    layer.ffn_out_w = upload_half(transposed(get(p + "output.dense.weight", {H, I})));
    layer.ffn_out_b = upload_half(get(p + "output.dense.bias", {H}));
    upload_ln(p + "output.LayerNorm", layer.ffn_ln_g, layer.ffn_ln_b);
    impl->layers.push_back(std::move(layer));
  }
  if (file.contains(prefix + "pooler.dense.weight")) {
    impl->pooler_w = transposed(get("pooler.dense.weight", {H, H}));
    impl->pooler_b = get("pooler.dense.bias", {H});
  }
  if (file.contains("classifier.weight")) {
    const int64_t labels = file.info("classifier.weight").shape.at(0);
    impl->classifier_w = transposed(file.load_f32("classifier.weight", {labels, H}));
    impl->classifier_b = file.load_f32("classifier.bias", {labels});
    if (impl->pooler_w.empty()) throw Error("checkpoint has a classifier but no pooler: " + weights_path.string());
  }
  SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
  return CudaBertEncoder(std::move(impl));
}

void CudaBertEncoder::Impl::attention_block(const DeviceLayer& layer, const std::vector<PackedSequence>& seqs,
                                            int64_t rows, bool want_received, bool want_magnitude, AttentionPlan& plan,
                                            ForwardStats& stats) const {
  const int64_t H = config.hidden_size, d = head_dim;
  const int heads = static_cast<int>(config.num_attention_heads);
  qkv.reserve(static_cast<size_t>(rows * 3 * H));
  context.reserve(static_cast<size_t>(rows * H));
  attn.reserve(static_cast<size_t>(rows * H));
  const std::vector<HeadGroup> groups = head_groups(seqs);

  // Q, K, V of the live heads only (one GEMM per run of consecutive heads and group of sequences).
  for (const HeadGroup& g : groups) {
    for (auto [h0, h1] : head_runs(seqs[g.first_seq].heads)) {
      const int64_t col0 = h0 * 3 * d, width = (h1 - h0) * 3 * d;
      gemm(g.rows, width, H, x.get() + g.row0 * H, H, layer.qkv_w.get() + col0, 3 * H,
           qkv.get() + g.row0 * 3 * H + col0, 3 * H);
      bias_add(qkv.get() + g.row0 * 3 * H + col0, 3 * H, layer.qkv_b.get() + col0, g.rows, width, stream);
      stats.flops += 2.0 * static_cast<double>(g.rows) * static_cast<double>(width) * static_cast<double>(H);
    }
  }

  plan = plan_attention(seqs, heads);
  for (const PackedSequence& s : seqs)
    stats.flops += 4.0 * static_cast<double>(s.length()) * static_cast<double>(s.length()) * static_cast<double>(d) *
                   static_cast<double>(s.heads.size());
  upload_vector(cu_seqlens, plan.cu_seqlens, stream);
  upload_vector(items, plan.items, stream);
  if (want_received) received.reserve(static_cast<size_t>(std::max<int64_t>(plan.received_size(), 1)));
  if (want_magnitude) head_magnitude.reserve(static_cast<size_t>(std::max<int64_t>(plan.head_magnitude_size(), 1)));
  AttentionArgs args = packed_attention_args(qkv.get(), context.get(), heads, static_cast<int>(d), cu_seqlens.get(),
                                             items.get(), static_cast<int>(plan.items.size()));
  args.received = want_received ? received.get() : nullptr;
  args.head_magnitude = want_magnitude ? head_magnitude.get() : nullptr;
  fused_attention(args, plan.received_size(), plan.head_magnitude_size(), stream);

  // Output projection over the live heads' rows of the weight, then bias + residual + LayerNorm.
  for (const HeadGroup& g : groups) {
    const auto runs = head_runs(seqs[g.first_seq].heads);
    if (runs.empty())
      SIEVE_CUDA_CHECK(cudaMemsetAsync(attn.get() + g.row0 * H, 0, sizeof(__half) * static_cast<size_t>(g.rows * H), stream));
    float beta = 0.0f;
    for (auto [h0, h1] : runs) {
      const int64_t col0 = h0 * d, width = (h1 - h0) * d;
      gemm(g.rows, H, width, context.get() + g.row0 * H + col0, H, layer.attn_out_w.get() + col0 * H, H,
           attn.get() + g.row0 * H, H, beta);
      beta = 1.0f;
      stats.flops += 2.0 * static_cast<double>(g.rows) * static_cast<double>(H) * static_cast<double>(width);
    }
  }
  bias_residual_layernorm(attn.get(), layer.attn_out_b.get(), x.get(), layer.attn_ln_g.get(), layer.attn_ln_b.get(),
                          static_cast<float>(config.layer_norm_eps), rows, H, stream);
}

void CudaBertEncoder::Impl::ffn_block(const DeviceLayer& layer, int64_t rows, ForwardStats& stats) const {
  const int64_t H = config.hidden_size, I = config.intermediate_size;
  intermediate.reserve(static_cast<size_t>(std::max<int64_t>(rows * I, 1)));
  x.reserve(static_cast<size_t>(std::max<int64_t>(rows * H, 1)));
  gemm(rows, I, H, attn.get(), H, layer.ffn_in_w.get(), I, intermediate.get(), I);
  bias_gelu(intermediate.get(), layer.ffn_in_b.get(), rows, I, stream);
  gemm(rows, H, I, intermediate.get(), I, layer.ffn_out_w.get(), H, x.get(), H);
  bias_residual_layernorm(x.get(), layer.ffn_out_b.get(), attn.get(), layer.ffn_ln_g.get(), layer.ffn_ln_b.get(),
                          static_cast<float>(config.layer_norm_eps), rows, H, stream);
  stats.flops += 4.0 * static_cast<double>(rows) * static_cast<double>(H) * static_cast<double>(I);
}

std::vector<SequenceOutput> CudaBertEncoder::forward(std::span<const EncoderInput> inputs, const ForwardOptions& options,
                                                     ForwardStats* stats_out, const CudaRunOptions& run) const {
  const Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const int num_layers = static_cast<int>(c.num_hidden_layers), heads = static_cast<int>(c.num_attention_heads);
  const int64_t H = c.hidden_size;

  // The packed batch, validated as BertEncoder::forward validates it.
  std::vector<PackedSequence> seqs;
  std::vector<int32_t> ids, positions, type_ids;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const EncoderInput& in = inputs[i];
    const int64_t n = static_cast<int64_t>(in.ids.size());
    const std::string where = "input " + std::to_string(i);
    if (n == 0) throw Error(where + " has no tokens");
    if (n > c.max_position_embeddings)
      throw Error(where + " has " + std::to_string(n) + " tokens; the model takes at most " +
                  std::to_string(c.max_position_embeddings));
    if (!in.type_ids.empty() && in.type_ids.size() != in.ids.size())
      throw Error(where + ": type_ids length differs from ids length");
    if (!in.is_special.empty() && in.is_special.size() != in.ids.size())
      throw Error(where + ": is_special length differs from ids length");
    for (int32_t id : in.ids)
      if (id < 0 || id >= c.vocab_size) throw Error(where + ": token id " + std::to_string(id) + " outside the vocabulary");
    for (int32_t t : in.type_ids)
      if (t < 0 || t >= c.type_vocab_size) throw Error(where + ": token type " + std::to_string(t) + " out of range");
    PackedSequence s;
    s.input_index = static_cast<int>(i);
    for (int64_t p = 0; p < n; ++p) {
      s.positions.push_back(static_cast<int32_t>(p));
      positions.push_back(static_cast<int32_t>(p));
      ids.push_back(in.ids[static_cast<size_t>(p)]);
      type_ids.push_back(in.type_ids.empty() ? 0 : in.type_ids[static_cast<size_t>(p)]);
    }
    if (in.is_special.empty()) {
      s.is_special.assign(static_cast<size_t>(n), 0);
      s.is_special.front() = s.is_special.back() = 1;
    } else {
      s.is_special = in.is_special;
    }
    for (int h = 0; h < heads; ++h) s.heads.push_back(h);
    seqs.push_back(std::move(s));
  }
  int64_t rows = assign_offsets(seqs);

  ForwardStats stats;
  stats.tokens_per_layer.assign(static_cast<size_t>(num_layers), 0);
  stats.heads_per_layer.assign(static_cast<size_t>(num_layers), 0);
  std::vector<SequenceOutput> outputs(inputs.size());
  if (rows == 0) {
    if (stats_out) *stats_out = std::move(stats);
    return outputs;
  }

  upload_vector(m.ids, ids, m.stream);
  upload_vector(m.positions, positions, m.stream);
  upload_vector(m.type_ids, type_ids, m.stream);
  m.x.reserve(static_cast<size_t>(rows * H));
  embed_layernorm(m.ids.get(), m.positions.get(), m.type_ids.get(), m.word_emb.get(), m.pos_emb.get(), m.type_emb.get(),
                  m.emb_ln_g.get(), m.emb_ln_b.get(), static_cast<float>(c.layer_norm_eps), m.x.get(), rows, H, m.stream);

  LayerPolicy* policy = options.policy;
  if (policy && options.freeze_pruned_tokens)
    throw Error("the CUDA encoder does not freeze pruned tokens yet (pool over the survivors: --pool survivors)");
  const PolicyNeeds needs = policy ? policy->needs() : PolicyNeeds{};
  if (needs.diagonal_block_size > 0)
    throw Error("the CUDA encoder does not produce diagonal attention blocks (Block-Skim): run it on the CPU");
  if (policy) {
    // Compressed token attention is a CPU-only backend so far: refuse rather than silently run dense.
    for (int l = 0; l < num_layers; ++l)
      if (policy->attention_backend(l))
        throw Error("the CUDA backend does not implement compressed token attention (cta:); run it on the CPU");
    policy->begin(seqs, num_layers, heads);
  }
  std::vector<std::vector<float>> received, head_magnitude;
  Tensor host_hidden;
  AttentionPlan plan;

  for (int l = 0; l < num_layers && !seqs.empty(); ++l) {
    const DeviceLayer& layer = m.layers[static_cast<size_t>(l)];
    for (const auto& s : seqs) stats.heads_per_layer[static_cast<size_t>(l)] += static_cast<int64_t>(s.heads.size());
    m.attention_block(layer, seqs, rows, needs.attention_received, needs.head_magnitude, plan, stats);

    std::vector<std::vector<uint8_t>> drop_after_ffn;
    if (policy) {
      // The statistics cross to the host; the policy never knows which backend ran.
      const auto t_wait = std::chrono::steady_clock::now();
      received.clear();
      head_magnitude.clear();
      if (needs.attention_received) {
        const auto size = static_cast<size_t>(plan.received_size());
        float* flat = m.host_statistics.reserve(size);
        m.received.download(flat, size, m.stream);
        split_received(plan, {flat, size}, received);
      }
      if (needs.head_magnitude) {
        const auto size = static_cast<size_t>(plan.head_magnitude_size());
        float* flat = m.host_statistics.reserve(size);
        m.head_magnitude.download(flat, size, m.stream);
        split_head_magnitude(plan, {flat, size}, head_magnitude);
      }
      const Tensor* hidden = nullptr;
      if (run.hidden_to_policies) {
        host_hidden = Tensor({rows, H});
        m.download_rows(m.attn.get(), rows, host_hidden.data());
        hidden = &host_hidden;
      }
      const auto t_decide = std::chrono::steady_clock::now();
      // The same decision step as the CPU encoder's (special tokens stay, >= 1 row per sequence).
      bool any_dropped = false;
      // No diagonal blocks: the CUDA encoder does not run Block-Skim (a policy asking for them is refused).
      const AttentionLayerView view{.layer = l, .num_layers = num_layers, .num_heads = heads, .sequences = seqs,
                                    .received = received, .head_magnitude = head_magnitude, .hidden = hidden,
                                    .diagonal_blocks = {}, .diagonal_block_size = 0};
      PruneDecision decision = decide_pruning(*policy, view, seqs, &any_dropped);
      if (any_dropped && decision.drop_before_ffn) {
        m.compact(m.attn, m.attn_alt, seqs, decision.keep_token, H);
        rows = seqs.empty() ? 0 : seqs.back().offset + seqs.back().length();
      } else if (any_dropped) {
        drop_after_ffn = std::move(decision.keep_token);
      }
      if (run.host_times) {
        const auto t_done = std::chrono::steady_clock::now();
        run.host_times->statistics_wait_s += std::chrono::duration<double>(t_decide - t_wait).count();
        run.host_times->decide_s += std::chrono::duration<double>(t_done - t_decide).count();
      }
    }
    for (const auto& s : seqs) stats.tokens_per_layer[static_cast<size_t>(l)] += s.length();

    m.ffn_block(layer, rows, stats);
    if (!drop_after_ffn.empty()) {
      m.compact(m.x, m.x_alt, seqs, drop_after_ffn, H);
      rows = seqs.empty() ? 0 : seqs.back().offset + seqs.back().length();
    }

    const bool last = l + 1 == num_layers;
    ExitDecision exits;
    exits.exit_now.assign(seqs.size(), last ? 1 : 0);
    if (policy && !last) {
      const Tensor* hidden = nullptr;
      if (run.hidden_to_policies) {
        host_hidden = Tensor({rows, H});
        m.download_rows(m.x.get(), rows, host_hidden.data());
        hidden = &host_hidden;
      }
      policy->after_layer(LayerOutputView{l, num_layers, seqs, hidden}, exits);
    }
    if (std::any_of(exits.exit_now.begin(), exits.exit_now.end(), [](uint8_t v) { return v; })) {
      // The exiting sequences' rows (or [CLS] rows) are gathered and copied to the host in one go.
      std::vector<int32_t> out_rows;
      for (size_t s = 0; s < seqs.size(); ++s) {
        if (!exits.exit_now[s]) continue;
        const int64_t n = run.cls_only ? 1 : seqs[s].length();  // row 0 is [CLS]: special, never pruned
        for (int64_t i = 0; i < n; ++i) out_rows.push_back(static_cast<int32_t>(seqs[s].offset + i));
      }
      upload_vector(m.source_rows, out_rows, m.stream);
      m.exit_rows.reserve(out_rows.size() * static_cast<size_t>(H));
      gather_rows(m.x.get(), m.exit_rows.get(), m.source_rows.get(), static_cast<int64_t>(out_rows.size()), H, m.stream);
      Tensor exited({static_cast<int64_t>(out_rows.size()), H});
      m.download_rows(m.exit_rows.get(), static_cast<int64_t>(out_rows.size()), exited.data());
      int64_t next = 0;
      std::vector<std::vector<uint8_t>> keep_rows;
      for (size_t s = 0; s < seqs.size(); ++s) {
        const PackedSequence& seq = seqs[s];
        if (exits.exit_now[s]) {
          SequenceOutput& out = outputs[static_cast<size_t>(seq.input_index)];
          const int64_t n = run.cls_only ? 1 : seq.length();
          out.hidden = Tensor({n, H});
          std::memcpy(out.hidden.data(), exited.row(next), sizeof(float) * static_cast<size_t>(n * H));
          next += n;
          out.positions.assign(seq.positions.begin(), seq.positions.begin() + n);
          out.exit_layer = l + 1;
          if (s < exits.logits.size()) out.exit_logits = std::move(exits.logits[s]);
        }
        keep_rows.emplace_back(static_cast<size_t>(seq.length()), exits.exit_now[s] ? 0 : 1);
      }
      if (!last) {
        m.compact(m.x, m.x_alt, seqs, keep_rows, H);
        std::erase_if(seqs, [](const PackedSequence& s) { return s.positions.empty(); });
        rows = assign_offsets(seqs);
      } else {
        seqs.clear();
      }
    }
  }
  SIEVE_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  if (policy) stats.flops += policy->own_flops();
  if (stats_out) *stats_out = std::move(stats);
  return outputs;
}

std::vector<float> CudaBertEncoder::pooler_output(const SequenceOutput& out) const {
  if (!has_pooler()) throw Error("this checkpoint has no pooler");
  const int64_t H = impl_->config.hidden_size;
  std::vector<float> cls = BertEncoder::cls_vector(out), pooled(static_cast<size_t>(H));
  gemm(1, H, H, {cls.data(), H}, {impl_->pooler_w.data(), H}, pooled.data(), H);
  for (int64_t i = 0; i < H; ++i)
    pooled[static_cast<size_t>(i)] = std::tanh(pooled[static_cast<size_t>(i)] + impl_->pooler_b.data()[i]);
  return pooled;
}

std::vector<float> CudaBertEncoder::classify(const SequenceOutput& out) const {
  if (!has_classifier()) throw Error("this checkpoint has no sequence-classification head");
  if (!out.exit_logits.empty()) return out.exit_logits;
  const int64_t H = impl_->config.hidden_size, labels = num_labels();
  const std::vector<float> pooled = pooler_output(out);
  std::vector<float> logits(static_cast<size_t>(labels));
  gemm(1, labels, H, {pooled.data(), H}, {impl_->classifier_w.data(), labels}, logits.data(), labels);
  for (int64_t i = 0; i < labels; ++i) logits[static_cast<size_t>(i)] += impl_->classifier_b.data()[i];
  return logits;
}

}  // namespace sieve::cuda
