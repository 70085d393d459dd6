#pragma once
// The key/value cache of a decoder, and attention of one query against it.
// A slot holds one past token's keys and values for every layer; slots stay in token order, and a
// pruned token's slot is removed (later slots move down), so it is never read again.
// With split quantization (SpAtten's progressive quantization) each key/value row of one head is
// also stored as integer codes with one fp32 scale: the codes' most significant bits are read
// first, the least significant bits only when the policy asks for them. Optionally (not in
// SpAtten) rows are rotated before they are quantized, see SplitQuantization::rotate.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "kernels/gemm.h"
#include "tensor/tensor.h"

namespace sieve {

class GenerationPolicy;  // policies/generation_policy.h

// Per-row quantization to msb + lsb bits; code = (msb << lsb_bits) + lsb with 0 <= lsb < 2^lsb_bits.
// SpAtten's reading (the defaults): symmetric, code = round(x / scale), |code| <= 2^(b-1) - 1,
// scale = max|x| / (2^(b-1) - 1), one fp32 scale per row of a head.
struct SplitQuantization {
  int msb_bits = 4;
  int lsb_bits = 4;
  // Rotate each head's key and value rows by a fixed random orthogonal matrix (signs, then a
  // normalized Walsh-Hadamard transform) before quantizing, as QuaRot does: a few outlier channels
  // (common in keys) no longer set the scale of the whole row, so low-bit codes lose much less.
  // Scores are unchanged (the query is rotated the same way) and the attention output is rotated
  // back. Needs a power-of-two head dimension. Off by default: SpAtten quantizes rows as they are.
  bool rotate = false;
  // Elements per scale; 0 = the whole row of a head with an fp32 scale (SpAtten). A group size
  // stores one fp16 scale per group, as llama.cpp's q4_0/q8_0 blocks do (32 elements).
  int group = 0;
  // Use all 2^b codes, as llama.cpp's q4_0 does: scale = (the value of largest magnitude) / -2^(b-1),
  // codes in [-2^(b-1), 2^(b-1) - 1]; one level more than the symmetric codes.
  bool full_range = false;
  // Non-uniform levels (NF4-like; not SpAtten's, not llama.cpp's): the 2^b levels are fit by
  // Lloyd-Max to groups of Gaussian values divided by the group's value of largest magnitude (what
  // rotated rows look like), with one level pinned at -1 so that value stays exact, as q4_0's rule
  // keeps it. Same bytes as uniform codes: a b-bit index per element and the group's scale. Needs
  // lsb_bits = 0: the MSBs of an index into a table are not a coarser value.
  bool normal_levels = false;
  // The rows of the first `sink_tokens` positions are stored at kSinkBits (fp16-like precision) and
  // read, and counted, at that width. Not SpAtten's: the first tokens of a sequence draw a large
  // share of every head's attention (attention sinks, StreamingLLM; IntactKV keeps them lossless),
  // so their quantization error reaches every later token.
  int sink_tokens = 0;
  static constexpr int kSinkBits = 16;
  // Layers whose codes get one more MSB than msb_bits (wider_layers[l] != 0), so a budget of bits
  // per element can be spent where the model is most sensitive. Not SpAtten's; empty = none.
  std::vector<uint8_t> wider_layers;
  // This format as layer `layer` stores it (msb_bits + 1 in a wider layer).
  SplitQuantization for_layer(int layer) const;

  int total_bits() const { return msb_bits + lsb_bits; }
  int32_t max_code() const { return (1 << (total_bits() - 1)) - 1; }
  // Elements per scale in a row of `row` elements, and the bytes of one scale.
  int64_t group_size(int64_t row) const { return group > 0 ? group : row; }
  int scale_bytes() const { return group > 0 ? 2 : 4; }
  // Quantizes n values (one group) into codes; returns the scale.
  float quantize(const float* x, int64_t n, int16_t* codes) const;
  // The value of a code from its MSBs alone: the middle of the range its LSBs could span.
  float msb_value(int16_t code, float scale) const;
  int32_t msb_midpoint() const { return lsb_bits > 0 ? 1 << (lsb_bits - 1) : 0; }  // in code units
  static float full_value(int16_t code, float scale) { return static_cast<float>(code) * scale; }
};

// The levels of SplitQuantization::normal_levels for 2^bits levels and groups of `group` values,
// ascending, first -1, stored on a grid of 1 / kNormalLevelGrid so that a cached code can hold its
// level's value (level * grid) and every kernel reads it as an integer code times a scale (the
// scale divided by the grid): the table lookup is done once, when the row is quantized. Fit once
// per (bits, group) from a fixed seed, so every cache and run gets the same table.
inline constexpr int32_t kNormalLevelGrid = 4096;
const std::vector<int16_t>& normal_level_grid(int bits, int64_t group);

// The rotation of SplitQuantization::rotate on one row of n (a power of two) values, in place;
// inverse_hadamard_rotate undoes it.
void hadamard_rotate(float* x, int64_t n);
void inverse_hadamard_rotate(float* x, int64_t n);

// What attention read from the cache, for the KV-bytes-per-token statistic (generation steps only).
struct KvTraffic {
  double key_bytes = 0;
  double value_bytes = 0;
  double key_elements = 0;   // key elements read (each counted once)
  double key_bits = 0;       // bits fetched for them (MSBs, plus LSBs when refetched)
  double refetched_key_elements = 0;  // of key_elements, those whose LSBs were fetched too
  double value_elements = 0; // value elements read (after the policy's value selection)
  int64_t head_reads = 0;    // (step, layer, head) attention computations
  int64_t lsb_refetches = 0; // of which fetched the LSBs too

