#pragma once
// The architecture hyper-parameters of a Hugging Face checkpoint, read from its config.json
// and validated so that the model code can trust every size it is given.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sieve {

// The feed-forward non-linearity. Hugging Face's "gelu" is the exact erf form; "gelu_new" and
// "gelu_pytorch_tanh" are both the tanh approximation.
enum class Activation { GeluErf, GeluTanh, Relu };

std::string_view activation_name(Activation activation);

struct ModelConfig {
  std::string model_type;                  // as written, e.g. "bert"
  std::vector<std::string> architectures;  // e.g. {"BertModel"}; may be empty
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  Activation hidden_act = Activation::GeluErf;
  double layer_norm_eps = 1e-12;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 2;
  int64_t pad_token_id = 0;
  // Classification heads: id2label[i] names class i; empty when the config defines no labels.
  std::vector<std::string> id2label;
  std::string problem_type;  // "", "regression", "single_label_classification" or "multi_label_classification"

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t num_labels() const { return static_cast<int64_t>(id2label.size()); }

  // Reads and validates a config.json; `path` may also be the checkpoint directory holding it.
  // Throws sieve::Error naming the file and the offending field.
  static ModelConfig load(const std::filesystem::path& path);
};

// config.json (or `path`/config.json for a directory) parsed as a JSON object, size-limited, with a
// clear Error for a missing, unreadable, oversized or invalid file; *config_file gets its path.
nlohmann::json read_config_json(const std::filesystem::path& path, std::filesystem::path* config_file = nullptr);

}  // namespace sieve
