#include "sim/workload_trace.h"

#include <cmath>

#include "util/error.h"
#include "util/json_file.h"

namespace sieve::sim {

using nlohmann::json;

namespace {

// A trace of SST-2's validation split at 6 layers is ~0.5 MB; a million inputs of 24 layers fit.
constexpr uint64_t kMaxTraceBytes = 512ull << 20;
constexpr int64_t kMaxSettings = 10'000;
constexpr int64_t kMaxInputs = 10'000'000;

[[noreturn]] void fail(const std::string& source, const std::string& what) { throw Error(source + ": " + what); }

const json& member(const json& j, const char* key, const std::string& source) {
  if (!j.is_object() || !j.contains(key)) fail(source, std::string("missing \"") + key + "\"");
  return j.at(key);
}

int64_t integer(const json& j, const char* key, int64_t low, int64_t high, const std::string& source) {
  return json_integer(member(j, key, source), low, high, source + ": \"" + key + "\"");
}

double number(const json& v, double high, const std::string& what) {
  if (!v.is_number()) throw Error(what + " must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < 0 || x > high) throw Error(what + " must be a finite number from 0 to " + std::to_string(high));
  return x;
}

std::string text(const json& j, const char* key, const std::string& source) {
  const json& v = member(j, key, source);
  if (!v.is_string()) fail(source, std::string("\"") + key + "\" must be a string");
  return v.get<std::string>();
}

const json& array(const json& j, const char* key, int64_t max_size, const std::string& source) {
  const json& v = member(j, key, source);
  if (!v.is_array()) fail(source, std::string("\"") + key + "\" must be an array");
  if (static_cast<int64_t>(v.size()) > max_size) fail(source, std::string("\"") + key + "\" has too many entries");
  return v;
}

// One layer record: [tokens, heads, cta_heads, k0, k1, k2] (k sums over the CTA heads).
LayerWork layer_work(const json& v, const EncoderShape& shape, const std::string& where) {
  if (!v.is_array() || v.size() != 6) throw Error(where + " must be [tokens, heads, cta_heads, k0, k1, k2]");
  LayerWork w;
  w.tokens = static_cast<int32_t>(json_integer(v[0], 0, shape.max_tokens, where + " tokens"));
  w.heads = static_cast<int32_t>(json_integer(v[1], 0, shape.heads, where + " heads"));
  w.cta_heads = static_cast<int32_t>(json_integer(v[2], 0, w.heads, where + " cta_heads"));
  // Each CTA head has at most `tokens` clusters per level.
  const double most = static_cast<double>(w.tokens) * w.cta_heads;
  w.cta_k0 = number(v[3], most, where + " k0");
  w.cta_k1 = number(v[4], most, where + " k1");
  w.cta_k2 = number(v[5], most, where + " k2");
  if (w.tokens == 0 && w.heads != 0) throw Error(where + ": heads without tokens");
  return w;
}

}  // namespace

json trace_to_json(const WorkloadTrace& trace) {
  json j;
  j["source"] = trace.source;
  if (trace.kind == WorkloadTrace::Kind::Encoder) {
    const EncoderShape& s = trace.encoder;
    j["kind"] = "encoder";
    j["shape"] = {{"layers", s.layers}, {"heads", s.heads}, {"hidden", s.hidden}, {"head_dim", s.head_dim}, {"max_tokens", s.max_tokens}};
    json settings = json::array();
    for (const EncoderSetting& setting : trace.encoder_settings) {
      json inputs = json::array();
      for (const auto& layers : setting.inputs) {
        json row = json::array();
        for (const LayerWork& w : layers) row.push_back({w.tokens, w.heads, w.cta_heads, w.cta_k0, w.cta_k1, w.cta_k2});
        inputs.push_back(std::move(row));
      }
      settings.push_back({{"spec", setting.spec}, {"inputs", std::move(inputs)}});
    }
    j["settings"] = std::move(settings);
  } else {
    const GenerationShape& s = trace.decoder;
    j["kind"] = "decoder";
    j["shape"] = {{"layers", s.layers}, {"kv_heads", s.kv_heads}, {"query_heads", s.query_heads}, {"head_dim", s.head_dim}};
    json settings = json::array();
    for (const DecoderSetting& setting : trace.decoder_settings) {
      const KvTraffic& t = setting.traffic;
      settings.push_back({{"spec", setting.spec}, {"steps", setting.steps}, {"perplexity", setting.perplexity},
                          {"key_elements", t.key_elements}, {"key_bits", t.key_bits},
                          {"refetched_key_elements", t.refetched_key_elements}, {"key_bytes", t.key_bytes},
                          {"value_elements", t.value_elements}, {"value_bytes", t.value_bytes},
                          {"head_reads", t.head_reads}, {"lsb_refetches", t.lsb_refetches}});
    }
    j["settings"] = std::move(settings);
  }
  return j;
}

WorkloadTrace trace_from_json(const json& j, const std::string& source) {
  WorkloadTrace trace;
  const std::string kind = text(j, "kind", source);
  if (j.contains("source")) {
    if (!j["source"].is_string()) fail(source, "\"source\" must be a string");
    trace.source = j["source"].get<std::string>();
  }
  const json& shape = member(j, "shape", source);
  const json& settings = array(j, "settings", kMaxSettings, source);
  if (settings.empty()) fail(source, "no settings");
  if (kind == "encoder") {
    trace.kind = WorkloadTrace::Kind::Encoder;
    EncoderShape& s = trace.encoder;
    s.layers = static_cast<int>(integer(shape, "layers", 1, 1024, source));
    s.heads = static_cast<int>(integer(shape, "heads", 1, 1024, source));
    s.hidden = integer(shape, "hidden", 1, 1 << 20, source);
    s.head_dim = integer(shape, "head_dim", 1, 1 << 16, source);
    s.max_tokens = integer(shape, "max_tokens", 1, 1 << 20, source);
    int64_t total_inputs = 0;
    for (size_t si = 0; si < settings.size(); ++si) {
      const std::string where = source + ": setting " + std::to_string(si);
      EncoderSetting setting;
      setting.spec = text(settings[si], "spec", where);
      const json& inputs = array(settings[si], "inputs", kMaxInputs, where);
      total_inputs += static_cast<int64_t>(inputs.size());
      if (total_inputs > kMaxInputs) fail(source, "more than " + std::to_string(kMaxInputs) + " inputs in all");
      setting.inputs.reserve(inputs.size());
      for (size_t i = 0; i < inputs.size(); ++i) {
        const json& layers = inputs[i];
        const std::string at = where + " input " + std::to_string(i);
        if (!layers.is_array() || static_cast<int64_t>(layers.size()) != s.layers)
          fail(at, "must list " + std::to_string(s.layers) + " layers");
        std::vector<LayerWork> row;
        row.reserve(layers.size());
        for (size_t l = 0; l < layers.size(); ++l) row.push_back(layer_work(layers[l], s, at + " layer " + std::to_string(l)));
        if (row.front().tokens == 0) fail(at, "has no tokens in its first layer");
        for (size_t l = 1; l < row.size(); ++l)
          if (row[l].tokens > row[l - 1].tokens) fail(at, "gains tokens from one layer to the next");
        setting.inputs.push_back(std::move(row));
      }
      trace.encoder_settings.push_back(std::move(setting));
    }
  } else if (kind == "decoder") {
    trace.kind = WorkloadTrace::Kind::Decoder;
    GenerationShape& s = trace.decoder;
    s.layers = static_cast<int>(integer(shape, "layers", 1, 1024, source));
    s.kv_heads = static_cast<int>(integer(shape, "kv_heads", 1, 1024, source));
    s.query_heads = static_cast<int>(integer(shape, "query_heads", s.kv_heads, 1024, source));
    if (s.query_heads % s.kv_heads != 0) fail(source, "query_heads must be a multiple of kv_heads");
    s.head_dim = integer(shape, "head_dim", 1, 1 << 16, source);
    constexpr double kMaxCount = 1e18;
    for (size_t si = 0; si < settings.size(); ++si) {
      const std::string where = source + ": setting " + std::to_string(si);
      const json& v = settings[si];
      DecoderSetting setting;
      setting.spec = text(v, "spec", where);
      setting.steps = integer(v, "steps", 1, int64_t{1} << 40, where);
      setting.perplexity = number(member(v, "perplexity", where), kMaxCount, where + ": perplexity");
      KvTraffic& t = setting.traffic;
      const auto count = [&](const char* key) { return number(member(v, key, where), kMaxCount, where + ": " + key); };
      t.key_elements = count("key_elements");
      t.key_bits = count("key_bits");
      t.refetched_key_elements = count("refetched_key_elements");
      t.key_bytes = count("key_bytes");
      t.value_elements = count("value_elements");
      t.value_bytes = count("value_bytes");
      t.head_reads = integer(v, "head_reads", 0, int64_t{1} << 50, where);
      t.lsb_refetches = integer(v, "lsb_refetches", 0, t.head_reads, where);
      if (t.key_elements <= 0) fail(where, "read no keys");
      if (t.refetched_key_elements > t.key_elements) fail(where, "refetched more keys than it read");
      if (t.key_bits > 32.0 * t.key_elements) fail(where, "fetched more than 32 bits per key element");
      trace.decoder_settings.push_back(std::move(setting));
    }
  } else {
    fail(source, "\"kind\" must be \"encoder\" or \"decoder\", not \"" + kind + "\"");
  }
  return trace;
}

WorkloadTrace read_trace(const std::filesystem::path& path) {
  return trace_from_json(read_json_file(path, kMaxTraceBytes), path.string());
}

}  // namespace sieve::sim
