#include "eval/squad.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <span>

#include "policies/policy_spec.h"
#include "tokenizers/unicode_text.h"
#include "util/error.h"
#include "util/json_file.h"
#include "util/progress.h"

#include <utf8proc.h>

namespace sieve {

namespace {

using nlohmann::json;

constexpr uint64_t kMaxSquadBytes = 64ull << 20;  // the v1.1 dev set is 4.9 MB, train 30 MB

const json& field(const json& object, const char* key, json::value_t type, const std::string& where) {
  if (!object.is_object()) throw Error(where + " is not a JSON object");
  const auto it = object.find(key);
  if (it == object.end() || it->type() != type) throw Error(where + ": missing or mistyped field '" + key + "'");
  return *it;
}

// Python's \w after the punctuation step: letters, digits and other numbers (and '_', already gone).
bool is_word_character(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return c == U'_';
  }
}

bool is_ascii_punctuation(char32_t c) {
  return (c >= U'!' && c <= U'/') || (c >= U':' && c <= U'@') || (c >= U'[' && c <= U'`') || (c >= U'{' && c <= U'~');
}

std::vector<std::string> split_words(const std::string& normalized) {
  std::vector<std::string> words;
  size_t begin = 0;
  while (begin < normalized.size()) {
    size_t end = normalized.find(' ', begin);
    if (end == std::string::npos) end = normalized.size();
    if (end > begin) words.push_back(normalized.substr(begin, end - begin));
    begin = end + 1;
  }
  return words;
}

}  // namespace

SquadData load_squad(const std::filesystem::path& path) {
  const json document = read_json_file(path, kMaxSquadBytes);
  const std::string name = path.string();
  SquadData data;
  const json& articles = field(document, "data", json::value_t::array, name);
  for (size_t a = 0; a < articles.size(); ++a) {
    const std::string at_article = name + ": data[" + std::to_string(a) + "]";
    data.titles.push_back(field(articles[a], "title", json::value_t::string, at_article).get<std::string>());
    const json& paragraphs = field(articles[a], "paragraphs", json::value_t::array, at_article);
    for (size_t p = 0; p < paragraphs.size(); ++p) {
      const std::string at_paragraph = at_article + ".paragraphs[" + std::to_string(p) + "]";
      const size_t paragraph = data.contexts.size();
      data.contexts.push_back(field(paragraphs[p], "context", json::value_t::string, at_paragraph).get<std::string>());
      const json& qas = field(paragraphs[p], "qas", json::value_t::array, at_paragraph);
      for (size_t q = 0; q < qas.size(); ++q) {
        const std::string at_question = at_paragraph + ".qas[" + std::to_string(q) + "]";
        SquadQuestion question;
        question.id = field(qas[q], "id", json::value_t::string, at_question).get<std::string>();
        question.question = field(qas[q], "question", json::value_t::string, at_question).get<std::string>();
        question.paragraph = paragraph;
        question.article = a;
        const json& answers = field(qas[q], "answers", json::value_t::array, at_question);
        if (answers.empty()) throw Error(at_question + " has no answer (SQuAD v1.1 questions all have one)");
        for (size_t k = 0; k < answers.size(); ++k) {
          const std::string at_answer = at_question + ".answers[" + std::to_string(k) + "]";
          question.answers.push_back(field(answers[k], "text", json::value_t::string, at_answer).get<std::string>());
          if (!answers[k].is_object() || !answers[k].contains("answer_start")) throw Error(at_answer + ": missing field 'answer_start'");
          question.answer_starts.push_back(static_cast<size_t>(
              json_integer(answers[k].at("answer_start"), 0, std::numeric_limits<int64_t>::max(), at_answer + ": 'answer_start'")));
        }
        data.questions.push_back(std::move(question));
      }
    }
  }
  if (data.questions.empty()) throw Error(name + " holds no question");
  return data;
}

