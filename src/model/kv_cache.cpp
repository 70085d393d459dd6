#include "model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <random>

#include <omp.h>

#include "kernels/row_kernels.h"
#include "policies/generation_policy.h"
#include "util/half.h"
#include "util/error.h"

namespace sieve {

namespace {

// Lloyd-Max levels for SplitQuantization::normal_levels (see normal_level_grid): about 2^20 samples
// in groups of `group` standard normal values (Box-Muller on a fixed-seed mt19937_64, so the table
// does not depend on the standard library's distributions), each divided by minus the group's value
// of largest magnitude, so they lie in [-1, 1] and that value is -1; the lowest level stays at -1.
std::vector<int16_t> fit_normal_levels(int bits, int64_t group) {
  const int levels = 1 << bits;
  const int64_t groups = std::max<int64_t>((int64_t{1} << 20) / group, 64);
  std::mt19937_64 rng(20261203);
  auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
  std::vector<double> samples, x(static_cast<size_t>(group));
  samples.reserve(static_cast<size_t>(groups * group));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t i = 0; i < group; i += 2) {
      const double radius = std::sqrt(-2.0 * std::log(uniform())), angle = 2.0 * M_PI * uniform();
      x[static_cast<size_t>(i)] = radius * std::cos(angle);
      if (i + 1 < group) x[static_cast<size_t>(i + 1)] = radius * std::sin(angle);
    }
    const double largest = *std::max_element(x.begin(), x.end(), [](double a, double b) { return std::abs(a) < std::abs(b); });
    for (double v : x) samples.push_back(v / -largest);
  }
  std::sort(samples.begin(), samples.end());
  std::vector<double> prefix(samples.size() + 1, 0.0);
  for (size_t i = 0; i < samples.size(); ++i) prefix[i + 1] = prefix[i] + samples[i];
  const size_t count = static_cast<size_t>(levels);
  std::vector<double> level(count);
  for (size_t k = 0; k < count; ++k) level[k] = -1.0 + 2.0 * static_cast<double>(k) / static_cast<double>(count - 1);
  for (int iteration = 0; iteration < 1000; ++iteration) {
    double moved = 0;
    size_t begin = 0;
    for (size_t k = 0; k < count; ++k) {  // level k takes the samples nearer to it than to its neighbours
      const size_t end = k + 1 < count ? static_cast<size_t>(std::lower_bound(samples.begin(), samples.end(),
                                                                              (level[k] + level[k + 1]) / 2) - samples.begin())
                                       : samples.size();
      if (k > 0 && end > begin) {
        const double mean = (prefix[end] - prefix[begin]) / static_cast<double>(end - begin);
        moved = std::max(moved, std::abs(mean - level[k]));
        level[k] = mean;
      }
      begin = end;
    }
    if (moved < 1e-9) break;
  }
  std::vector<int16_t> grid(count);
  for (size_t k = 0; k < count; ++k) {
    grid[k] = static_cast<int16_t>(std::lround(level[k] * kNormalLevelGrid));
    if (k > 0 && grid[k] <= grid[k - 1]) grid[k] = static_cast<int16_t>(grid[k - 1] + 1);
  }
  return grid;
}

}  // namespace

const std::vector<int16_t>& normal_level_grid(int bits, int64_t group) {
  if (bits < 2 || bits > 8 || group < 1) throw Error("normal levels need 2-8 bits and a group of at least 1 value");
  static std::mutex mutex;
  static std::map<std::pair<int, int64_t>, std::vector<int16_t>> tables;  // references stay valid
  std::lock_guard<std::mutex> lock(mutex);
  auto [at, added] = tables.try_emplace({bits, group});
  if (added) at->second = fit_normal_levels(bits, group);
  return at->second;
}