  void add(const KvTraffic& other);
  double bytes() const { return key_bytes + value_bytes; }
};

class KvCache {
 public:
  KvCache() = default;
  KvCache(int layers, int heads, int64_t head_dim, int64_t capacity, std::optional<SplitQuantization> quantization);

  int64_t size() const { return size_; }                // tokens cached now
  int64_t tokens_seen() const { return tokens_seen_; }  // tokens ever added: the next position
  int64_t capacity() const { return capacity_; }
  int heads() const { return heads_; }
  int64_t head_dim() const { return head_dim_; }
  const std::optional<SplitQuantization>& quantization() const { return quantization_; }
  // The format of one layer's codes (SplitQuantization::for_layer); only with quantization.
  const SplitQuantization& layer_quantization(int layer) const { return layer_formats_[static_cast<size_t>(layer)]; }
  // The token position of each slot.
  std::span<const int32_t> positions() const { return {positions_.data(), static_cast<size_t>(size_)}; }

  // Key/value row of a slot in one layer: [heads * head_dim]; slots size()..size()+n-1 are
  // written by the forward pass before commit(n).
  float* key(int layer, int64_t slot) { return layers_[static_cast<size_t>(layer)].keys.row(slot); }
  float* value(int layer, int64_t slot) { return layers_[static_cast<size_t>(layer)].values.row(slot); }
  const float* key(int layer, int64_t slot) const { return layers_[static_cast<size_t>(layer)].keys.row(slot); }
  const float* value(int layer, int64_t slot) const { return layers_[static_cast<size_t>(layer)].values.row(slot); }
  // With quantization: codes [heads * head_dim] and scales [heads * scale_groups()] of a slot
  // (scales of one head and group are scale_stride() apart from slot to slot).
  const int16_t* key_codes(int layer, int64_t slot) const;
  const int16_t* value_codes(int layer, int64_t slot) const;
  const float& key_scale(int layer, int64_t slot, int head, int group = 0) const;
  const float& value_scale(int layer, int64_t slot, int head, int group = 0) const;
  int scale_groups() const { return scale_groups_; }  // scales per row of a head
  int64_t scale_stride() const { return static_cast<int64_t>(heads_) * scale_groups_; }

  // How many of the first `visible` slots (written ones after size() included) hold sink rows.
  int64_t sink_slots(int64_t visible) const;
  // Quantizes the written rows (when quantized) of slots [size(), size() + n) in one layer.
  void quantize_new_rows(int layer, int64_t n);
  // The n slots written after size() become part of the cache.
  void commit(int64_t n);
  // Keeps only these slots (ascending), in order; the others are gone for good.
  void keep_slots(std::span<const int32_t> slots);

 private:
  struct Layer {
    Tensor keys, values;                      // [capacity, heads * head_dim]
    std::vector<int16_t> key_codes, value_codes;  // [capacity, heads * head_dim] when quantized
    std::vector<float> key_scales, value_scales;  // [capacity, heads * scale_groups]
  };
  int heads_ = 0, scale_groups_ = 1;
  int64_t head_dim_ = 0, capacity_ = 0, size_ = 0, tokens_seen_ = 0;
  std::optional<SplitQuantization> quantization_;
  std::vector<SplitQuantization> layer_formats_;  // per layer, when quantized
  std::vector<Layer> layers_;
  std::vector<int32_t> positions_;
};

// Whether attention reads the cache as the prompt's summarization (fp32, every value) or as a
// generation step (the policy's precision and value selection apply, and traffic is counted).
enum class DecodeStage { Prompt, Generation };

// Attention of the n newest tokens of a layer (their keys and values already written to slots
// size()..size()+n-1) over the cache, causally. queries: [n, query_heads * head_dim]; query head h
// reads KV head h / (query_heads / kv heads) (grouped-query attention; equal counts for GPT-2).
// context receives [n, query_heads * head_dim]. The prompt stage runs as GEMMs per head (fp32,
// every value read); the generation stage runs, per query, the group of query heads sharing a KV
// head together: one GEMM over an fp32 cache, or one pass over a quantized cache's codes (scores
// from the keys' MSBs first, every bit for a head whose probabilities the policy distrusts; the
// policy's value selection per head). It counts KV traffic per KV head: its keys once for the
// group, its values as the union of the rows the group's queries read. The policy then observes,
// per query head, the probability each visible slot received, summed over the new queries.
void attend_new_tokens(const KvCache& cache, int layer, MatrixRef queries, int64_t n, int query_heads,
                       GenerationPolicy& policy, DecodeStage stage, float* context, int64_t context_stride,
                       KvTraffic& traffic);

}  // namespace sieve
