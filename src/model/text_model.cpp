#include "model/text_model.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/json_file.h"

#ifndef SIEVE_DEFAULT_MODEL_DIR
#define SIEVE_DEFAULT_MODEL_DIR "models/all-MiniLM-L6-v2"
#endif

namespace sieve {

namespace {

using nlohmann::json;

// A field of a sentence-transformers file that, when present, must be of `type`; the error names
// the file and the field instead of surfacing as a library exception.
const json* optional_field(const json& document, const char* field, json::value_t type,
                           const std::filesystem::path& file) {
  const auto it = document.find(field);
  if (it == document.end() || it->is_null()) return nullptr;
  const bool matches = it->type() == type || (type == json::value_t::number_integer && it->is_number_integer());
  if (!matches) {
    throw Error(file.string() + ": field '" + field + "' must be a " + json(type).type_name() + ", got " +
                it->type_name());
  }
  return &*it;
}

}  // namespace

std::filesystem::path default_model_dir() {
  if (const char* env = std::getenv("SIEVE_MODEL"); env && *env) return env;
  return SIEVE_DEFAULT_MODEL_DIR;
}

TextModel TextModel::load(const std::filesystem::path& model_dir, const std::filesystem::path& exits_dir) {
  if (!std::filesystem::is_directory(model_dir))
    throw Error("model directory not found: " + model_dir.string() +
                (model_dir == default_model_dir() ? " (run scripts/setup.sh, or pass --model DIR)" : ""));
  TextModel model(BertEncoder::load(model_dir), WordPieceTokenizer::from_model_dir(model_dir));
  model.max_length_ = static_cast<size_t>(model.encoder_.config().max_position_embeddings);

  // sentence-transformers directories say how they pool and cut; plain HF ones use [CLS].
  const auto st_file = model_dir / "sentence_bert_config.json";
  if (const json st = read_json_file_if_exists(st_file, kMaxSmallJsonBytes); st.is_object()) {
    if (const json* cut = optional_field(st, "max_seq_length", json::value_t::number_integer, st_file)) {
      const int64_t length = json_integer(*cut, 3, std::numeric_limits<int32_t>::max(), st_file.string() + ": field 'max_seq_length'");
      model.max_length_ = std::min(model.max_length_, static_cast<size_t>(length));
    }
  }
  const auto pooling_file = model_dir / "1_Pooling" / "config.json";
  if (const json pooling = read_json_file_if_exists(pooling_file, kMaxSmallJsonBytes); pooling.is_object()) {
    const json* mean = optional_field(pooling, "pooling_mode_mean_tokens", json::value_t::boolean, pooling_file);
    model.pooling_ = mean && mean->get<bool>() ? Pooling::Mean : Pooling::Cls;
  }
  if (!exits_dir.empty())
    model.exits_ = ExitHeads::load(exits_dir, model.encoder_.config());
  else if (std::filesystem::exists(model_dir / "exits" / "exits.json"))
    model.exits_ = ExitHeads::load(model_dir / "exits", model.encoder_.config());
  if (std::filesystem::exists(model_dir / "blockskim" / "blockskim.json"))
    model.block_skim_ = BlockSkimModules::load(model_dir / "blockskim", model.encoder_.config());
  const auto modules_file = model_dir / "modules.json";
  if (const json modules = read_json_file_if_exists(modules_file, kMaxSmallJsonBytes); !modules.is_null()) {
    if (!modules.is_array()) throw Error(modules_file.string() + ": must be a JSON array of modules");
    for (const json& module : modules) {
      if (!module.is_object()) throw Error(modules_file.string() + ": each module must be a JSON object");
      const json* type = optional_field(module, "type", json::value_t::string, modules_file);
      if (type && *type == "sentence_transformers.models.Normalize") model.normalize_ = true;
    }
  }
  return model;
}

EncodedBatch TextModel::encode(const std::vector<TextPair>& texts, size_t max_length) const {
  if (max_length == 0) max_length = max_length_;
  if (max_length < 3) throw Error("max length must be at least 3 tokens");
  if (max_length > static_cast<size_t>(encoder_.config().max_position_embeddings))
    throw Error("max length " + std::to_string(max_length) + " exceeds the model's limit of " +
                std::to_string(encoder_.config().max_position_embeddings) + " tokens");
  EncodedBatch batch;
  for (const TextPair& t : texts) {
    Encoding e = t.second.empty() ? tokenizer_.encode(t.first, max_length)
                                  : tokenizer_.encode_pair(t.first, t.second, max_length);
    EncoderInput in;
    in.is_special.resize(e.ids.size());
    for (size_t i = 0; i < e.ids.size(); ++i)
      in.is_special[i] = e.ids[i] == tokenizer_.cls_id() || e.ids[i] == tokenizer_.sep_id();
    in.ids = std::move(e.ids);
    in.type_ids = std::move(e.type_ids);
    batch.inputs.push_back(std::move(in));
    batch.truncated.push_back(e.truncated);
  }
  return batch;
}

std::vector<float> TextModel::pooled(const SequenceOutput& out) const {
  return pooling_ == Pooling::Mean ? BertEncoder::mean_pool(out) : BertEncoder::cls_vector(out);
}

void l2_normalize(std::vector<float>& v) {
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  const float inv = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.0f;
  for (float& x : v) x *= inv;
}

void TextModel::normalize_if_declared(std::vector<float>& v) const {
  if (normalize_) l2_normalize(v);
}

std::vector<float> TextModel::embedding(const SequenceOutput& out) const {
  std::vector<float> v = pooled(out);
  normalize_if_declared(v);
  return v;
}

}  // namespace sieve
