#include "eval/embedding_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "util/error.h"
#include "util/progress.h"

namespace sieve {

std::string EmbeddingEvalSetting::label() const {
  std::string s = spec;
  if (pooling != PrunedPooling::Frozen) s += std::string(" pool=") + pruned_pooling_name(pooling);
  if (long_inputs == LongInputMode::Chunk) s += " long=chunk";
  if (precision != Precision::Fp32) s += std::string(" ") + precision_name(precision);
  return s;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
}

double pearson_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
}

namespace {

// 1-based ranks; a run of equal values gets the average of its ranks (as scipy.stats.rankdata).
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double average = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) r[order[k]] = average;
    i = j + 1;
  }
  return r;
}

}  // namespace

double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  return pearson_correlation(ranks(x), ranks(y));
}

std::vector<EmbeddingEvalResult> evaluate_embeddings(const TextModel& model, const std::vector<ScoredPair>& all,
                                                     const std::vector<EmbeddingEvalSetting>& measured,
                                                     const EmbeddingEvalOptions& options) {
  const size_t n = options.limit ? std::min(options.limit, all.size()) : all.size();
  if (n == 0) throw Error("embedding eval: no pairs");
  const bool scored = !std::isnan(all[0].score);
  // Texts in pair order: sentence1 of pair i at 2i, its sentence2 at 2i + 1.
  std::vector<std::string> texts;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(all[i].score) == scored) throw Error("embedding eval: pair " + std::to_string(i + 1) + " mixes scored and unscored rows");
    texts.push_back(all[i].text.first);
    texts.push_back(all[i].text.second);
  }

  std::vector<EmbeddingEvalSetting> settings{EmbeddingEvalSetting{}};
  settings.insert(settings.end(), measured.begin(), measured.end());
  std::vector<std::unique_ptr<TextEmbedder>> embedders;
  for (const auto& s : settings) {
    EmbedderOptions eo;
    eo.policy = s.spec, eo.pruned_pooling = s.pooling, eo.long_inputs = s.long_inputs;
    eo.max_length = options.max_length, eo.batch_size = options.batch_size, eo.precision = s.precision;
    eo.record_work = options.record_work;
    embedders.push_back(std::make_unique<TextEmbedder>(model, eo));
  }

  const size_t batch = static_cast<size_t>(options.batch_size);
  // One untimed batch per setting first, so first-touch costs land on nobody.
  for (auto& e : embedders) e->embed({texts.begin(), texts.begin() + static_cast<std::ptrdiff_t>(std::min(batch, texts.size()))});

  std::vector<std::vector<std::vector<float>>> vectors(settings.size());
  std::vector<EmbedStats> stats(settings.size());
  std::vector<double> seconds(settings.size(), 0.0);
  ProgressBar progress(options.progress_label, static_cast<int64_t>(texts.size()));
  std::vector<std::string> chunk;
  for (size_t begin = 0; begin < texts.size(); begin += batch) {
    const size_t end = std::min(texts.size(), begin + batch);
    chunk.assign(texts.begin() + static_cast<std::ptrdiff_t>(begin), texts.begin() + static_cast<std::ptrdiff_t>(end));
    for (size_t s = 0; s < settings.size(); ++s) {
      EmbedStats st;
      const auto t0 = std::chrono::steady_clock::now();
      auto v = embedders[s]->embed(chunk, &st);
      seconds[s] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      stats[s].add(st, begin);
      std::move(v.begin(), v.end(), std::back_inserter(vectors[s]));
    }
    progress.advance(static_cast<int64_t>(end - begin));
  }
  progress.finish();

  std::vector<double> gold;
  for (size_t i = 0; i < n; ++i) gold.push_back(all[i].score);
  if (scored && std::all_of(gold.begin(), gold.end(), [&](double g) { return g == gold[0]; }))
    throw Error("embedding eval: every gold score is the same; a correlation needs them to differ");
  const size_t layers = static_cast<size_t>(model.encoder().config().num_hidden_layers);
  std::vector<EmbeddingEvalResult> results(settings.size());
  for (size_t s = 0; s < settings.size(); ++s) {
    EmbeddingEvalResult& r = results[s];
    const auto& v = vectors[s];
    r.setting = settings[s];
    r.description = embedders[s]->describe();
    r.pairs = n, r.texts = texts.size();
    if (scored) {
      std::vector<double> predicted;
      for (size_t i = 0; i < n; ++i) predicted.push_back(cosine(v[2 * i], v[2 * i + 1]));
      r.scored = true;
      r.spearman = spearman_correlation(predicted, gold);
      r.pearson = pearson_correlation(predicted, gold);
      r.pair_cosines = std::move(predicted);
    } else {
      // Rank of the right sentence2 among all of them, by cosine to sentence1 (ties count against).
      r.retrieval = true;
      double hits = 0, reciprocal = 0;
      for (size_t i = 0; i < n; ++i) {
        const double right = cosine(v[2 * i], v[2 * i + 1]);
        size_t rank = 1;
        for (size_t j = 0; j < n; ++j)
          if (j != i && cosine(v[2 * i], v[2 * j + 1]) >= right) ++rank;
        hits += rank == 1;
        reciprocal += 1.0 / static_cast<double>(rank);
      }
      r.recall_at_1 = hits / static_cast<double>(n);
      r.mrr = reciprocal / static_cast<double>(n);
    }
    double sum = 0, lowest = 1.0;
    for (size_t t = 0; t < v.size(); ++t) {
      const double c = cosine(v[t], vectors[0][t]);
      sum += c, lowest = std::min(lowest, c);
    }
    r.mean_cosine_to_dense = sum / static_cast<double>(v.size());
    r.min_cosine_to_dense = lowest;
    const double count = static_cast<double>(texts.size());
    r.gflops_per_text = stats[s].forward.flops / 1e9 / count;
    r.flops_reduction = stats[0].forward.flops / stats[s].forward.flops;
    r.total_seconds = seconds[s];
    r.latency_ms_per_text = seconds[s] * 1e3 / count;
    r.speedup = seconds[0] / seconds[s];
    r.sequences_per_text = static_cast<double>(stats[s].sequences) / count;
    r.layers_per_sequence = static_cast<double>(stats[s].layers_run) / static_cast<double>(stats[s].sequences);
    r.truncated_texts = stats[s].truncated_inputs.size();
    r.work = std::move(stats[s].forward.work);
    for (size_t l = 0; l < layers; ++l)
      r.tokens_kept.push_back(static_cast<double>(stats[s].forward.tokens_per_layer[l]) /
                              static_cast<double>(stats[0].forward.tokens_per_layer[l]));
  }
  return results;
}

}  // namespace sieve