SquadSplit squad_split_of_article(size_t article) {
  if (article % 4 == 3) return SquadSplit::Evaluation;
  if (article % 12 == 1) return SquadSplit::Calibration;
  return SquadSplit::Train;
}

SquadSplit parse_squad_split(std::string_view name) {
  if (name == "train") return SquadSplit::Train;
  if (name == "calibration") return SquadSplit::Calibration;
  if (name == "eval") return SquadSplit::Evaluation;
  throw Error("unknown SQuAD split '" + std::string(name) + "' (train, calibration or eval)");
}

const char* squad_split_name(SquadSplit split) {
  switch (split) {
    case SquadSplit::Train: return "train";
    case SquadSplit::Calibration: return "calibration";
    case SquadSplit::Evaluation: return "eval";
  }
  return "?";
}

std::vector<SquadQuestion> squad_questions(const SquadData& data, SquadSplit split) {
  std::vector<SquadQuestion> chosen;
  for (const SquadQuestion& q : data.questions)
    if (squad_split_of_article(q.article) == split) chosen.push_back(q);
  return chosen;
}

std::string normalize_squad_answer(std::string_view text) {
  // lower() then the punctuation removal: one pass over the code points.
  std::u32string lowered;
  for (const char32_t c : unicode::decode_utf8(text, "answer")) {
    std::u32string one;
    unicode::append_lowercase(c, one);
    for (const char32_t l : one)
      if (!is_ascii_punctuation(l)) lowered.push_back(l);
  }
  // \b(a|an|the)\b -> ' ': a maximal run of word characters that is exactly an article.
  std::u32string no_articles;
  for (size_t i = 0; i < lowered.size();) {
    if (!is_word_character(lowered[i])) {
      no_articles.push_back(lowered[i++]);
      continue;
    }
    size_t end = i;
    while (end < lowered.size() && is_word_character(lowered[end])) ++end;
    const std::u32string_view run(lowered.data() + i, end - i);
    if (run == U"a" || run == U"an" || run == U"the") no_articles.push_back(U' ');
    else no_articles.append(run);
    i = end;
  }
  // ' '.join(text.split())
  std::string out;
  bool pending_space = false;
  for (const char32_t c : no_articles) {
    if (unicode::is_whitespace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    unicode::append_utf8(c, out);
  }
  return out;
}

double squad_exact_match(std::string_view prediction, const std::vector<std::string>& golds) {
  const std::string p = normalize_squad_answer(prediction);
  for (const std::string& g : golds)
    if (normalize_squad_answer(g) == p) return 1.0;
  return 0.0;
}

double squad_f1(std::string_view prediction, const std::vector<std::string>& golds) {
  const std::vector<std::string> predicted = split_words(normalize_squad_answer(prediction));
  double best = 0.0;
  for (const std::string& g : golds) {
    const std::vector<std::string> gold = split_words(normalize_squad_answer(g));
    std::map<std::string, int> counts;  // Counter(prediction) & Counter(gold)
    for (const std::string& w : gold) ++counts[w];
    int same = 0;
    for (const std::string& w : predicted)
      if (auto it = counts.find(w); it != counts.end() && it->second > 0) --it->second, ++same;
    if (same == 0) continue;
    const double precision = static_cast<double>(same) / static_cast<double>(predicted.size());
    const double recall = static_cast<double>(same) / static_cast<double>(gold.size());
    best = std::max(best, 2 * precision * recall / (precision + recall));
  }
  return best;
}

std::vector<SquadEvalResult> evaluate_squad(const TextModel& model, const SquadData& data,
                                            const std::vector<SquadQuestion>& all, const std::vector<std::string>& specs,
                                            const SquadEvalOptions& options) {
  const BertEncoder& enc = model.encoder();
  if (!enc.has_qa_head()) throw Error("this model has no question-answering head (qa_outputs.weight); tools/train_qa.py makes one");
  const size_t n = options.limit ? std::min(options.limit, all.size()) : all.size();
  if (n == 0) throw Error("no SQuAD question to evaluate");
  std::vector<std::string> settings{"dense"};
  settings.insert(settings.end(), specs.begin(), specs.end());
  std::vector<std::unique_ptr<PolicyChain>> policies;
  for (const auto& s : settings) policies.push_back(parse_policy_spec(s, enc.config(), model.exits(), model.block_skim()));

  std::vector<QaQuery> queries;
  for (size_t q = 0; q < n; ++q) queries.push_back({all[q].question, data.contexts[all[q].paragraph]});
  const std::vector<QaWindow> windows = make_qa_windows(model.tokenizer(), queries, options.qa);
  std::vector<EncoderInput> inputs;
  for (const QaWindow& w : windows) inputs.push_back(w.input);

  const size_t batch = static_cast<size_t>(std::max(1, options.qa.batch_size));
  std::vector<SquadEvalResult> results(settings.size());
  std::vector<ForwardStats> stats(settings.size());
  std::vector<double> seconds(settings.size(), 0.0);
  std::vector<std::vector<BertEncoder::SpanLogits>> logits(settings.size());
  for (size_t s = 0; s < settings.size(); ++s)  // untimed warm-up, so first-touch costs land on nobody
    enc.forward(std::span(inputs).subspan(0, std::min(batch, inputs.size())), {policies[s].get(), options.qa.precision});

  ProgressBar progress(options.progress_label, static_cast<int64_t>(inputs.size()));
  for (size_t begin = 0; begin < inputs.size(); begin += batch) {
    const size_t end = std::min(inputs.size(), begin + batch);
    for (size_t s = 0; s < settings.size(); ++s) {
      ForwardStats st;
      const auto t0 = std::chrono::steady_clock::now();
      const auto outputs = enc.forward(std::span(inputs).subspan(begin, end - begin), {policies[s].get(), options.qa.precision}, &st);
      for (size_t i = begin; i < end; ++i) logits[s].push_back(enc.span_logits(outputs[i - begin], inputs[i].ids.size()));
      seconds[s] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      stats[s].add(st);
    }
    progress.advance(static_cast<int64_t>(end - begin));
  }
  progress.finish();

  const size_t layers = static_cast<size_t>(enc.config().num_hidden_layers);
  for (size_t s = 0; s < settings.size(); ++s) {
    SquadEvalResult& r = results[s];
    r.spec = settings[s];
    r.description = policies[s]->describe();
    r.questions = n;
    r.windows = windows.size();
    const auto answers = decode_answers(queries, windows, std::move(logits[s]), options.qa);
    double em = 0, f1 = 0;
    size_t agree = 0;
    for (size_t q = 0; q < n; ++q) {
      r.predictions.push_back(answers[q].empty() ? std::string() : answers[q].front().text);
      em += squad_exact_match(r.predictions.back(), all[q].answers);
      f1 += squad_f1(r.predictions.back(), all[q].answers);
      agree += r.predictions.back() == results[0].predictions[q];
    }
    r.exact_match = 100.0 * em / static_cast<double>(n);
    r.f1 = 100.0 * f1 / static_cast<double>(n);
    r.agreement_with_dense = static_cast<double>(agree) / static_cast<double>(n);
    r.gflops_per_question = stats[s].flops / 1e9 / static_cast<double>(n);
    r.flops_reduction = stats[0].flops / stats[s].flops;
    r.total_seconds = seconds[s];
    r.latency_ms_per_question = seconds[s] * 1e3 / static_cast<double>(n);
    r.speedup = seconds[0] / seconds[s];
    for (size_t l = 0; l < layers; ++l)
      r.tokens_kept.push_back(static_cast<double>(stats[s].tokens_per_layer[l]) / static_cast<double>(stats[0].tokens_per_layer[l]));
  }
  return results;
}

}  // namespace sieve
