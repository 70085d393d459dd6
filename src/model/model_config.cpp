#include "model/model_config.h"

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/json_file.h"

namespace sieve {

namespace {

using nlohmann::json;

// Sizes feed into index arithmetic downstream; anything above int32 is a corrupt config.
constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();

// A class name is made for every label the config declares; the largest real label sets
// (ImageNet-21k) have ~22k classes.
constexpr int64_t kMaxLabels = 1 << 20;

struct ActivationSpelling {
  std::string_view name;
  Activation activation;
};
constexpr std::array<ActivationSpelling, 4> kActivations = {{
    {"gelu", Activation::GeluErf},
    {"gelu_new", Activation::GeluTanh},
    {"gelu_pytorch_tanh", Activation::GeluTanh},
    {"relu", Activation::Relu},
}};

constexpr std::array<std::string_view, 3> kProblemTypes = {
    "regression", "single_label_classification", "multi_label_classification"};

// "a, b, c": the accepted values of a table, for error messages.
template <class Table, class Projection = std::identity>
std::string join(const Table& table, Projection name_of = {}) {
  std::string s;
  for (const auto& entry : table) s += (s.empty() ? "" : ", ") + std::string(std::invoke(name_of, entry));
  return s;
}

// A value for an error message: numbers and literals as written, anything else by its type,
// since dumping a hostile string or a deeply nested array could be huge or overflow the stack.
std::string summary(const json& value) {
  return value.is_primitive() && !value.is_string() ? value.dump() : value.type_name();
}

// Typed access to the fields of one config.json; every failure names the file and the field.
// A field set to null counts as absent, as Hugging Face writes e.g. "problem_type": null.
class FieldReader {
 public:
  FieldReader(const json& config, std::string file) : config_(config), file_(std::move(file)) {}

  [[noreturn]] void fail(std::string_view field, const std::string& problem) const {
    throw Error(file_ + ": field '" + std::string(field) + "' " + problem);
  }

  const json* find(const char* field) const {
    const auto it = config_.find(field);
    return it == config_.end() || it->is_null() ? nullptr : &*it;
  }

  const json& require(const char* field) const {
    const json* value = find(field);
    if (!value) fail(field, "is missing");
    return *value;
  }

  std::string string(const char* field, const json& value) const {
    if (!value.is_string()) fail(field, "must be a string, got " + summary(value));
    return value.get<std::string>();
  }

  int64_t integer(const char* field, const json& value, int64_t min) const {
    if (!value.is_number_integer()) fail(field, "must be an integer, got " + summary(value));
    const bool too_large = value.is_number_unsigned() ? value.get<uint64_t>() > static_cast<uint64_t>(kMaxSize)
                                                      : value.get<int64_t>() > kMaxSize;
    if (too_large) fail(field, "is too large (" + value.dump() + ")");
    const int64_t n = value.get<int64_t>();
    if (n < min) {
      fail(field, std::string(min == 1 ? "must be positive" : "must not be negative") + ", got " +
                      std::to_string(n));
    }
    return n;
  }

  int64_t positive(const char* field) const { return integer(field, require(field), 1); }

  int64_t positive_or(const char* field, int64_t fallback) const {
    const json* value = find(field);
    return value ? integer(field, *value, 1) : fallback;
  }

