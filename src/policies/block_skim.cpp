#include "policies/block_skim.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/conv3x3.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "model/safetensors.h"
#include "util/error.h"
#include "util/json_file.h"

namespace sieve {

namespace {

// For `count` inputs [count][C][S][S]: BN(conv3x3(in)) then ReLU then 2x2 average pooling, into
// [count][C][S/2][S/2]. With AVX-512, directly (3x faster than im2col + GEMM for 32 x 32 blocks);
// otherwise the convolutions of all inputs are one GEMM over their 3x3 neighbourhoods
// laid out as columns (im2col): weight [C][C*9] times columns [C*9][count*S*S]. Only the layout
// loops run in parallel: the GEMM threads itself (a GEMM inside a parallel region nests thread
// teams, which cost more than the predictor on 2 threads).
void conv_bn_relu_pool(const std::vector<float>& weight, const std::vector<float>& scale, const std::vector<float>& shift,
                       const float* in, int64_t count, int64_t channels, int64_t size, std::vector<float>& columns,
                       std::vector<float>& conv, float* out) {
  if (cpu_has_avx512() && conv3x3_avx512_fits(size)) {
    // Direct convolution (kernels/conv3x3.h), one block per iteration: nothing nests here.
    const int64_t in_plane = channels * size * size, out_plane = channels * (size / 2) * (size / 2);
#pragma omp parallel for schedule(static) if (count > 1)
    for (int64_t i = 0; i < count; ++i)
      avx512::conv3x3_scale_relu_pool(in + i * in_plane, weight.data(), scale.data(), shift.data(), channels, size, out + i * out_plane);
    return;
  }
  const int64_t pixels = size * size, depth = channels * 9, width = count * pixels;
  columns.assign(static_cast<size_t>(depth * width), 0.0f);
#pragma omp parallel for collapse(2) schedule(static) if (count > 1)
  for (int64_t i = 0; i < count; ++i)
    for (int64_t ci = 0; ci < channels; ++ci)
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          float* col = columns.data() + ((ci * 3 + dy + 1) * 3 + dx + 1) * width + i * pixels;
          const float* src = in + (i * channels + ci) * pixels;
          const int64_t x0 = std::max<int64_t>(0, -dx), run = size - (dx < 0 ? -dx : dx);
          for (int64_t y = std::max<int64_t>(0, -dy); y < std::min(size, size - dy); ++y)
            std::copy_n(src + (y + dy) * size + x0 + dx, run, col + y * size + x0);
        }
  conv.resize(static_cast<size_t>(channels * width));
  gemm(channels, width, depth, {weight.data(), depth}, {columns.data(), width}, conv.data(), width);
  const int64_t half = size / 2;
#pragma omp parallel for collapse(2) schedule(static) if (count > 1)
  for (int64_t i = 0; i < count; ++i)
    for (int64_t c = 0; c < channels; ++c) {
      float* row = conv.data() + c * width + i * pixels;
      const float a = scale[static_cast<size_t>(c)], b = shift[static_cast<size_t>(c)];
      for (int64_t e = 0; e < pixels; ++e) row[e] = std::max(0.0f, row[e] * a + b);
      for (int64_t y = 0; y < half; ++y)
        for (int64_t x = 0; x < half; ++x) {
          const float* p = row + 2 * y * size + 2 * x;
          out[((i * channels + c) * half + y) * half + x] = 0.25f * (p[0] + p[1] + p[size] + p[size + 1]);
        }
    }
}

}  // namespace