float SplitQuantization::quantize(const float* x, int64_t n, int16_t* codes) const {
  float max_abs = 0.0f, largest = 0.0f;  // largest: the value of largest magnitude, with its sign
  for (int64_t i = 0; i < n; ++i)
    if (std::abs(x[i]) > max_abs) {
      max_abs = std::abs(x[i]);
      largest = x[i];
    }
  if (max_abs == 0.0f) {
    std::fill(codes, codes + n, int16_t{0});
    return 1.0f;
  }
  // Uniform codes count multiples of the unit; normal levels scale their table by it (x ~ level *
  // unit, unit = -largest, so the level -1 is `largest`).
  const int32_t low = full_range ? -(max_code() + 1) : -max_code();
  float unit = normal_levels ? -largest
               : full_range  ? largest / static_cast<float>(low)
                             : max_abs / static_cast<float>(max_code());
  if (group > 0) {  // stored in fp16: clamped to its range; a unit that rounds to 0 leaves codes of 0
    unit = round_to_f16(std::clamp(unit, -65504.0f, 65504.0f));
    if (unit == 0.0f) {
      std::fill(codes, codes + n, int16_t{0});
      return 0.0f;
    }
  }
  if (normal_levels) {  // a code holds its level's grid value: kernels read it as code x scale
    const std::vector<int16_t>& grid = normal_level_grid(total_bits(), n);
    const float to_grid = static_cast<float>(kNormalLevelGrid) / unit;
    for (int64_t i = 0; i < n; ++i) {
      const float y = x[i] * to_grid;
      auto above = std::lower_bound(grid.begin(), grid.end(), y, [](int16_t level, float v) { return level < v; });
      if (above == grid.end() || (above != grid.begin() && y - *(above - 1) < *above - y)) --above;
      codes[i] = *above;
    }
    return unit / static_cast<float>(kNormalLevelGrid);
  }
  for (int64_t i = 0; i < n; ++i) codes[i] = static_cast<int16_t>(std::clamp<long>(std::lround(x[i] / unit), low, max_code()));
  return unit;
}

SplitQuantization SplitQuantization::for_layer(int layer) const {
  SplitQuantization format = *this;
  format.wider_layers.clear();
  if (layer >= 0 && static_cast<size_t>(layer) < wider_layers.size() && wider_layers[static_cast<size_t>(layer)]) ++format.msb_bits;
  return format;
}

float SplitQuantization::msb_value(int16_t code, float scale) const {
  // Arithmetic shift: the MSBs of a negative code are floor(code / 2^lsb), and the LSBs are >= 0.
  const int32_t msb = static_cast<int32_t>(code) >> lsb_bits;
  return static_cast<float>(msb * (1 << lsb_bits) + msb_midpoint()) * scale;
}

namespace {

// Walsh-Hadamard transform of n (a power of two) values, in place, normalized to be orthogonal.
void walsh_hadamard(float* x, int64_t n) {
  for (int64_t half = 1; half < n; half *= 2)
    for (int64_t block = 0; block < n; block += 2 * half)
      for (int64_t i = block; i < block + half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a + b;
        x[i + half] = a - b;
      }
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  for (int64_t i = 0; i < n; ++i) x[i] *= norm;
}

// A fixed pseudo-random sign per channel (a hash of its index), the same in every cache and run.
float channel_sign(int64_t i) {
  uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u;
  h ^= h >> 15;
  h *= 0x85EBCA77u;
  h ^= h >> 13;
  return (h & 1u) ? -1.0f : 1.0f;
}

}  // namespace

void hadamard_rotate(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= channel_sign(i);
  walsh_hadamard(x, n);
}

void inverse_hadamard_rotate(float* x, int64_t n) {
  walsh_hadamard(x, n);  // normalized and symmetric: its own inverse
  for (int64_t i = 0; i < n; ++i) x[i] *= channel_sign(i);
}

void KvTraffic::add(const KvTraffic& other) {
  key_bytes += other.key_bytes;
  value_bytes += other.value_bytes;
  key_elements += other.key_elements;
  key_bits += other.key_bits;
  refetched_key_elements += other.refetched_key_elements;
  value_elements += other.value_elements;
  head_reads += other.head_reads;
  lsb_refetches += other.lsb_refetches;
}