 private:
  const json& config_;
  std::string file_;
};

Activation parse_activation(const FieldReader& reader) {
  const json* value = reader.find("hidden_act");
  if (!value) return Activation::GeluErf;  // Hugging Face's BERT default
  const std::string name = reader.string("hidden_act", *value);
  for (const ActivationSpelling& s : kActivations) {
    if (s.name == name) return s.activation;
  }
  reader.fail("hidden_act", "has unsupported value '" + name +
                                "' (supported: " + join(kActivations, &ActivationSpelling::name) + ")");
}

std::vector<std::string> parse_architectures(const FieldReader& reader) {
  std::vector<std::string> result;
  if (const json* value = reader.find("architectures")) {
    if (!value->is_array()) reader.fail("architectures", "must be an array of strings");
    for (const json& name : *value) result.push_back(reader.string("architectures", name));
  }
  return result;
}

// id2label is {"0": "NEGATIVE", "1": "POSITIVE"}: its keys must be exactly 0..n-1.
std::vector<std::string> parse_labels(const FieldReader& reader) {
  const json* id2label = reader.find("id2label");
  const json* num_labels = reader.find("num_labels");
  const int64_t count = num_labels ? reader.integer("num_labels", *num_labels, 1) : 0;  // 0: not given
  if (count > kMaxLabels) {
    reader.fail("num_labels", "is " + std::to_string(count) + ", more than the " + std::to_string(kMaxLabels) +
                                  " classes Sieve allows");
  }
  if (!id2label) {
    // At most a count: name the classes the way Hugging Face does.
    std::vector<std::string> generated;
    for (int64_t i = 0; i < count; ++i) generated.push_back("LABEL_" + std::to_string(i));
    return generated;
  }
  if (!id2label->is_object()) reader.fail("id2label", "must be an object mapping class ids to names");
  std::vector<std::string> labels(id2label->size());
  std::vector<bool> seen(labels.size(), false);
  for (const auto& [key, name] : id2label->items()) {
    // At most 9 digits, so stoul cannot overflow. Keys are unique strings, yet "1" and "01" both
    // name class 1, hence `seen`.
    const bool all_digits = !key.empty() && key.size() <= 9 && key.find_first_not_of("0123456789") == std::string::npos;
    const size_t id = all_digits ? std::stoul(key) : labels.size();
    if (id >= labels.size() || seen[id]) {
      reader.fail("id2label", "keys must be the class ids 0.." + std::to_string(labels.size() - 1) +
                                  ", got '" + key + "'");
    }
    labels[id] = reader.string("id2label", name);
    seen[id] = true;
  }
  if (count != 0 && count != static_cast<int64_t>(labels.size())) {
    reader.fail("num_labels", "is " + std::to_string(count) + " but id2label has " +
                                  std::to_string(labels.size()) + " entries");
  }
  return labels;
}

std::string parse_problem_type(const FieldReader& reader) {
  const json* value = reader.find("problem_type");
  if (!value) return "";
  const std::string problem_type = reader.string("problem_type", *value);
  for (std::string_view known : kProblemTypes) {
    if (known == problem_type) return problem_type;
  }
  reader.fail("problem_type", "has unsupported value '" + problem_type + "' (supported: " +
                                  join(kProblemTypes) + ")");
}

ModelConfig parse_bert(const FieldReader& reader) {
  ModelConfig config;
  config.architectures = parse_architectures(reader);
  config.vocab_size = reader.positive("vocab_size");
  config.hidden_size = reader.positive("hidden_size");
  config.num_hidden_layers = reader.positive("num_hidden_layers");
  config.num_attention_heads = reader.positive("num_attention_heads");
  config.intermediate_size = reader.positive("intermediate_size");
  config.max_position_embeddings = reader.positive("max_position_embeddings");
  config.type_vocab_size = reader.positive_or("type_vocab_size", config.type_vocab_size);
  config.hidden_act = parse_activation(reader);

  if (const json* eps = reader.find("layer_norm_eps")) {
    if (!eps->is_number()) reader.fail("layer_norm_eps", "must be a number, got " + summary(*eps));
    config.layer_norm_eps = eps->get<double>();
    if (!(config.layer_norm_eps > 0) || !std::isfinite(config.layer_norm_eps)) {
      reader.fail("layer_norm_eps", "must be a positive finite number, got " + eps->dump());
    }
  }
  if (const json* pad = reader.find("pad_token_id")) {
    config.pad_token_id = reader.integer("pad_token_id", *pad, 0);
    if (config.pad_token_id >= config.vocab_size) {
      reader.fail("pad_token_id", "is " + std::to_string(config.pad_token_id) + ", outside the vocabulary of " +
                                      std::to_string(config.vocab_size));
    }
  }
  if (config.hidden_size % config.num_attention_heads != 0) {
    reader.fail("hidden_size", "(" + std::to_string(config.hidden_size) + ") is not divisible by " +
                                   "num_attention_heads (" + std::to_string(config.num_attention_heads) + ")");
  }
  config.id2label = parse_labels(reader);
  config.problem_type = parse_problem_type(reader);
  return config;
}

// Model families whose config.json layout this reader understands (MiniLM checkpoints are
// model_type "bert"). Others have different field names and are refused rather than misread.
struct ModelFamily {
  std::string_view model_type;
  ModelConfig (*parse)(const FieldReader&);
};
constexpr std::array<ModelFamily, 1> kModelFamilies = {{{"bert", parse_bert}}};

}  // namespace

std::string_view activation_name(Activation activation) {
  switch (activation) {
    case Activation::GeluErf:
      return "gelu";
    case Activation::GeluTanh:
      return "gelu_tanh";
    case Activation::Relu:
      return "relu";
  }
  return "unknown";
}

nlohmann::json read_config_json(const std::filesystem::path& path, std::filesystem::path* config_file) {
  std::error_code ignored;
  const std::filesystem::path file =
      std::filesystem::is_directory(path, ignored) ? path / "config.json" : path;
  // Only "nothing there" is "not found"; a looping link or a directory gets the reader's own message.
  if (!std::filesystem::exists(std::filesystem::symlink_status(file, ignored))) {
    const std::filesystem::path directory = file.has_parent_path() ? file.parent_path() : ".";
    throw Error(file.filename().string() + " not found in " + directory.string());
  }
  const json root = read_json_file(file, kMaxSmallJsonBytes);
  if (!root.is_object()) throw Error(file.string() + ": must be a JSON object, got " + root.type_name());
  if (config_file) *config_file = file;
  return root;
}

ModelConfig ModelConfig::load(const std::filesystem::path& path) {
  std::filesystem::path file;
  const json root = read_config_json(path, &file);
  const FieldReader reader(root, file.string());
  const std::string model_type = reader.string("model_type", reader.require("model_type"));
  for (const ModelFamily& family : kModelFamilies) {
    if (family.model_type == model_type) {
      ModelConfig config = family.parse(reader);
      config.model_type = model_type;
      return config;
    }
  }
  reader.fail("model_type", "is '" + model_type + "', which is not supported (supported: " +
                                join(kModelFamilies, &ModelFamily::model_type) + ")");
}

}  // namespace sieve
