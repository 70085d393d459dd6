#include "model/question_answerer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>

#include "policies/policy_spec.h"
#include "util/error.h"

namespace sieve {

namespace {

// run_qa.py strips the question's leading whitespace: some SQuAD questions start with spaces
// that would otherwise take tokens from the context's budget.
std::string_view without_leading_whitespace(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t\n\r\f\v");
  return first == std::string_view::npos ? std::string_view{} : text.substr(first);
}

// Positions of the n largest values, largest first (numpy's argsort[-1:-n-1:-1]; ties by position).
std::vector<size_t> top_positions(const std::vector<float>& values, size_t n) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  n = std::min(n, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](size_t a, size_t b) { return values[a] > values[b] || (values[a] == values[b] && a > b); });
  order.resize(n);
  return order;
}

}  // namespace

std::vector<QaWindow> make_qa_windows(const WordPieceTokenizer& tokenizer, const QaQuery& query, size_t question_index,
                                      const QaOptions& options) {
  TextPieces question = tokenizer.pieces(without_leading_whitespace(query.question));
  const TextPieces context = tokenizer.pieces(query.context);
  if (question.ids.size() > options.max_query_length) question.ids.resize(options.max_query_length);
  const size_t fixed = question.ids.size() + 3;  // [CLS] question [SEP] ... [SEP]
  if (options.max_length < fixed + 1)
    throw Error("max_length " + std::to_string(options.max_length) + " leaves no room for the context after a question of " +
                std::to_string(question.ids.size()) + " tokens");
  const size_t budget = options.max_length - fixed;
  // Consecutive windows share doc_stride tokens (tokenizers' overflow rule); a stride as large as
  // the window would never advance, so it is capped at half the window.
  const size_t step = budget - std::min(options.doc_stride, budget / 2);

  std::vector<QaWindow> windows;
  const size_t n = context.ids.size();
  for (size_t start = 0;; start += step) {
    const size_t stop = std::min(start + budget, n);
    QaWindow w;
    w.question_index = question_index;
    EncoderInput& in = w.input;
    in.ids.push_back(tokenizer.cls_id());
    in.ids.insert(in.ids.end(), question.ids.begin(), question.ids.end());
    in.ids.push_back(tokenizer.sep_id());
    w.context_begin = in.ids.size();
    in.ids.insert(in.ids.end(), context.ids.begin() + static_cast<std::ptrdiff_t>(start),
                  context.ids.begin() + static_cast<std::ptrdiff_t>(stop));
    in.ids.push_back(tokenizer.sep_id());
    in.type_ids.assign(in.ids.size(), 1);
    std::fill(in.type_ids.begin(), in.type_ids.begin() + static_cast<std::ptrdiff_t>(w.context_begin), 0);
    // [CLS], the question and both [SEP]s are never pruned: only context tokens can be skipped.
    in.is_special.assign(in.ids.size(), 0);
    std::fill(in.is_special.begin(), in.is_special.begin() + static_cast<std::ptrdiff_t>(w.context_begin), 1);
    in.is_special.back() = 1;
    w.context_bytes.assign(context.byte_ranges.begin() + static_cast<std::ptrdiff_t>(start),
                           context.byte_ranges.begin() + static_cast<std::ptrdiff_t>(stop));
    windows.push_back(std::move(w));
    if (stop == n) break;
  }
  return windows;
}

std::vector<QaAnswer> decode_answers(const std::string& context, const std::vector<const QaWindow*>& windows,
                                     const std::vector<BertEncoder::SpanLogits>& logits, const QaOptions& options) {
  if (windows.size() != logits.size()) throw Error("decode_answers: one set of logits per window");
  std::vector<QaAnswer> candidates;
  for (size_t w = 0; w < windows.size(); ++w) {
    const QaWindow& window = *windows[w];
    const BertEncoder::SpanLogits& l = logits[w];
    const size_t first = window.context_begin, last = first + window.context_bytes.size();  // context: [first, last)
    const auto in_context = [&](size_t p) { return p >= first && p < last; };
    const std::vector<size_t> starts = top_positions(l.start, options.n_best), ends = top_positions(l.end, options.n_best);
    for (size_t s : starts)
      for (size_t e : ends) {
        if (!in_context(s) || !in_context(e) || e < s || e - s + 1 > options.max_answer_length) continue;
        const float score = l.start[s] + l.end[e];
        if (!std::isfinite(score)) continue;  // a pruned position
        QaAnswer a;
        a.begin = window.context_bytes[s - first].first;
        a.end = window.context_bytes[e - first].second;
        a.score = score;
        candidates.push_back(a);
      }
  }
  // Best first; equal scores keep the order they were found in (Python's stable sort in utils_qa).
  std::stable_sort(candidates.begin(), candidates.end(), [](const QaAnswer& a, const QaAnswer& b) { return a.score > b.score; });
  if (candidates.size() > options.n_best) candidates.resize(options.n_best);
  if (candidates.empty()) return candidates;
  double sum = 0;
  for (const QaAnswer& a : candidates) sum += std::exp(static_cast<double>(a.score - candidates.front().score));
  for (QaAnswer& a : candidates) {
    a.probability = static_cast<float>(std::exp(static_cast<double>(a.score - candidates.front().score)) / sum);
    a.text = context.substr(a.begin, a.end - a.begin);
  }
  return candidates;
}