KvCache::KvCache(int layers, int heads, int64_t head_dim, int64_t capacity, std::optional<SplitQuantization> quantization)
    : heads_(heads), head_dim_(head_dim), capacity_(capacity), quantization_(quantization),
      positions_(static_cast<size_t>(capacity), 0) {
  if (quantization_ && quantization_->rotate && (head_dim <= 0 || (head_dim & (head_dim - 1)) != 0))
    throw Error("rotate=1 needs a power-of-two head dimension, this model's is " + std::to_string(head_dim));
  if (quantization_) {
    const int64_t group = quantization_->group_size(head_dim);
    if (head_dim % group != 0)
      throw Error("group=" + std::to_string(group) + " does not divide this model's head dimension " + std::to_string(head_dim));
    scale_groups_ = static_cast<int>(head_dim / group);
    const auto& wider = quantization_->wider_layers;
    for (size_t l = static_cast<size_t>(layers); l < wider.size(); ++l)
      if (wider[l]) throw Error("wider layer " + std::to_string(l) + " does not exist: this model has " + std::to_string(layers) + " layers");
    for (int l = 0; l < layers; ++l) layer_formats_.push_back(quantization_->for_layer(l));
  }
  const int64_t width = heads * head_dim;
  for (int l = 0; l < layers; ++l) {
    Layer layer;
    layer.keys = Tensor({capacity, width});
    layer.values = Tensor({capacity, width});
    if (quantization_) {
      layer.key_codes.assign(static_cast<size_t>(capacity * width), 0);
      layer.value_codes.assign(static_cast<size_t>(capacity * width), 0);
      layer.key_scales.assign(static_cast<size_t>(capacity * heads * scale_groups_), 0.0f);
      layer.value_scales.assign(static_cast<size_t>(capacity * heads * scale_groups_), 0.0f);
    }
    layers_.push_back(std::move(layer));
  }
}

const int16_t* KvCache::key_codes(int layer, int64_t slot) const {
  return layers_[static_cast<size_t>(layer)].key_codes.data() + slot * heads_ * head_dim_;
}
const int16_t* KvCache::value_codes(int layer, int64_t slot) const {
  return layers_[static_cast<size_t>(layer)].value_codes.data() + slot * heads_ * head_dim_;
}
const float& KvCache::key_scale(int layer, int64_t slot, int head, int group) const {
  return layers_[static_cast<size_t>(layer)].key_scales[static_cast<size_t>(slot * scale_stride() + head * scale_groups_ + group)];
}
const float& KvCache::value_scale(int layer, int64_t slot, int head, int group) const {
  return layers_[static_cast<size_t>(layer)].value_scales[static_cast<size_t>(slot * scale_stride() + head * scale_groups_ + group)];
}

void KvCache::quantize_new_rows(int layer, int64_t n) {
  if (!quantization_) return;
  Layer& cached = layers_[static_cast<size_t>(layer)];
  const int64_t width = heads_ * head_dim_;
  std::vector<float> row(static_cast<size_t>(head_dim_));
  const int64_t group = head_dim_ / scale_groups_;
  // Codes and scales of one head's row (rotated first when asked); the fp32 row stays as it is.
  // Sink rows: symmetric 16-bit codes with the same scale layout, so every kernel reads them alike.
  const SplitQuantization& layer_format = layer_formats_[static_cast<size_t>(layer)];
  SplitQuantization sink_format;
  sink_format.msb_bits = SplitQuantization::kSinkBits;
  sink_format.lsb_bits = 0;
  sink_format.group = quantization_->group;
  auto quantize = [&](const float* x, int16_t* codes, float* scales, const SplitQuantization& format) {
    if (quantization_->rotate) {
      std::copy_n(x, head_dim_, row.begin());
      hadamard_rotate(row.data(), head_dim_);
      x = row.data();
    }
    for (int g = 0; g < scale_groups_; ++g) scales[g] = format.quantize(x + g * group, group, codes + g * group);
  };
  for (int64_t slot = size_; slot < size_ + n; ++slot) {
    const bool sink = tokens_seen_ + (slot - size_) < quantization_->sink_tokens;  // the slot's position
    const SplitQuantization& format = sink ? sink_format : layer_format;
    for (int h = 0; h < heads_; ++h) {
      const int64_t at = slot * width + h * head_dim_, scale_at = slot * scale_stride() + h * scale_groups_;
      quantize(cached.keys.row(slot) + h * head_dim_, cached.key_codes.data() + at, cached.key_scales.data() + scale_at, format);
      quantize(cached.values.row(slot) + h * head_dim_, cached.value_codes.data() + at, cached.value_scales.data() + scale_at, format);
    }
  }
}

