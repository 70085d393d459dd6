#include "policies/policy_spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

#include "attention/cta.h"
#include "policies/cascade_pruner.h"
#include "policies/early_exit.h"
#include "policies/generation_policy.h"
#include "policies/threshold_pruner.h"
#include "util/error.h"

namespace sieve {

const char* const kPolicySpecHelp =
    "dense | spatten:tokens=R[,heads=R][,start=L][,at=ffn|next] | spatten:token_ratios=r/r/..[,head_ratios=r/r/..] | "
    "ltp:final=T[,at=ffn|next] | ltp:thresholds=t/t/.. | exit:tau=U | cta:w=W[,l=6][,seed=S][,layers=a-b/c][,share=head|layer] | "
    "blockskim:threshold=P[,layers=a-b/c][,at=next|ffn] (QA models with <model>/blockskim/); "
    "compose with '+'";

const char* const kGenerationSpecHelp =
    "dense | kv_prune:keep=R[,recent=N] | value_prune:k=K[,renorm=0|1] | progressive[:msb=M,lsb=L,threshold=T,rotate=0|1,group=G,fullrange=0|1,levels=uniform|normal,sinks=N,wider=a-b/c]; "
    "compose with '+'";

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t end = s.find(sep, begin);
    parts.push_back(s.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) return parts;
    begin = end + 1;
  }
}

double parse_number(const std::string& text, const std::string& what) {
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty())
    throw Error("policy: " + what + " '" + text + "' is not a number");
  return v;
}

// A whole number in [low, high]. Checked as a double first: casting 1e308 to int is undefined,
// and 2.7 must not quietly become 2.
int parse_integer(const std::string& text, const std::string& what, int low, int high) {
  const double v = parse_number(text, what);
  if (v != std::floor(v) || v < low || v > high)
    throw Error("policy: " + what + "=" + text + " must be an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "]");
  return static_cast<int>(v);
}

std::vector<double> parse_list(const std::string& text, const std::string& what, int expected) {
  std::vector<double> values;
  for (const auto& part : split(text, '/')) values.push_back(parse_number(part, what));
  if (static_cast<int>(values.size()) != expected)
    throw Error("policy: " + what + " has " + std::to_string(values.size()) + " values but the model has " +
                std::to_string(expected) + " layers");
  return values;
}

// "name:key=value,key=value" -> name and the key/value map; keys outside `allowed` are errors.
std::pair<std::string, std::map<std::string, std::string>> parse_one(const std::string& text, const std::map<std::string, std::set<std::string>>& allowed,
                                                                    const char* help = kPolicySpecHelp) {
  const size_t colon = text.find(':');
  const std::string name = text.substr(0, colon);
  const auto known = allowed.find(name);
  if (known == allowed.end()) throw Error("policy: unknown policy '" + name + "' (known: " + help + ")");
  std::map<std::string, std::string> params;
  if (colon != std::string::npos) {
    for (const auto& kv : split(text.substr(colon + 1), ',')) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) throw Error("policy: expected key=value in '" + kv + "' of '" + text + "'");
      const std::string key = kv.substr(0, eq);
      if (!known->second.count(key)) throw Error("policy: unknown option '" + key + "' for " + name);
      if (!params.emplace(key, kv.substr(eq + 1)).second) throw Error("policy: option '" + key + "' given twice");
    }
  }
  return {name, params};
}

// "2-5", "0/3/5", "0-1/4": 0-based layer indices -> a per-layer mask.
std::vector<uint8_t> parse_layer_set(const std::string& text, int layers, const std::string& what = "cta layers") {
  std::vector<uint8_t> on(static_cast<size_t>(layers), 0);
  for (const auto& part : split(text, '/')) {
    const size_t dash = part.find('-');
    auto index = [&](const std::string& t) { return parse_integer(t, what, 0, layers - 1); };
    const int a = index(part.substr(0, dash));
    const int b = dash == std::string::npos ? a : index(part.substr(dash + 1));
    if (b < a) throw Error("policy: " + what + "=" + text + ": empty range " + part);
    for (int i = a; i <= b; ++i) on[static_cast<size_t>(i)] = 1;
  }
  return on;
}

PrunePoint parse_point(const std::map<std::string, std::string>& p) {
  const auto it = p.find("at");
  if (it == p.end() || it->second == "ffn") return PrunePoint::BeforeFfn;
  if (it->second == "next") return PrunePoint::NextLayer;
  throw Error("policy: at=" + it->second + " (expected ffn or next)");
}

}  // namespace