BlockSkimModules BlockSkimModules::load(const std::filesystem::path& dir, const ModelConfig& config) {
  const auto json_path = dir / "blockskim.json";
  if (!std::filesystem::exists(std::filesystem::symlink_status(json_path)))
    throw Error("Block-Skim predictors not found: " + json_path.string() + " (tools/train_qa.py makes them)");
  const nlohmann::json j = read_json_file(json_path, kMaxSmallJsonBytes);
  const std::string bad = "bad " + json_path.string() + ": ";
  if (!j.is_object() || j.value("format", nlohmann::json()) != "sieve-blockskim")
    throw Error(bad + "not a sieve-blockskim file (\"format\": \"sieve-blockskim\" is missing)");
  const auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) throw Error(bad + "'" + name + "' is missing");
    return j.at(name);
  };
  BlockSkimModules m;
  m.size_ = json_integer(field("block_size"), 4, 512, bad + "'block_size'");
  if (m.size_ % 4) throw Error(bad + "'block_size' must be a multiple of 4 (two 2x2 poolings)");
  m.channels_ = json_integer(field("heads"), 1, 4096, bad + "'heads'");
  if (m.channels_ != config.num_attention_heads) throw Error(bad + "'heads' differs from the model's attention heads");
  const int64_t layers = json_integer(field("layers"), 1, config.num_hidden_layers, bad + "'layers'");
  const nlohmann::json& eps_value = field("bn_eps");
  if (!eps_value.is_number() || !(eps_value.get<double>() > 0) || !std::isfinite(eps_value.get<double>()))
    throw Error(bad + "'bn_eps' must be a positive number");
  const double eps = eps_value.get<double>();

  const SafetensorsFile file = SafetensorsFile::open(dir / "blockskim.safetensors");
  const int64_t C = m.channels_, S = m.size_, flat = C * (S / 4) * (S / 4);
  const auto vec = [](const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.size()); };
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "layer." + std::to_string(l) + ".";
    Layer layer;
    for (int which = 1; which <= 2; ++which) {
      const std::string conv = p + "conv" + std::to_string(which) + ".", bn = p + "bn" + std::to_string(which) + ".";
      Conv& c = which == 1 ? layer.conv1 : layer.conv2;
      c.weight = vec(file.load_f32(conv + "weight", {C, C, 3, 3}));
      const Tensor bias = file.load_f32(conv + "bias", {C}), gamma = file.load_f32(bn + "weight", {C}),
                   beta = file.load_f32(bn + "bias", {C}), mean = file.load_f32(bn + "running_mean", {C}),
                   var = file.load_f32(bn + "running_var", {C});
      // BN(z + bias) = (z + bias - mean) * gamma / sqrt(var + eps) + beta = z * scale + shift
      for (int64_t ch = 0; ch < C; ++ch) {
        if (!(var.data()[ch] >= 0)) throw Error(bad + "negative running variance in " + bn + "running_var");
        const double scale = gamma.data()[ch] / std::sqrt(static_cast<double>(var.data()[ch]) + eps);
        c.scale.push_back(static_cast<float>(scale));
        c.shift.push_back(static_cast<float>((bias.data()[ch] - mean.data()[ch]) * scale + beta.data()[ch]));
      }
    }
    layer.fc_weight = vec(file.load_f32(p + "fc.weight", {2, flat}));
    const Tensor fc_bias = file.load_f32(p + "fc.bias", {2});
    layer.fc_bias = {fc_bias.data()[0], fc_bias.data()[1]};
    m.layers_.push_back(std::move(layer));
  }
  return m;
}

std::vector<std::array<float, 2>> BlockSkimModules::logits(int layer, const float* tiles, int64_t count) const {
  const Layer& l = layers_.at(static_cast<size_t>(layer));
  const int64_t C = channels_, S = size_, features = C * (S / 4) * (S / 4);
  thread_local std::vector<float> columns, conv, pooled1, pooled2;
  pooled1.resize(static_cast<size_t>(count * C * (S / 2) * (S / 2)));
  pooled2.resize(static_cast<size_t>(count * features));
  conv_bn_relu_pool(l.conv1.weight, l.conv1.scale, l.conv1.shift, tiles, count, C, S, columns, conv, pooled1.data());
  conv_bn_relu_pool(l.conv2.weight, l.conv2.scale, l.conv2.shift, pooled1.data(), count, C, S / 2, columns, conv, pooled2.data());
  std::vector<std::array<float, 2>> out(static_cast<size_t>(count), l.fc_bias);
  for (int64_t i = 0; i < count; ++i)
    for (int k = 0; k < 2; ++k) {
      const float* w = l.fc_weight.data() + static_cast<size_t>(k * features);
      const float* f = pooled2.data() + i * features;
      double acc = 0.0;
      for (int64_t e = 0; e < features; ++e) acc += static_cast<double>(w[e]) * f[e];
      out[static_cast<size_t>(i)][static_cast<size_t>(k)] += static_cast<float>(acc);
    }
  return out;
}