int64_t KvCache::sink_slots(int64_t visible) const {
  const int sink_tokens = quantization_ ? quantization_->sink_tokens : 0;
  const int64_t committed = std::lower_bound(positions_.begin(), positions_.begin() + size_, sink_tokens) - positions_.begin();
  if (committed < size_) return std::min(committed, visible);
  // Every committed slot is a sink: so are the written ones whose positions are still below the count.
  return std::min(visible, size_ + std::max<int64_t>(0, sink_tokens - tokens_seen_));
}

void KvCache::commit(int64_t n) {
  if (size_ + n > capacity_) throw Error("KV cache full: " + std::to_string(size_ + n) + " > " + std::to_string(capacity_));
  for (int64_t i = 0; i < n; ++i) positions_[static_cast<size_t>(size_ + i)] = static_cast<int32_t>(tokens_seen_ + i);
  size_ += n;
  tokens_seen_ += n;
}

void KvCache::keep_slots(std::span<const int32_t> slots) {
  const int64_t width = heads_ * head_dim_;
  int64_t dst = 0;
  for (int32_t src : slots) {
    if (src < dst || src >= size_) throw Error("internal: KV cache slots to keep must be ascending and cached");
    if (src != dst) {
      for (Layer& layer : layers_) {
        std::memcpy(layer.keys.row(dst), layer.keys.row(src), sizeof(float) * width);
        std::memcpy(layer.values.row(dst), layer.values.row(src), sizeof(float) * width);
        if (quantization_) {
          std::copy_n(layer.key_codes.begin() + src * width, width, layer.key_codes.begin() + dst * width);
          std::copy_n(layer.value_codes.begin() + src * width, width, layer.value_codes.begin() + dst * width);
          const int64_t scales = scale_stride();
          std::copy_n(layer.key_scales.begin() + src * scales, scales, layer.key_scales.begin() + dst * scales);
          std::copy_n(layer.value_scales.begin() + src * scales, scales, layer.value_scales.begin() + dst * scales);
        }
      }
      positions_[static_cast<size_t>(dst)] = positions_[static_cast<size_t>(src)];
    }
    ++dst;
  }
  size_ = dst;
}