std::vector<QaWindow> make_qa_windows(const WordPieceTokenizer& tokenizer, const std::vector<QaQuery>& queries,
                                      const QaOptions& options) {
  std::vector<QaWindow> windows;
  for (size_t q = 0; q < queries.size(); ++q) {
    std::vector<QaWindow> mine = make_qa_windows(tokenizer, queries[q], q, options);
    std::move(mine.begin(), mine.end(), std::back_inserter(windows));
  }
  return windows;
}

std::vector<std::vector<QaAnswer>> decode_answers(const std::vector<QaQuery>& queries, const std::vector<QaWindow>& windows,
                                                  std::vector<BertEncoder::SpanLogits> logits, const QaOptions& options) {
  if (windows.size() != logits.size()) throw Error("decode_answers: one set of logits per window");
  std::vector<std::vector<const QaWindow*>> by_query(queries.size());
  std::vector<std::vector<BertEncoder::SpanLogits>> logits_by_query(queries.size());
  for (size_t w = 0; w < windows.size(); ++w) {
    by_query.at(windows[w].question_index).push_back(&windows[w]);
    logits_by_query[windows[w].question_index].push_back(std::move(logits[w]));
  }
  std::vector<std::vector<QaAnswer>> answers(queries.size());
  for (size_t q = 0; q < queries.size(); ++q) answers[q] = decode_answers(queries[q].context, by_query[q], logits_by_query[q], options);
  return answers;
}

QuestionAnswerer::QuestionAnswerer(const TextModel& model, QaOptions options) : model_(model), options_(std::move(options)) {
  if (!model_.encoder().has_qa_head())
    throw Error("this model has no question-answering head (qa_outputs.weight); tools/train_qa.py makes one");
  if (options_.batch_size < 1) throw Error("qa: batch size must be at least 1");
  if (options_.n_best < 1 || options_.max_answer_length < 1) throw Error("qa: n-best and max answer length must be at least 1");
  const auto positions = static_cast<size_t>(model_.encoder().config().max_position_embeddings);
  if (options_.max_length > positions)
    throw Error("qa: max length " + std::to_string(options_.max_length) + " exceeds the model's " + std::to_string(positions) + " positions");
  policy_ = parse_policy_spec(options_.policy, model_.encoder().config(), model_.exits(), model_.block_skim());
}

std::vector<std::vector<QaAnswer>> QuestionAnswerer::answer(const std::vector<QaQuery>& queries, EmbedStats* stats_out) {
  const std::vector<QaWindow> windows = make_qa_windows(model_.tokenizer(), queries, options_);
  std::vector<EncoderInput> inputs;
  inputs.reserve(windows.size());
  for (const QaWindow& w : windows) inputs.push_back(w.input);

  EmbedStats stats;
  std::vector<BertEncoder::SpanLogits> logits;
  logits.reserve(windows.size());
  const ForwardOptions forward_options{policy_.get(), options_.precision, false};
  const size_t batch = static_cast<size_t>(options_.batch_size);
  for (size_t begin = 0; begin < inputs.size(); begin += batch) {
    const size_t end = std::min(inputs.size(), begin + batch);
    ForwardStats forward_stats;
    const auto outputs = model_.encoder().forward(std::span(inputs).subspan(begin, end - begin), forward_options, &forward_stats);
    stats.forward.add(forward_stats);
    for (size_t i = begin; i < end; ++i) {
      stats.tokens_in += static_cast<int64_t>(inputs[i].ids.size());
      stats.layers_run += outputs[i - begin].exit_layer;
      logits.push_back(model_.encoder().span_logits(outputs[i - begin], inputs[i].ids.size()));
    }
  }
  stats.sequences = windows.size();
  if (stats_out) *stats_out = std::move(stats);
  return decode_answers(queries, windows, std::move(logits), options_);
}

}  // namespace sieve
