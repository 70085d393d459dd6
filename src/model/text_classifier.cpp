#include "model/text_classifier.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "policies/policy_spec.h"
#include "util/error.h"

namespace sieve {

std::vector<float> softmax_probabilities(std::vector<float> p) {
  if (p.empty()) return p;
  const float mx = *std::max_element(p.begin(), p.end());
  float sum = 0;
  for (float& v : p) sum += (v = std::exp(v - mx));
  for (float& v : p) v /= sum;
  return p;
}

std::string label_name(const ModelConfig& config, size_t c) {
  return c < config.id2label.size() ? config.id2label[c] : "LABEL_" + std::to_string(c);
}

TextClassifier::TextClassifier(const TextModel& model, ClassifierOptions options)
    : model_(model), options_(std::move(options)) {
  if (!model_.encoder().has_classifier())
    throw Error("this model has no sequence-classification head (classifier.weight); use `sieve embed`, "
                "or fine-tune one with tools/finetune_classifier.py");
  if (options_.batch_size < 1) throw Error("classify: batch size must be at least 1");
  policy_ = parse_policy_spec(options_.policy, model_.encoder().config(), model_.exits());
}

std::vector<std::string> TextClassifier::labels() const {
  std::vector<std::string> names;
  for (size_t c = 0; c < num_labels(); ++c) names.push_back(label_name(model_.encoder().config(), c));
  return names;
}

std::vector<Classification> TextClassifier::classify(const std::vector<std::string>& texts, EmbedStats* stats_out) {
  std::vector<TextPair> pairs;
  pairs.reserve(texts.size());
  for (const std::string& t : texts) pairs.push_back({t, ""});
  EncodedBatch all = model_.encode(pairs, options_.max_length);
  EmbedStats stats;
  for (size_t i = 0; i < texts.size(); ++i)
    if (all.truncated[i]) stats.truncated_inputs.push_back(i);
  std::vector<Classification> results;
  results.reserve(texts.size());
  const ForwardOptions forward_options{.policy = policy_.get(), .precision = options_.precision, .cls_only_output = true};
  const size_t batch = static_cast<size_t>(options_.batch_size);
  for (size_t begin = 0; begin < texts.size(); begin += batch) {
    const size_t end = std::min(texts.size(), begin + batch);
    ForwardStats forward_stats;
    const auto outputs = model_.encoder().forward(std::span(all.inputs).subspan(begin, end - begin), forward_options, &forward_stats);
    stats.forward.add(forward_stats);
    for (size_t i = begin; i < end; ++i) {
      const SequenceOutput& out = outputs[i - begin];
      stats.tokens_in += static_cast<int64_t>(all.inputs[i].ids.size());
      stats.layers_run += out.exit_layer;
      Classification c{0, softmax_probabilities(model_.encoder().classify(out))};
      for (size_t k = 0; k < c.probabilities.size(); ++k)
        if (c.probabilities[k] > c.probabilities[c.label]) c.label = k;
      results.push_back(std::move(c));
    }
  }
  stats.sequences = texts.size();
  if (stats_out) *stats_out = std::move(stats);
  return results;
}

}  // namespace sieve