namespace {

// Query rows per block of the prompt-stage GEMMs: bounds the score matrix at rows x visible floats.
constexpr int64_t kPromptRowBlock = 256;

void attend_prompt(const KvCache& cache, int layer, MatrixRef queries, int64_t n, int query_heads, float scale,
                   float* context, int64_t context_stride, std::vector<std::vector<float>>& received) {
  const int64_t d = cache.head_dim(), base = cache.size(), width = cache.heads() * d;
  const int group = query_heads / cache.heads();
  const RowKernels& kernels = row_kernels();
#pragma omp parallel for schedule(dynamic, 1) if (n * (base + n) * d * query_heads >= (1 << 16))
  for (int h = 0; h < query_heads; ++h) {
    const int64_t kv_column = (h / group) * d;
    float* sums = received[static_cast<size_t>(h)].empty() ? nullptr : received[static_cast<size_t>(h)].data();
    std::vector<float> scores;
    for (int64_t first = 0; first < n; first += kPromptRowBlock) {
      const int64_t rows = std::min(kPromptRowBlock, n - first), columns = base + first + rows;
      scores.resize(static_cast<size_t>(rows * columns));
      // scores = Q K^T over every slot the block's last query may see; later slots are masked below.
      gemm_nt(rows, columns, d, {queries.data + first * queries.stride + h * d, queries.stride},
              {cache.key(layer, 0) + kv_column, width}, scores.data(), columns);
      for (int64_t r = 0; r < rows; ++r) {
        float* p = scores.data() + r * columns;
        const int64_t visible = base + first + r + 1;  // causal: earlier tokens and itself
        for (int64_t j = 0; j < visible; ++j) p[j] *= scale;
        kernels.softmax(p, visible);
        std::fill(p + visible, p + columns, 0.0f);
        if (sums)
          for (int64_t j = 0; j < visible; ++j) sums[j] += p[j];
      }
      gemm(rows, d, columns, {scores.data(), columns}, {cache.value(layer, 0) + kv_column, width},
           context + first * context_stride + h * d, context_stride);
    }
  }
}

// The policy's value selection for one query head of a generation step (p: its probabilities
// over the visible slots; kept: the slots whose values it reads), and the attention it observes
// (added to sums when the policy looks). Returns whether every slot is kept.
bool select_values(const GenerationPolicy& policy, float* p, int64_t visible, std::vector<int32_t>& kept,
                   std::vector<float>& sums) {
  kept.resize(static_cast<size_t>(visible));
  std::iota(kept.begin(), kept.end(), 0);
  policy.select_values({p, static_cast<size_t>(visible)}, kept);
  if (!sums.empty())
    for (int64_t j = 0; j < visible; ++j) sums[static_cast<size_t>(j)] += p[j];
  return static_cast<int64_t>(kept.size()) == visible;
}

// How many of the visible slots' values any query head of a group read (read once for the group).
int64_t rows_read(const std::vector<std::vector<int32_t>>& rows, int64_t visible, std::vector<char>& read) {
  read.assign(static_cast<size_t>(visible), 0);
  for (const std::vector<int32_t>& kept : rows)
    for (int32_t r : kept) read[static_cast<size_t>(r)] = 1;
  return std::count(read.begin(), read.end(), 1);
}

// Grouped-query attention over an fp32 cache, one query: the `group` query heads sharing KV head g
// score its keys as one [group x visible] GEMM and, when the policy keeps every value row for all
// of them, sum the values as one GEMM too (each key and value row read once for the group, not
// once per query head). Otherwise the values go per head.
void attend_group_fp32(const KvCache& cache, int layer, int g, int group, int64_t visible, const float* queries,
                       float scale, const GenerationPolicy& policy, float* context, std::vector<float>& scores,
                       std::vector<std::vector<int32_t>>& rows, std::vector<std::vector<float>>& received, KvTraffic& total) {
  const int64_t d = cache.head_dim(), width = cache.heads() * d, column = g * d;
  scores.resize(static_cast<size_t>(group * visible));
  gemm_nt(group, visible, d, {queries + g * group * d, d}, {cache.key(layer, 0) + column, width}, scores.data(), visible);
  bool every_row = true;
  for (int k = 0; k < group; ++k) {
    float* p = scores.data() + k * visible;
    for (int64_t j = 0; j < visible; ++j) p[j] *= scale;
    row_kernels().softmax(p, visible);
    every_row = select_values(policy, p, visible, rows[static_cast<size_t>(k)], received[static_cast<size_t>(g * group + k)]) && every_row;
  }
  float* out = context + g * group * d;
  if (every_row) {
    gemm(group, d, visible, {scores.data(), visible}, {cache.value(layer, 0) + column, width}, out, d);
  } else {
    for (int k = 0; k < group; ++k) {
      std::fill(out + k * d, out + (k + 1) * d, 0.0f);
      for (int32_t r : rows[static_cast<size_t>(k)])
        row_kernels().axpy(scores[static_cast<size_t>(k * visible + r)], cache.value(layer, r) + column, out + k * d, d);
    }
  }
  std::vector<char> read;
  const int64_t values_read = rows_read(rows, visible, read);
  total.key_bytes += static_cast<double>(visible * d) * sizeof(float);
  total.key_elements += static_cast<double>(visible * d);
  total.key_bits += static_cast<double>(visible * d) * 32.0;
  total.head_reads += 1;
  total.value_bytes += static_cast<double>(d * sizeof(float)) * static_cast<double>(values_read);
  total.value_elements += static_cast<double>(d) * static_cast<double>(values_read);
}

// Buffers of attend_group_quantized, reused across calls.
struct QuantizedScratch {
  std::vector<float> rotated;   // [group, head_dim] queries, then outputs, in rotated coordinates
  std::vector<float> partial;   // [threads, group, head_dim] value sums of each thread's rows
  std::vector<char> value_read; // [visible]
};

// Query rows per block of the quantized scoring loop (threads take blocks).
constexpr int64_t kCodeRowBlock = 256;

// Grouped-query attention over a quantized cache, one query (the generation stage of progressive
// quantization): the `group` query heads sharing KV head g score its codes in one pass (each row of
// codes read once for the group, threads taking blocks of rows), from the keys' MSBs; each head whose
// MSB probabilities the policy distrusts is rescored with every bit; values are summed for the
// whole group in one pass when the policy keeps every row for all of them (threads summing blocks
// of rows), else per head over its rows. Traffic: the keys once at the most bits any head fetched,
// the values as the union of the rows the group read.
void attend_group_quantized(const KvCache& cache, int layer, int g, int group, int64_t visible, const float* queries,
                            float scale, const GenerationPolicy& policy, float* context, std::vector<float>& scores,
                            std::vector<std::vector<int32_t>>& rows, QuantizedScratch& scratch,
                            std::vector<std::vector<float>>& received, KvTraffic& total) {
  const SplitQuantization& format = cache.layer_quantization(layer);
  const RowKernels& kernels = row_kernels();
  const int64_t d = cache.head_dim(), width = cache.heads() * d, column = g * d;
  const int64_t scale_group = d / cache.scale_groups();
  const CodeRows keys{cache.key_codes(layer, 0) + column, width, &cache.key_scale(layer, 0, g), cache.scale_stride(), scale_group};
  const CodeRows values{cache.value_codes(layer, 0) + column, width, &cache.value_scale(layer, 0, g), cache.scale_stride(), scale_group};
  // Rotated codes are scored with the queries rotated the same way (orthogonal: the dot products
  // are unchanged), and the values come out rotated.
  const float* q = queries + g * group * d;
  std::vector<float>& rotated = scratch.rotated;
  rotated.assign(static_cast<size_t>(group * d), 0.0f);
  if (format.rotate) {
    std::copy_n(q, group * d, rotated.begin());
    for (int k = 0; k < group; ++k) hadamard_rotate(rotated.data() + k * d, d);
    q = rotated.data();
  }
  const bool threaded = visible * group * d >= (1 << 15);
  // Scores of query heads [first_head, first_head + heads) at MSBs (shift = lsb bits) or every bit.
  auto score = [&](int first_head, int heads, bool with_lsbs) {
    const int shift = with_lsbs ? 0 : format.lsb_bits;
    const int32_t midpoint = with_lsbs ? 0 : format.msb_midpoint();
    const int64_t blocks = (visible + kCodeRowBlock - 1) / kCodeRowBlock;
#pragma omp parallel for schedule(static) if (threaded)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t first = b * kCodeRowBlock, count = std::min(kCodeRowBlock, visible - first);
      kernels.dot_codes_rows(q + first_head * d, d, heads, keys.from(first), count, shift, midpoint, d,
                             scores.data() + first_head * visible + first, visible);
    }
    for (int k = first_head; k < first_head + heads; ++k) {
      float* p = scores.data() + k * visible;
      for (int64_t j = 0; j < visible; ++j) p[j] *= scale;
      kernels.softmax(p, visible);
    }
  };
  scores.resize(static_cast<size_t>(group * visible));
  score(0, group, false);
  bool refetched = false, every_row = true;
  for (int k = 0; k < group; ++k) {
    float* p = scores.data() + k * visible;
    if (format.lsb_bits > 0 && policy.needs_key_lsbs({p, static_cast<size_t>(visible)})) {
      score(k, 1, true);
      refetched = true;
    }
    every_row = select_values(policy, p, visible, rows[static_cast<size_t>(k)], received[static_cast<size_t>(g * group + k)]) && every_row;
  }

