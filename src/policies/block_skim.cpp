#include "policies/block_skim.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/gemm.h"
#include "model/safetensors.h"
#include "util/error.h"
#include "util/json_file.h"

namespace sieve {

namespace {

// out[co] = BN(conv3x3(in)[co]) then ReLU then 2x2 average pooling: [C][S][S] -> [C][S/2][S/2].
// The convolution is one GEMM over the 3x3 neighbourhoods laid out as columns (im2col): weight
// [C][C*9] times columns [C*9][S*S].
void conv_bn_relu_pool(const std::vector<float>& weight, const std::vector<float>& scale, const std::vector<float>& shift,
                       const float* in, int64_t channels, int64_t size, std::vector<float>& columns, std::vector<float>& conv,
                       float* out) {
  const int64_t pixels = size * size, depth = channels * 9;
  columns.assign(static_cast<size_t>(depth * pixels), 0.0f);
  for (int64_t ci = 0; ci < channels; ++ci)
    for (int64_t dy = -1; dy <= 1; ++dy)
      for (int64_t dx = -1; dx <= 1; ++dx) {
        float* col = columns.data() + ((ci * 3 + dy + 1) * 3 + dx + 1) * pixels;
        const float* src = in + ci * pixels;
        for (int64_t y = std::max<int64_t>(0, -dy); y < std::min(size, size - dy); ++y)
          for (int64_t x = std::max<int64_t>(0, -dx); x < std::min(size, size - dx); ++x) col[y * size + x] = src[(y + dy) * size + x + dx];
      }
  conv.resize(static_cast<size_t>(channels * pixels));
  gemm(channels, pixels, depth, {weight.data(), depth}, {columns.data(), pixels}, conv.data(), pixels);
  for (int64_t co = 0; co < channels; ++co) {
    float* row = conv.data() + co * pixels;
    const float a = scale[static_cast<size_t>(co)], b = shift[static_cast<size_t>(co)];
    for (int64_t e = 0; e < pixels; ++e) row[e] = std::max(0.0f, row[e] * a + b);
  }
  const int64_t half = size / 2;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < half; ++y)
      for (int64_t x = 0; x < half; ++x) {
        const float* p = conv.data() + c * pixels + 2 * y * size + 2 * x;
        out[(c * half + y) * half + x] = 0.25f * (p[0] + p[1] + p[size] + p[size + 1]);
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

std::array<float, 2> BlockSkimModules::logits(int layer, const float* tile) const {
  const Layer& l = layers_.at(static_cast<size_t>(layer));
  const int64_t C = channels_, S = size_;
  thread_local std::vector<float> columns, conv, pooled1, pooled2;
  pooled1.resize(static_cast<size_t>(C * (S / 2) * (S / 2)));
  pooled2.resize(static_cast<size_t>(C * (S / 4) * (S / 4)));
  conv_bn_relu_pool(l.conv1.weight, l.conv1.scale, l.conv1.shift, tile, C, S, columns, conv, pooled1.data());
  conv_bn_relu_pool(l.conv2.weight, l.conv2.scale, l.conv2.shift, pooled1.data(), C, S / 2, columns, conv, pooled2.data());
  std::array<float, 2> out = l.fc_bias;
  for (int k = 0; k < 2; ++k) {
    const float* w = l.fc_weight.data() + static_cast<size_t>(k) * pooled2.size();
    double acc = 0.0;
    for (size_t e = 0; e < pooled2.size(); ++e) acc += static_cast<double>(w[e]) * pooled2[e];
    out[static_cast<size_t>(k)] += static_cast<float>(acc);
  }
  return out;
}

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
  return n;
}

void BlockSkimPolicy::begin(std::span<const PackedSequence>, int, int) { flops_ = 0.0; }

void BlockSkimPolicy::after_attention(const AttentionLayerView& view, PruneDecision& decision) {
  if (view.layer >= static_cast<int>(layers_.size()) || !layers_[static_cast<size_t>(view.layer)]) return;
  if (point_ == PrunePoint::BeforeFfn) decision.drop_before_ffn = true;
  const int64_t S = modules_.block_size(), tile_size = S * S, heads = view.num_heads;
  tile_.resize(static_cast<size_t>(heads * tile_size));
  for (size_t s = 0; s < view.sequences.size(); ++s) {
    const DiagonalBlocks& blocks = view.diagonal_blocks[s];
    const int64_t count = blocks.blocks();
    for (int64_t b = 0; b < count; ++b) {
      // The tile as the predictor reads it: [heads][S][S] (the view keeps [heads][blocks][S][S]).
      for (int64_t h = 0; h < heads; ++h)
        std::copy_n(blocks.probs.data() + (h * count + b) * tile_size, tile_size, tile_.data() + h * tile_size);
      const std::array<float, 2> z = modules_.logits(view.layer, tile_.data());
      flops_ += modules_.flops_per_block();
      const double keep = 1.0 / (1.0 + std::exp(static_cast<double>(z[0]) - static_cast<double>(z[1])));  // softmax(z)[1]
      if (keep >= threshold_) continue;
      for (int32_t r = blocks.first_row[static_cast<size_t>(b)]; r < blocks.end_row[static_cast<size_t>(b)]; ++r)
        decision.keep_token[s][static_cast<size_t>(r)] = 0;
    }
  }
}

}  // namespace sieve