std::unique_ptr<PolicyChain> parse_policy_spec(const std::string& spec, const ModelConfig& config, const ExitHeads* exits,
                                               const BlockSkimModules* block_skim) {
  const int layers = static_cast<int>(config.num_hidden_layers);
  const std::map<std::string, std::set<std::string>> allowed{
      {"dense", {}},
      {"spatten", {"tokens", "heads", "start", "at", "token_ratios", "head_ratios"}},
      {"ltp", {"final", "thresholds", "at"}},
      {"exit", {"tau"}},
      {"cta", {"w", "l", "seed", "layers", "share"}},
      {"blockskim", {"threshold", "layers", "at"}},
  };
  auto chain = std::make_unique<PolicyChain>();
  bool seen_cta = false;
  if (spec.empty()) throw Error("policy: empty spec (use 'dense' for no pruning)");
  for (const auto& part : split(spec, '+')) {
    // Not a structured binding: the lambdas below capture p, which clang before 16 refuses for bindings.
    const auto parsed = parse_one(part, allowed);
    const std::string& name = parsed.first;
    const std::map<std::string, std::string>& p = parsed.second;
    if (name == "dense") continue;
    if (name == "spatten") {
      const int start = p.count("start") ? parse_integer(p.at("start"), "start", 0, layers - 1) : 1;
      if (p.count("tokens") && p.count("token_ratios")) throw Error("policy: give tokens or token_ratios, not both");
      if (p.count("heads") && p.count("head_ratios")) throw Error("policy: give heads or head_ratios, not both");
      auto schedule = [&](const char* ratio_key, const char* list_key) {
        // Name the option in range errors: "keep ratio 1.5 is outside [0, 1]" alone does not say which.
        const char* key = p.count(list_key) ? list_key : ratio_key;
        try {
          if (p.count(list_key)) return KeepSchedule::explicit_ratios(parse_list(p.at(list_key), list_key, layers));
          if (p.count(ratio_key)) return KeepSchedule::progressive(parse_number(p.at(ratio_key), ratio_key), std::min(start, layers - 1), layers);
        } catch (const Error& e) {
          const std::string what = e.what();
          if (what.rfind("policy:", 0) == 0) throw;
          throw Error("policy: spatten " + std::string(key) + "=" + p.at(key) + ": " + what);
        }
        return KeepSchedule();
      };
      CascadePruner::Options o{schedule("tokens", "token_ratios"), schedule("heads", "head_ratios"), parse_point(p)};
      chain->add(std::make_unique<CascadePruner>(std::move(o)));
    } else if (name == "exit") {
      if (!exits) throw Error("policy: exit needs exit classifiers in <model>/exits/ (make them with tools/train_exits.py)");
      if (!p.count("tau")) throw Error("policy: exit needs tau=T");
      const double tau = parse_number(p.at("tau"), "tau");
      if (!(tau >= 0.0 && tau <= 1.0)) throw Error("policy: exit tau=" + p.at("tau") + " is outside [0, 1]");
      chain->add(std::make_unique<EarlyExitPolicy>(*exits, tau));
    } else if (name == "cta") {
      if (seen_cta) throw Error("policy: cta given twice (one attention backend per model; use layers= to choose layers)");
      seen_cta = true;
      if (!p.count("w")) throw Error("policy: cta needs w=W (the LSH bucket width, > 0)");
      const double w = parse_number(p.at("w"), "cta w");
      if (!(w > 0.0) || !std::isfinite(w)) throw Error("policy: cta w=" + p.at("w") + " must be a positive number");
      const int l = p.count("l") ? parse_integer(p.at("l"), "cta l", 1, 64) : 6;
      const double seed = p.count("seed") ? parse_number(p.at("seed"), "cta seed") : 0.0;
      if (seed != std::floor(seed) || seed < 0 || seed > 9.0e15) throw Error("policy: cta seed=" + p.at("seed") + " must be a non-negative integer");
      std::vector<uint8_t> on = p.count("layers") ? parse_layer_set(p.at("layers"), layers)
                                                  : std::vector<uint8_t>(static_cast<size_t>(layers), 1);
      const std::string share = p.count("share") ? p.at("share") : "head";
      if (share != "head" && share != "layer") throw Error("policy: cta share=" + share + " (expected head or layer)");
      chain->add(std::make_unique<CtaBackend>(CtaConfig::make(w, l, static_cast<uint64_t>(seed), std::move(on),
                                                              config.hidden_size, static_cast<int>(config.num_attention_heads),
                                                              share == "layer")));
    } else if (name == "blockskim") {
      if (!block_skim) throw Error("policy: blockskim needs Block-Skim predictors in <model>/blockskim/ (make them with tools/train_qa.py)");
      const double threshold = p.count("threshold") ? parse_number(p.at("threshold"), "blockskim threshold") : 0.5;
      if (!(threshold >= 0.0 && threshold <= 1.0)) throw Error("policy: blockskim threshold=" + p.at("threshold") + " is outside [0, 1]");
      std::vector<uint8_t> on = p.count("layers") ? parse_layer_set(p.at("layers"), layers, "blockskim layers")
                                                  : std::vector<uint8_t>(static_cast<size_t>(layers), 1);
      if (!p.count("layers")) on.back() = 0;  // skimming after the last layer saves nothing
      const PrunePoint point = p.count("at") ? parse_point(p) : PrunePoint::NextLayer;  // the released code: from the next layer
      chain->add(std::make_unique<BlockSkimPolicy>(*block_skim, threshold, std::move(on), point));
    } else if (name == "ltp") {
      if (p.count("final") == p.count("thresholds")) throw Error("policy: ltp needs exactly one of final=T or thresholds=t/t/...");
      std::vector<double> t = p.count("final") ? ThresholdPruner::linear_thresholds(parse_number(p.at("final"), "final"), layers)
                                               : parse_list(p.at("thresholds"), "thresholds", layers);
      chain->add(std::make_unique<ThresholdPruner>(std::move(t), parse_point(p)));
    }
  }
  return chain;
}