  std::fill(rotated.begin(), rotated.end(), 0.0f);  // the outputs, accumulated
  if (every_row) {
    const int threads = threaded ? omp_get_max_threads() : 1;
    scratch.partial.assign(static_cast<size_t>(threads * group * d), 0.0f);
#pragma omp parallel num_threads(threads) if (threaded)
    {
      const int t = omp_get_thread_num(), used = omp_get_num_threads();
      const int64_t first = visible * t / used, last = visible * (t + 1) / used;
      kernels.axpy_codes_rows(scores.data(), visible, group, values, first, last, d, scratch.partial.data() + t * group * d, d);
    }
    for (int t = 0; t < threads; ++t)
      for (int64_t i = 0; i < group * d; ++i) rotated[static_cast<size_t>(i)] += scratch.partial[static_cast<size_t>(t * group * d + i)];
  } else {
    for (int k = 0; k < group; ++k)
      for (int32_t r : rows[static_cast<size_t>(k)])
        kernels.axpy_codes_rows(scores.data() + k * visible, visible, 1, values, r, r + 1, d, rotated.data() + k * d, d);
  }
  float* out = context + g * group * d;
  for (int k = 0; k < group; ++k) {
    if (format.rotate) inverse_hadamard_rotate(rotated.data() + k * d, d);
    std::copy_n(rotated.data() + k * d, d, out + k * d);
  }

