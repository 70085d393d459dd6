#include "model/decoder.h"

#include "model/gguf.h"
#include "model/gpt2_decoder.h"
#include "model/llama_decoder.h"
#include "policies/generation_policy.h"
#include "util/error.h"

namespace sieve {

std::unique_ptr<Decoder> load_decoder(const std::filesystem::path& path, const DecoderOptions& options) {
  if (options.weights != "gguf" && options.weights != "fp32") throw Error("weights must be gguf or fp32, got '" + options.weights + "'");
  if (options.activations != "int8" && options.activations != "fp32")
    throw Error("activations must be int8 or fp32, got '" + options.activations + "'");
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored) && std::filesystem::exists(path / "config.json", ignored))
    return std::make_unique<Gpt2Decoder>(Gpt2Decoder::load(path));
  return std::make_unique<LlamaDecoder>(LlamaDecoder::load(path, options.weights == "fp32" ? LlamaWeights::Fp32 : LlamaWeights::Gguf,
                                                          options.activations == "fp32" ? QuantizedActivations::Fp32 : QuantizedActivations::Int8));
}

ByteLevelBpe load_decoder_tokenizer(const std::filesystem::path& path) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored) && std::filesystem::exists(path / "config.json", ignored))
    return ByteLevelBpe::from_model_dir(path);
  return ByteLevelBpe::from_gguf(GgufFile::open(LlamaDecoder::gguf_path(path)));
}

std::string chat_prompt(const std::filesystem::path& path, const std::string& user_message) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored) && std::filesystem::exists(path / "config.json", ignored))
    throw Error(path.string() + ": this model has no chat template (--chat needs a GGUF with tokenizer.chat_template)");
  const GgufFile file = GgufFile::open(LlamaDecoder::gguf_path(path));
  if (!file.find("tokenizer.chat_template")) throw Error(file.path().string() + ": no tokenizer.chat_template in the GGUF metadata");
  const std::string& tmpl = file.string("tokenizer.chat_template");
  if (tmpl.find("<|im_start|>") == std::string::npos)
    throw Error(file.path().string() + ": only ChatML chat templates (<|im_start|>) are supported");
  // The template's own default system turn, when it writes one for conversations without a system message.
  std::string system;
  const std::string opening = "<|im_start|>system\n";
  if (const size_t at = tmpl.find(opening); at != std::string::npos) {
    const size_t begin = at + opening.size(), end = tmpl.find("<|im_end|>", begin);
    if (end != std::string::npos) system = opening + tmpl.substr(begin, end - begin) + "<|im_end|>\n";
  }
  return system + "<|im_start|>user\n" + user_message + "<|im_end|>\n<|im_start|>assistant\n";
}

DecodingSession::DecodingSession(const Decoder& model, GenerationPolicy& policy, int64_t capacity)
    : model_(model), policy_(policy) {
  const DecoderShape s = model.shape();
  if (capacity < 0 || capacity > s.max_positions)
    throw Error("a sequence of " + std::to_string(capacity) + " tokens exceeds the model's " + std::to_string(s.max_positions) + " positions");
  capacity_ = capacity == 0 ? s.max_positions : capacity;
  policy_.reset();
  cache_ = KvCache(s.layers, s.kv_heads, s.head_dim, capacity_, policy_.kv_quantization());
}

void DecodingSession::check_room(int64_t tokens) const {
  if (cache_.tokens_seen() + tokens > capacity_)
    throw Error("sequence of " + std::to_string(cache_.tokens_seen() + tokens) + " tokens exceeds " +
                (capacity_ == model_.shape().max_positions ? "the model's " + std::to_string(capacity_) + " positions"
                                                           : "this session's capacity of " + std::to_string(capacity_) + " tokens"));
}

std::vector<float> DecodingSession::prefill(std::span<const int32_t> ids, Tensor* all_logits) {
  if (cache_.tokens_seen() != 0) throw Error("prefill: the session already holds a sequence");
  if (ids.empty()) throw Error("empty prompt: there is nothing to continue");
  check_room(static_cast<int64_t>(ids.size()));
  KvTraffic prompt_traffic;  // the summarization stage reads fp32 and is not what the statistic counts
  Tensor logits = model_.forward(ids, cache_, policy_, DecodeStage::Prompt, all_logits != nullptr, prompt_traffic);
  prune_cache();
  const int64_t V = logits.dim(1);
  std::vector<float> last(logits.row(logits.dim(0) - 1), logits.row(logits.dim(0) - 1) + V);
  if (all_logits) *all_logits = std::move(logits);
  return last;
}

std::vector<float> DecodingSession::step(int32_t id) {
  if (cache_.tokens_seen() == 0) throw Error("step: run prefill() first");
  check_room(1);
  const int32_t ids[1] = {id};
  const Tensor logits = model_.forward(ids, cache_, policy_, DecodeStage::Generation, false, traffic_);
  ++steps_;
  prune_cache();
  return {logits.data(), logits.data() + logits.size()};
}

void DecodingSession::prune_cache() {
  std::vector<int32_t> keep(static_cast<size_t>(cache_.size()));
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = static_cast<int32_t>(i);
  policy_.choose_cached(cache_, keep);
  if (static_cast<int64_t>(keep.size()) < cache_.size()) cache_.keep_slots(keep);
}

}  // namespace sieve
