#include "eval/evaluator.h"

#include <algorithm>
#include <chrono>

#include "policies/policy_spec.h"
#include "util/error.h"
#include "util/progress.h"

namespace sieve {

namespace {

int argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

std::vector<EvalResult> evaluate_policies(const TextModel& model, const std::vector<LabelledExample>& data,
                                          const std::vector<std::string>& specs, const EvalOptions& options) {
  std::vector<EvalSetting> settings;
  for (const auto& spec : specs) settings.push_back({spec, model.encoder().precision()});
  return evaluate_settings(model, data, settings, options);
}

std::vector<EvalResult> evaluate_settings(const TextModel& model, const std::vector<LabelledExample>& all,
                                          const std::vector<EvalSetting>& measured, const EvalOptions& options) {
  const BertEncoder& enc = model.encoder();
  if (!enc.has_classifier())
    throw Error("eval needs a model with a sequence-classification head (tools/finetune_classifier.py makes one)");
  const size_t n = options.limit ? std::min(options.limit, all.size()) : all.size();
  for (size_t i = 0; i < n; ++i)
    if (all[i].label >= enc.num_labels())
      throw Error("example " + std::to_string(i + 1) + " has label " + std::to_string(all[i].label) + " but the model has " +
                  std::to_string(enc.num_labels()) + " labels");

  std::vector<EvalSetting> settings{{"dense", options.anchor_precision.value_or(enc.precision())}};
  settings.insert(settings.end(), measured.begin(), measured.end());
  std::vector<std::unique_ptr<PolicyChain>> policies;
  for (const auto& s : settings) policies.push_back(parse_policy_spec(s.spec, enc.config(), model.exits()));

  std::vector<TextPair> texts;
  for (size_t i = 0; i < n; ++i) texts.push_back(all[i].text);
  const EncodedBatch encoded = model.encode(texts, options.max_length);

  const size_t layers = static_cast<size_t>(enc.config().num_hidden_layers);
  std::vector<EvalResult> results(settings.size());
  std::vector<ForwardStats> stats(settings.size());
  std::vector<size_t> correct(settings.size(), 0), agree(settings.size(), 0);
  std::vector<size_t> true_pos(settings.size(), 0), false_pos(settings.size(), 0), false_neg(settings.size(), 0);
  std::vector<double> seconds(settings.size(), 0.0);
  for (size_t s = 0; s < settings.size(); ++s) {
    results[s].spec = settings[s].spec;
    results[s].precision = settings[s].precision;
    results[s].description = policies[s]->describe();
    results[s].exit_layers.assign(layers, 0);
  }

  // One untimed batch per setting first, so first-touch costs land on nobody.
  const size_t batch = static_cast<size_t>(options.batch_size);
  for (size_t s = 0; s < settings.size(); ++s)
    enc.forward(std::span(encoded.inputs).subspan(0, std::min(batch, n)),
                {.policy = policies[s].get(), .precision = settings[s].precision, .cls_only_output = true});

  ProgressBar progress(options.progress_label, static_cast<int64_t>(n));
  for (size_t begin = 0; begin < n; begin += batch) {
    const size_t end = std::min(n, begin + batch);
    const auto inputs = std::span(encoded.inputs).subspan(begin, end - begin);
    std::vector<int> dense_pred;
    for (size_t s = 0; s < settings.size(); ++s) {
      ForwardStats st;
      const auto t0 = std::chrono::steady_clock::now();
      ForwardOptions forward_options{policies[s].get(), settings[s].precision};
      forward_options.record_work = options.record_work;
      forward_options.cls_only_output = true;  // only classify() reads the outputs
      const auto outputs = enc.forward(inputs, forward_options, &st);
      std::vector<int> pred;
      for (const auto& out : outputs) pred.push_back(argmax(enc.classify(out)));
      seconds[s] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      stats[s].add(st);
      for (size_t i = 0; i < pred.size(); ++i) {
        const int label = all[begin + i].label;
        correct[s] += pred[i] == label;
        true_pos[s] += pred[i] == 1 && label == 1;
        false_pos[s] += pred[i] == 1 && label != 1;
        false_neg[s] += pred[i] != 1 && label == 1;
        if (s == 0) dense_pred.push_back(pred[i]);
        agree[s] += pred[i] == dense_pred[i];
        ++results[s].exit_layers[static_cast<size_t>(outputs[i].exit_layer - 1)];
      }
    }
    progress.advance(static_cast<int64_t>(end - begin));
  }
  progress.finish();

  for (size_t s = 0; s < settings.size(); ++s) {
    EvalResult& r = results[s];
    r.examples = n;
    r.work = std::move(stats[s].work);
    r.accuracy = static_cast<double>(correct[s]) / static_cast<double>(n);
    r.agreement_with_dense = static_cast<double>(agree[s]) / static_cast<double>(n);
    if (enc.num_labels() == 2 && true_pos[s] + false_pos[s] + false_neg[s] > 0)
      r.f1 = 2.0 * static_cast<double>(true_pos[s]) /
             static_cast<double>(2 * true_pos[s] + false_pos[s] + false_neg[s]);
    r.gflops_per_example = stats[s].flops / 1e9 / static_cast<double>(n);
    r.flops_reduction = stats[0].flops / stats[s].flops;
    r.total_seconds = seconds[s];
    r.latency_ms_per_example = seconds[s] * 1e3 / static_cast<double>(n);
    r.speedup = seconds[0] / seconds[s];
    r.attention_seconds = stats[s].attention_seconds;
    r.attention_speedup = stats[0].attention_seconds / stats[s].attention_seconds;
    r.gemm_seconds = stats[s].gemm_seconds;
    const CtaStats& cta = stats[s].cta;
    if (!cta.empty()) {
      r.cta = true;
      double rl = 0, ra = 0, overhead = 0, dense = 0;
      for (const CtaCounts& c : cta.per_example) {
        rl += c.linear_macs / c.dense_linear_macs;
        ra += c.attention_macs / c.dense_attention_macs;
        overhead += c.overhead_ops;
        dense += 2 * (c.dense_linear_macs + c.dense_attention_macs);
      }
      r.cta_rl = rl / static_cast<double>(cta.per_example.size());
      r.cta_ra = ra / static_cast<double>(cta.per_example.size());
      r.cta_overhead = overhead / dense;
      for (size_t l = 0; l < cta.k0.size(); ++l) {
        const double pairs = std::max<double>(1.0, static_cast<double>(cta.heads[l]));
        r.cta_k0.push_back(cta.k0[l] / pairs), r.cta_k1.push_back(cta.k1[l] / pairs);
        r.cta_k2.push_back(cta.k2[l] / pairs), r.cta_n.push_back(cta.n[l] / pairs);
      }
    }
    for (size_t l = 0; l < layers; ++l) {
      r.tokens_kept.push_back(static_cast<double>(stats[s].tokens_per_layer[l]) / static_cast<double>(stats[0].tokens_per_layer[l]));
      r.heads_kept.push_back(static_cast<double>(stats[s].heads_per_layer[l]) / static_cast<double>(n));
    }
  }
  return results;
}

}  // namespace sieve