std::array<float, 2> BlockSkimModules::logits(int layer, const float* tile) const { return logits(layer, tile, 1).front(); }

double BlockSkimModules::flops_per_block() const {
  const double C = static_cast<double>(channels_), S = static_cast<double>(size_);
  return 2.0 * (C * C * 9 * S * S + C * C * 9 * (S / 2) * (S / 2) + 2 * C * (S / 4) * (S / 4));
}

BlockSkimPolicy::BlockSkimPolicy(const BlockSkimModules& modules, double threshold, std::vector<uint8_t> layers, PrunePoint point)
    : modules_(modules), threshold_(threshold), layers_(std::move(layers)), point_(point) {
  for (size_t l = 0; l < layers_.size(); ++l)
    if (layers_[l] && static_cast<int>(l) >= modules_.layers())
      throw Error("policy: blockskim has no predictor for layer " + std::to_string(l) + " (it has " + std::to_string(modules_.layers()) + ")");
}

std::string BlockSkimPolicy::describe() const {
  std::string on;
  for (size_t l = 0; l < layers_.size(); ++l)
    if (layers_[l]) on += (on.empty() ? "" : ",") + std::to_string(l);
  return "Block-Skim (blocks of " + std::to_string(modules_.block_size()) + ", keep when P(keep) >= " + std::to_string(threshold_) +
         ", layers " + on + (point_ == PrunePoint::BeforeFfn ? ", before the FFN)" : ", from the next layer)");
}

PolicyNeeds BlockSkimPolicy::needs() const {
  PolicyNeeds n;
  n.diagonal_block_size = modules_.block_size();
  n.diagonal_block_layers = layers_;
  return n;
}

void BlockSkimPolicy::begin(std::span<const PackedSequence>, int, int) { flops_ = 0.0; }

void BlockSkimPolicy::after_attention(const AttentionLayerView& view, PruneDecision& decision) {
  if (view.layer >= static_cast<int>(layers_.size()) || !layers_[static_cast<size_t>(view.layer)]) return;
  if (point_ == PrunePoint::BeforeFfn) decision.drop_before_ffn = true;
  const int64_t S = modules_.block_size(), tile_size = S * S, heads = view.num_heads;
  // Every block of every sequence, scored a chunk at a time (one GEMM per convolution per chunk;
  // the chunk bounds the im2col columns to a few MB).
  constexpr int64_t kChunk = 16;
  blocks_.clear();
  for (size_t s = 0; s < view.sequences.size(); ++s)
    for (int64_t b = 0; b < view.diagonal_blocks[s].blocks(); ++b) blocks_.push_back({s, b});
  const auto total = static_cast<int64_t>(blocks_.size());
  for (int64_t first = 0; first < total; first += kChunk) {
    const int64_t count = std::min(kChunk, total - first);
    // The tiles as the predictor reads them: [block][heads][S][S] (the view keeps [heads][blocks][S][S]).
    tiles_.resize(static_cast<size_t>(count * heads * tile_size));
    for (int64_t i = 0; i < count; ++i) {
      const auto [s, b] = blocks_[static_cast<size_t>(first + i)];
      const DiagonalBlocks& blocks = view.diagonal_blocks[s];
      for (int64_t h = 0; h < heads; ++h)
        std::copy_n(blocks.probs.data() + (h * blocks.blocks() + b) * tile_size, tile_size, tiles_.data() + (i * heads + h) * tile_size);
    }
    const auto z = modules_.logits(view.layer, tiles_.data(), count);
    for (int64_t i = 0; i < count; ++i) {
      const auto& zi = z[static_cast<size_t>(i)];
      const double keep = 1.0 / (1.0 + std::exp(static_cast<double>(zi[0]) - static_cast<double>(zi[1])));  // softmax(z)[1]
      if (keep >= threshold_) continue;
      const auto [s, b] = blocks_[static_cast<size_t>(first + i)];
      const DiagonalBlocks& blocks = view.diagonal_blocks[s];
      for (int32_t r = blocks.first_row[static_cast<size_t>(b)]; r < blocks.end_row[static_cast<size_t>(b)]; ++r)
        decision.keep_token[s][static_cast<size_t>(r)] = 0;
    }
  }
  flops_ += modules_.flops_per_block() * static_cast<double>(total);
}

}  // namespace sieve