std::unique_ptr<GenerationPolicyChain> parse_generation_spec(const std::string& spec) {
  const std::map<std::string, std::set<std::string>> allowed{
      {"dense", {}},
      {"kv_prune", {"keep", "recent"}},
      {"value_prune", {"k", "renorm"}},
      {"progressive", {"msb", "lsb", "threshold", "rotate", "group", "fullrange", "levels", "sinks", "wider"}},
  };
  // An integer option in [low, high], or `fallback` when absent.
  auto integer = [](const std::map<std::string, std::string>& p, const std::string& key, int fallback, int low, int high) {
    return p.count(key) ? parse_integer(p.at(key), key, low, high) : fallback;
  };
  auto fraction = [](const std::map<std::string, std::string>& p, const std::string& key, bool exclude_zero) {
    const double v = parse_number(p.at(key), key);
    if (!(v >= 0.0 && v <= 1.0) || (exclude_zero && v == 0.0))
      throw Error("policy: " + key + "=" + p.at(key) + " is outside " + (exclude_zero ? "(0, 1]" : "[0, 1]"));
    return v;
  };
  if (spec.empty()) throw Error("policy: empty spec (use 'dense' for no pruning)");
  auto chain = std::make_unique<GenerationPolicyChain>();
  std::set<std::string> seen;
  for (const auto& part : split(spec, '+')) {
    const auto [name, p] = parse_one(part, allowed, kGenerationSpecHelp);
    if (name != "dense" && !seen.insert(name).second) throw Error("policy: " + name + " given twice");
    if (name == "kv_prune") {
      if (!p.count("keep")) throw Error("policy: kv_prune needs keep=R (the fraction of tokens kept, in (0, 1])");
      chain->add(std::make_unique<KvCachePruner>(fraction(p, "keep", true), integer(p, "recent", 1, 0, 1 << 20)));
    } else if (name == "value_prune") {
      if (!p.count("k")) throw Error("policy: value_prune needs k=K (values read per head and step, >= 1)");
      chain->add(std::make_unique<LocalValuePruner>(integer(p, "k", 0, 1, 1 << 24), integer(p, "renorm", 0, 0, 1) == 1));
    } else if (name == "progressive") {
      SplitQuantization format;
      format.msb_bits = integer(p, "msb", 4, 1, 8);
      format.lsb_bits = integer(p, "lsb", 4, 0, 8);
      format.rotate = integer(p, "rotate", 0, 0, 1) == 1;
      format.group = integer(p, "group", 0, 0, 4096);
      format.full_range = integer(p, "fullrange", 0, 0, 1) == 1;
      // A signed code needs a sign bit and a magnitude bit: with 1 bit the largest code is 0 and
      // the scale divides by it.
      if (format.total_bits() < 2) throw Error("policy: progressive needs msb + lsb >= 2 bits, got " + std::to_string(format.total_bits()));
      const std::string levels = p.count("levels") ? p.at("levels") : "uniform";
      if (levels != "uniform" && levels != "normal")
        throw Error("policy: progressive levels must be uniform or normal, got '" + levels + "'");
      format.normal_levels = levels == "normal";
      format.sink_tokens = integer(p, "sinks", 0, 0, 1 << 20);
      // The model's depth is not known here: the cache refuses layers the model does not have.
      if (p.count("wider")) format.wider_layers = parse_layer_set(p.at("wider"), 1024, "progressive wider");
      if (format.msb_bits + 1 > 8 && std::find(format.wider_layers.begin(), format.wider_layers.end(), 1) != format.wider_layers.end())
        throw Error("policy: progressive wider= needs msb <= 7");
      if (format.normal_levels && (format.lsb_bits != 0 || format.full_range))
        throw Error("policy: progressive levels=normal needs lsb=0 (its codes index a table, they have no MSB part) "
                    "and sets its own range (no fullrange=1)");
      const double threshold = p.count("threshold") ? fraction(p, "threshold", false) : 0.1;
      chain->add(std::make_unique<ProgressiveQuantization>(format, threshold));
    }
  }
  return chain;
}

}  // namespace sieve
