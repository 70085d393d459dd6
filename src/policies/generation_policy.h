#pragma once
// Generation-stage policies (SpAtten, the GPT-2 generation stage): one interface that the one
// decoding loop (model/gpt2_decoder) calls at fixed points, and policies that compose:
//   kv_prune:keep=R[,recent=N]   cascade KV-cache token pruning. Importance of a cached token =
//                                attention probability it received, summed over heads, layers and
//                                steps (the prompt's queries included). After the prompt and after
//                                every token the cache keeps ceil(R * tokens seen) tokens: the N
//                                newest (default 1: a new token has had no time to gather
//                                importance) and the top-k by importance (quick-select). Pruned
//                                tokens are never attended again, in any layer.
//   value_prune:k=K[,renorm=0|1] local value pruning: per step, layer and head only the values of
//                                the K largest probabilities are read. renorm=0 (default) uses the
//                                kept probabilities as they are (the dropped ones count as zero),
//                                which is what reading only their V rows means; renorm=1 rescales
//                                them to sum to 1.
//   progressive[:msb=M,lsb=L,threshold=T,rotate=0|1,group=G,fullrange=0|1,levels=uniform|normal,sinks=N,
//                                wider=a-b/c] (defaults 4, 4, 0.1, 0, 0, 0, uniform, 0, none)
//                                progressive quantization: K and V cached as (M+L)-bit symmetric
//                                per-row codes; a step's probabilities are computed from the keys'
//                                M MSBs, and only when their maximum is below T are the L LSBs
//                                fetched and the probabilities recomputed. V is read at M+L bits.
//                                Not SpAtten's, off by default (SplitQuantization): rotate=1
//                                rotates rows before quantizing them, group=G keeps one fp16
//                                scale per G elements, fullrange=1 uses all 2^(M+L) codes,
//                                levels=normal (with lsb=0) indexes 2^M Lloyd-Max levels fit
//                                to Gaussian groups instead of evenly spaced ones, sinks=N keeps
//                                the first N tokens' rows at 16 bits, wider= gives the listed
//                                layers (0-based) one more MSB.
//   dense                        none of these; `a+b` composes. Parsed by parse_generation_spec
//                                (policies/policy_spec.h).
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/kv_cache.h"

namespace sieve {

class GenerationPolicy {
 public:
  virtual ~GenerationPolicy() = default;

  // A new sequence starts: forget accumulated state.
  virtual void reset() {}
  // How the cache stores keys and values besides fp32 (asked once, when the cache is made).
  virtual std::optional<SplitQuantization> kv_quantization() const { return std::nullopt; }
  // Generation step, quantized cache: true = these probabilities (from the keys' MSBs) are not
  // trusted; fetch the LSBs and recompute.
  virtual bool needs_key_lsbs(std::span<const float> /*msb_probabilities*/) const { return false; }
  // Generation step: narrows `rows` (ascending cache slots whose values are read) and may rescale
  // the probabilities. Called concurrently for different heads: must not change the policy.
  virtual void select_values(std::span<float> /*probabilities*/, std::vector<int32_t>& /*rows*/) const {}
  // The final probabilities of one query of one (layer, head) over the visible slots, in both stages.
  virtual void observe_attention(std::span<const float> /*probabilities*/) {}
  // Whether observe_attention does anything: if not, attention does not sum the probabilities
  // (at a 4k context that is 9 heads x 4k floats per layer and step, zeroed and added up for nothing).
  virtual bool observes_attention() const { return false; }
  // After the prompt and after every generated token: narrows `keep` (ascending slots of `cache`).
  virtual void choose_cached(const KvCache& /*cache*/, std::vector<int32_t>& /*keep*/) {}

  virtual std::string describe() const = 0;
};

// Policies applied together, in spec order; empty = dense.
class GenerationPolicyChain final : public GenerationPolicy {
 public:
  void add(std::unique_ptr<GenerationPolicy> policy) { policies_.push_back(std::move(policy)); }
  bool empty() const { return policies_.empty(); }

  void reset() override;
  std::optional<SplitQuantization> kv_quantization() const override;
  bool needs_key_lsbs(std::span<const float> msb_probabilities) const override;
  void select_values(std::span<float> probabilities, std::vector<int32_t>& rows) const override;
  void observe_attention(std::span<const float> probabilities) override;
  bool observes_attention() const override;
  void choose_cached(const KvCache& cache, std::vector<int32_t>& keep) override;
  std::string describe() const override;

 private:
  std::vector<std::unique_ptr<GenerationPolicy>> policies_;
};

class KvCachePruner final : public GenerationPolicy {
 public:
  KvCachePruner(double keep_ratio, int recent) : keep_ratio_(keep_ratio), recent_(recent) {}
  void reset() override { importance_.clear(); }
  void observe_attention(std::span<const float> probabilities) override;
  bool observes_attention() const override { return true; }
  void choose_cached(const KvCache& cache, std::vector<int32_t>& keep) override;
  std::string describe() const override;
  std::span<const float> importance() const { return importance_; }  // per cached slot

 private:
  double keep_ratio_;
  int recent_;
  std::vector<float> importance_;  // aligned with the cache's slots
};

class LocalValuePruner final : public GenerationPolicy {
 public:
  LocalValuePruner(int k, bool renormalize) : k_(k), renormalize_(renormalize) {}
  void select_values(std::span<float> probabilities, std::vector<int32_t>& rows) const override;
  std::string describe() const override;

 private:
  int k_;
  bool renormalize_;
};

class ProgressiveQuantization final : public GenerationPolicy {
 public:
  ProgressiveQuantization(SplitQuantization format, double threshold) : format_(format), threshold_(threshold) {}
  std::optional<SplitQuantization> kv_quantization() const override { return format_; }
  bool needs_key_lsbs(std::span<const float> msb_probabilities) const override;
  std::string describe() const override;

 private:
  SplitQuantization format_;
  double threshold_;
};

}  // namespace sieve