  const int64_t values_read = rows_read(rows, visible, scratch.value_read);
  const int bits = format.msb_bits + (refetched ? format.lsb_bits : 0);
  const double scale_bytes = static_cast<double>(cache.scale_groups() * format.scale_bytes());
  // Sink rows (positions ascend with the slots) are read at their own width, keys and values.
  const int64_t sinks = cache.sink_slots(visible);
  const int64_t sink_values_read = std::count(scratch.value_read.begin(), scratch.value_read.begin() + sinks, 1);
  const double sink_extra_key_bits = static_cast<double>(SplitQuantization::kSinkBits - bits),
               sink_extra_value_bits = static_cast<double>(SplitQuantization::kSinkBits - format.total_bits());
  total.key_bytes += static_cast<double>(visible) * (static_cast<double>(d * bits) / 8.0 + scale_bytes) +
                     static_cast<double>(sinks * d) * sink_extra_key_bits / 8.0;
  total.value_bytes += static_cast<double>(sink_values_read * d) * sink_extra_value_bits / 8.0;
  total.key_elements += static_cast<double>(visible * d);
  total.key_bits += static_cast<double>(visible * d * bits) + static_cast<double>(sinks * d) * sink_extra_key_bits;
  total.lsb_refetches += refetched ? 1 : 0;
  total.refetched_key_elements += refetched ? static_cast<double>(visible * d) : 0.0;
  total.head_reads += 1;
  total.value_bytes += (static_cast<double>(d * format.total_bits()) / 8.0 + scale_bytes) * static_cast<double>(values_read);
  total.value_elements += static_cast<double>(d) * static_cast<double>(values_read);
}

void attend_generation(const KvCache& cache, int layer, MatrixRef queries, int64_t n, int query_heads, float scale,
                       const GenerationPolicy& policy, float* context, int64_t context_stride,
                       std::vector<std::vector<float>>& received, KvTraffic& traffic) {
  const int kv_heads = cache.heads();
  const int group = query_heads / kv_heads;
  const int64_t base = cache.size();
  // KV heads one after another, threads inside each (a GEMM over an fp32 cache, blocks of rows over
  // a quantized one): a model has few KV heads (SmolLM2: 3), too few to share out between threads evenly.
  std::vector<float> scores;
  std::vector<std::vector<int32_t>> rows(static_cast<size_t>(group));
  QuantizedScratch scratch;
  for (int g = 0; g < kv_heads; ++g)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t visible = base + i + 1;
      const float* query = queries.data + i * queries.stride;
      float* out = context + i * context_stride;
      if (cache.quantization())
        attend_group_quantized(cache, layer, g, group, visible, query, scale, policy, out, scores, rows, scratch, received, traffic);
      else
        attend_group_fp32(cache, layer, g, group, visible, query, scale, policy, out, scores, rows, received, traffic);
    }
}

}  // namespace

void attend_new_tokens(const KvCache& cache, int layer, MatrixRef queries, int64_t n, int query_heads,
                       GenerationPolicy& policy, DecodeStage stage, float* context, int64_t context_stride,
                       KvTraffic& traffic) {
  if (query_heads % cache.heads() != 0) throw Error("internal: query heads must be a multiple of the cached heads");
  const int64_t total = cache.size() + n;
  const float scale = 1.0f / std::sqrt(static_cast<float>(cache.head_dim()));
  // Per query head: attention received by each visible slot, summed over the new queries, handed to
  // the policy after the parallel loops (policies that accumulate state are not thread-safe).
  // Empty when the policy does not look.
  const int64_t observed = policy.observes_attention() ? total : 0;
  std::vector<std::vector<float>> received(static_cast<size_t>(query_heads), std::vector<float>(static_cast<size_t>(observed), 0.0f));
  if (stage == DecodeStage::Prompt)
    attend_prompt(cache, layer, queries, n, query_heads, scale, context, context_stride, received);
  else
    attend_generation(cache, layer, queries, n, query_heads, scale, policy, context, context_stride, received, traffic);
  if (observed > 0)
    for (const std::vector<float>& sums : received) policy.observe_attention(sums);
}

}  // namespace sieve
