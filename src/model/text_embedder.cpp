#include "model/text_embedder.h"

#include <algorithm>
#include <limits>
#include <span>

#include "policies/policy_spec.h"
#include "util/error.h"

namespace sieve {

PrunedPooling parse_pruned_pooling(const std::string& name) {
  if (name == "frozen") return PrunedPooling::Frozen;
  if (name == "survivors") return PrunedPooling::Survivors;
  throw Error("unknown pooling of pruned tokens '" + name + "' (frozen or survivors)");
}

const char* pruned_pooling_name(PrunedPooling pooling) { return pooling == PrunedPooling::Frozen ? "frozen" : "survivors"; }

LongInputMode parse_long_input_mode(const std::string& name) {
  if (name == "truncate") return LongInputMode::Truncate;
  if (name == "chunk") return LongInputMode::Chunk;
  throw Error("unknown long-input mode '" + name + "' (truncate or chunk)");
}

void EmbedStats::add(const EmbedStats& other, size_t index_offset) {
  forward.add(other.forward);
  sequences += other.sequences;
  tokens_in += other.tokens_in;
  layers_run += other.layers_run;
  for (size_t i : other.truncated_inputs) truncated_inputs.push_back(index_offset + i);
}

TextEmbedder::TextEmbedder(const TextModel& model, EmbedderOptions options)
    : model_(model), options_(std::move(options)), policy_(parse_policy_spec(options_.policy, model.encoder().config(), model.exits())) {
  if (options_.batch_size < 1) throw Error("embed: batch size must be at least 1");
  if (options_.long_inputs == LongInputMode::Chunk) {
    const size_t length = options_.max_length ? options_.max_length : model_.max_length();
    if (length < 3) throw Error("embed: chunking needs windows of at least 3 tokens");
    if (options_.chunk_overlap >= length - 2)
      throw Error("embed: chunk overlap " + std::to_string(options_.chunk_overlap) + " must be smaller than a window's " +
                  std::to_string(length - 2) + " text tokens");
  }
}

namespace {

// Where a forward sequence (a whole text, or one window of a chunked text) goes.
struct Window {
  size_t text = 0;     // which text it belongs to
  double weight = 1;   // its share in the text's embedding (tokens, when chunking)
};

EncoderInput window_input(const std::vector<int32_t>& content, size_t begin, size_t end, int32_t cls, int32_t sep) {
  EncoderInput in;
  in.ids.reserve(end - begin + 2);
  in.ids.push_back(cls);
  in.ids.insert(in.ids.end(), content.begin() + static_cast<std::ptrdiff_t>(begin), content.begin() + static_cast<std::ptrdiff_t>(end));
  in.ids.push_back(sep);
  in.type_ids.assign(in.ids.size(), 0);
  in.is_special.resize(in.ids.size());
  for (size_t i = 0; i < in.ids.size(); ++i) in.is_special[i] = in.ids[i] == cls || in.ids[i] == sep;
  return in;
}

}  // namespace

std::vector<std::vector<float>> TextEmbedder::embed(const std::vector<std::string>& texts, EmbedStats* stats_out,
                                                    const std::function<void(size_t)>& on_progress) {
  EmbedStats stats;
  std::vector<EncoderInput> inputs;  // the forward sequences, run in slices of batch_size
  std::vector<Window> windows;       // windows[k] says where inputs[k] goes
  const size_t max_length = options_.max_length ? options_.max_length : model_.max_length();
  if (options_.long_inputs == LongInputMode::Truncate) {
    std::vector<TextPair> pairs;
    pairs.reserve(texts.size());
    for (const std::string& t : texts) pairs.push_back({t, ""});
    EncodedBatch encoded = model_.encode(pairs, options_.max_length);
    for (size_t i = 0; i < texts.size(); ++i) {
      if (encoded.truncated[i]) stats.truncated_inputs.push_back(i);
      inputs.push_back(std::move(encoded.inputs[i]));
      windows.push_back({i, 1.0});
    }
  } else {
    if (max_length > static_cast<size_t>(model_.encoder().config().max_position_embeddings))
      throw Error("embed: windows of " + std::to_string(max_length) + " tokens exceed the model's limit of " +
                  std::to_string(model_.encoder().config().max_position_embeddings));
    const WordPieceTokenizer& tok = model_.tokenizer();
    const size_t width = max_length - 2, stride = width - options_.chunk_overlap;
    for (size_t i = 0; i < texts.size(); ++i) {
      Encoding e = tok.encode(texts[i], std::numeric_limits<size_t>::max());
      const std::vector<int32_t> content(e.ids.begin() + 1, e.ids.end() - 1);
      for (size_t begin = 0;; begin += stride) {
        const size_t end = std::min(begin + width, content.size());
        inputs.push_back(window_input(content, begin, end, tok.cls_id(), tok.sep_id()));
        windows.push_back({i, static_cast<double>(end - begin + 2)});
        if (end == content.size()) break;
      }
    }
  }

  std::vector<std::vector<float>> sums(texts.size());
  std::vector<double> weights(texts.size(), 0.0);
  std::vector<size_t> window_count(texts.size(), 0);
  for (const Window& w : windows) ++window_count[w.text];
  ForwardOptions forward_options = embedding_forward_options(policy_.get(), options_.pruned_pooling);
  forward_options.precision = options_.precision;
  forward_options.record_work = options_.record_work;
  const size_t batch_size = static_cast<size_t>(options_.batch_size);
  for (size_t begin = 0; begin < windows.size(); begin += batch_size) {
    const size_t end = std::min(windows.size(), begin + batch_size);
    ForwardStats forward_stats;
    const auto outputs = model_.encoder().forward(std::span(inputs).subspan(begin, end - begin), forward_options, &forward_stats);
    stats.forward.add(forward_stats);
    for (size_t w = begin; w < end; ++w) {
      const Window& window = windows[w];
      const SequenceOutput& out = outputs[w - begin];
      stats.tokens_in += static_cast<int64_t>(inputs[w].ids.size());
      stats.layers_run += out.exit_layer;
      std::vector<float> pooled = model_.pooled(out);
      std::vector<float>& sum = sums[window.text];
      if (window_count[window.text] == 1) {
        sum = std::move(pooled);  // exactly the one window's vector: no rounding from weighting
        continue;
      }
      if (sum.empty()) sum.assign(pooled.size(), 0.0f);
      for (size_t c = 0; c < pooled.size(); ++c) sum[c] += static_cast<float>(window.weight) * pooled[c];
      weights[window.text] += window.weight;
    }
    if (on_progress) on_progress(end - begin);
  }
  stats.sequences = windows.size();
  for (size_t i = 0; i < texts.size(); ++i) {
    if (window_count[i] > 1)
      for (float& x : sums[i]) x = static_cast<float>(x / weights[i]);
    model_.normalize_if_declared(sums[i]);
  }
  if (stats_out) *stats_out = std::move(stats);
  return sums;
}

}  // namespace sieve
