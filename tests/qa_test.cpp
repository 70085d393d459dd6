// Extractive question answering: the QA head, the windows of long contexts and the span decoding
// against transformers (tools/make_qa_reference.py: the default model with a seeded random
// qa_outputs head, run_qa.py's windows and utils_qa's postprocessing), SQuAD's official metric
// against evaluate-v1.1.py's definitions, the data reader against hostile files, and a policy that
// prunes nothing giving dense's answers exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/squad.h"
#include "model/question_answerer.h"
#include "model/text_model.h"
#include "policies/policy_spec.h"
#include "reference_data.h"
#include "test_helpers.h"
#include "util/error.h"

namespace sieve {
namespace {

using nlohmann::json;

constexpr float kLogitTolerance = 1e-4f;

class QaReference : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto path = testing::reference_dir() / "qa" / "qa_reference.json";
    SIEVE_REQUIRE_FILE(path);
    std::ifstream in(path);
    reference_ = json::parse(in);
    model_ = std::make_unique<TextModel>(TextModel::load(testing::reference_dir() / "qa" / "minilm-qa"));
  }

  static QaOptions options_of(const json& c) {
    QaOptions o;
    o.max_length = c.at("max_length").get<size_t>();
    o.doc_stride = c.at("doc_stride").get<size_t>();
    return o;
  }

  json reference_;
  std::unique_ptr<TextModel> model_;
};

TEST_F(QaReference, WindowsHeadAndBestSpanEqualTransformers) {
  ASSERT_TRUE(model_->encoder().has_qa_head());
  const json& cases = reference_.at("cases");
  ASSERT_GE(cases.size(), 50u);
  size_t multi_window = 0, same_span = 0;
  float worst = 0.0f;
  for (size_t c = 0; c < cases.size(); ++c) {
    const json& ref = cases[c];
    const QaOptions options = options_of(ref);
    const QaQuery query{ref.at("question").get<std::string>(), ref.at("context").get<std::string>()};
    const std::vector<QaWindow> windows = make_qa_windows(model_->tokenizer(), query, 0, options);
    ASSERT_EQ(windows.size(), ref.at("windows").size()) << "case " << c;
    multi_window += windows.size() > 1;
    std::vector<BertEncoder::SpanLogits> logits;
    std::vector<const QaWindow*> pointers;
    for (size_t w = 0; w < windows.size(); ++w) {
      const json& rw = ref.at("windows")[w];
      ASSERT_EQ(windows[w].input.ids, rw.at("ids").get<std::vector<int32_t>>()) << "case " << c << " window " << w;
      ASSERT_EQ(windows[w].input.type_ids, rw.at("type_ids").get<std::vector<int32_t>>()) << "case " << c << " window " << w;
      const auto out = model_->encoder().forward(std::span(&windows[w].input, 1));
      logits.push_back(model_->encoder().span_logits(out[0], windows[w].input.ids.size()));
      const auto start = rw.at("start_logits").get<std::vector<float>>(), end = rw.at("end_logits").get<std::vector<float>>();
      ASSERT_EQ(logits.back().start.size(), start.size());
      for (size_t t = 0; t < start.size(); ++t) {
        worst = std::max({worst, std::abs(logits.back().start[t] - start[t]), std::abs(logits.back().end[t] - end[t])});
      }
      pointers.push_back(&windows[w]);
    }
    const std::vector<QaAnswer> answers = decode_answers(query.context, pointers, logits, options);
    ASSERT_FALSE(answers.empty()) << "case " << c;
    const json& best = ref.at("best");
    const bool same = answers[0].begin == best.at("byte_begin").get<size_t>() && answers[0].end == best.at("byte_end").get<size_t>();
    same_span += same;
    // Only a near tie (a margin within the logits' tolerance) may be decided differently.
    if (!same) EXPECT_LT(best.at("margin").get<double>(), 2 * kLogitTolerance) << "case " << c << ": " << answers[0].text;
    else EXPECT_EQ(answers[0].text, best.at("text").get<std::string>());
    EXPECT_NEAR(answers[0].score, best.at("score").get<double>(), 2 * kLogitTolerance) << "case " << c;
    // The official metric of that answer, as evaluate-v1.1.py scored it.
    const auto golds = ref.at("golds").get<std::vector<std::string>>();
    EXPECT_DOUBLE_EQ(squad_exact_match(answers[0].text, golds), best.at("em").get<double>()) << "case " << c;
    EXPECT_NEAR(squad_f1(answers[0].text, golds), best.at("f1").get<double>(), 1e-12) << "case " << c;
  }
  EXPECT_LT(worst, kLogitTolerance);
  EXPECT_GE(same_span, 50u);
  EXPECT_GE(multi_window, 5u) << "the reference should exercise contexts longer than one window";
  std::printf("QA parity: %zu cases (%zu over several windows), same best span %zu, max logit error %.2e\n", cases.size(),
              multi_window, same_span, static_cast<double>(worst));
}

TEST_F(QaReference, QuestionAnswererBatchedEqualsOneByOneAndNothingPrunedEqualsDense) {
  const json& cases = reference_.at("cases");
  std::vector<QaQuery> queries;
  for (size_t c = 0; c < 12; ++c) queries.push_back({cases[c].at("question").get<std::string>(), cases[c].at("context").get<std::string>()});
  QaOptions one;
  one.batch_size = 1;
  const auto single = QuestionAnswerer(*model_, one).answer(queries);
  for (const char* spec : {"dense", "spatten:tokens=1,heads=1", "ltp:final=0"}) {
    QaOptions batched;
    batched.policy = spec;
    batched.batch_size = 5;
    EmbedStats stats;
    const auto answers = QuestionAnswerer(*model_, batched).answer(queries, &stats);
    ASSERT_EQ(answers.size(), queries.size());
    EXPECT_EQ(stats.sequences, queries.size());
    for (size_t q = 0; q < queries.size(); ++q) {
      ASSERT_EQ(answers[q].size(), single[q].size()) << spec;
      for (size_t k = 0; k < answers[q].size(); ++k) {
        EXPECT_EQ(answers[q][k].text, single[q][k].text) << spec << " question " << q;
        EXPECT_NEAR(answers[q][k].score, single[q][k].score, 1e-4) << spec << " question " << q;
      }
    }
  }
}

TEST_F(QaReference, PrunedContextTokensCannotBeAnswers) {
  const json& c = reference_.at("cases")[0];
  const QaQuery query{c.at("question").get<std::string>(), c.at("context").get<std::string>()};
  QaOptions options;
  options.policy = "spatten:tokens=0.3,start=0";
  const auto answers = QuestionAnswerer(*model_, options).answer({query});
  const auto windows = make_qa_windows(model_->tokenizer(), query, 0, options);
  auto chain = parse_policy_spec(options.policy, model_->encoder().config());
  const auto out = model_->encoder().forward(std::span(&windows[0].input, 1), {chain.get()});
  const auto logits = model_->encoder().span_logits(out[0], windows[0].input.ids.size());
  size_t pruned = 0;
  for (size_t t = 0; t < logits.start.size(); ++t) pruned += std::isinf(logits.start[t]);
  EXPECT_GT(pruned, 0u);
  for (int32_t p : out[0].positions) EXPECT_FALSE(std::isinf(logits.start[static_cast<size_t>(p)]));
  // The question and the specials always stay.
  for (size_t t = 0; t < windows[0].context_begin; ++t) EXPECT_FALSE(std::isinf(logits.start[t])) << t;
  for (const QaAnswer& a : answers[0]) EXPECT_TRUE(std::isfinite(a.score));
}

// The CLI: `sieve qa` answers through QuestionAnswerer, and `sieve explain` on a QA model shows the
// first window of the same input with the same best answer.
TEST_F(QaReference, QaAndExplainCommandsGiveTheLibrarysAnswer) {
  const json& c = reference_.at("cases")[0];
  const QaQuery query{c.at("question").get<std::string>(), c.at("context").get<std::string>()};
  const auto expected = QuestionAnswerer(*model_, QaOptions{}).answer({query})[0];
  ASSERT_FALSE(expected.empty());
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("sieve-qa-cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path context = dir / "context.txt", page = dir / "explain.html";
  std::ofstream(context) << query.context;
  const std::string model = " --model " + testing::quoted(testing::reference_dir() / "qa" / "minilm-qa");
  const std::string question = " -q " + testing::quoted(query.question);
  const testing::CliResult qa = testing::run_cli("qa" + model + question + " --context-file " + testing::quoted(context));
  ASSERT_TRUE(qa.exited && qa.code == 0) << qa.output;
  const json answers = json::parse(qa.output).at("answers");
  EXPECT_EQ(answers.at(0).at("text").get<std::string>(), expected[0].text);
  EXPECT_EQ(answers.at(0).at("start").get<size_t>(), expected[0].begin);

  {  // case 0 is one window without single quotes, so it passes through the shell as it is
    ASSERT_EQ(query.context.find('\''), std::string::npos);
    const testing::CliResult explain = testing::run_cli("explain" + model + " -p dense -o " + testing::quoted(page) + " --json " + testing::quoted(dir / "trace.json") + " " +
                                                        testing::quoted(query.question) + " --pair " + testing::quoted(query.context));
    ASSERT_TRUE(explain.exited && explain.code == 0) << explain.output;
    std::ifstream in(page);
    const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(html.find("<b>Answer:</b> " + expected[0].text + "<"), std::string::npos) << expected[0].text;
    std::ifstream trace_file(dir / "trace.json");
    const json trace = json::parse(trace_file);
    EXPECT_EQ(trace.at("prediction").get<std::string>(), expected[0].text);
    EXPECT_EQ(trace.at("layers").size(), model_->encoder().config().num_hidden_layers);
    const auto windows = make_qa_windows(model_->tokenizer(), query, 0, QaOptions{});
    EXPECT_EQ(trace.at("tokens").size(), windows[0].input.ids.size());
    EXPECT_EQ(trace.at("context_begin").get<size_t>(), windows[0].context_begin);
  }
  // Bad input: no context, both contexts, an empty question.
  EXPECT_NE(testing::run_cli("qa" + model + question).code, 0);
  EXPECT_NE(testing::run_cli("qa" + model + question + " -c x --context-file " + testing::quoted(context)).code, 0);
  EXPECT_NE(testing::run_cli("qa" + model + " -q '' -c x").code, 0);
  std::filesystem::remove_all(dir);
}

// Spans by hand: one window, context tokens at positions 2..5.
TEST(QaDecoding, KeepsSpansInsideTheContextOrderedAndShort) {
  QaWindow w;
  w.input.ids = {101, 7, 102, 11, 12, 13, 14, 102};
  w.context_begin = 3;
  w.context_bytes = {{0, 3}, {4, 7}, {8, 11}, {12, 15}};
  const std::string context = "abc def ghi jkl";
  const float inf = std::numeric_limits<float>::infinity();
  BertEncoder::SpanLogits l;
  // The highest start is the question token (1) and the highest end the [SEP] (7): both refused.
  l.start = {0, 9, 0, 1, 5, 2, -inf, 0};
  l.end = {0, 0, 0, 0, 1, 4, 3, 9};
  QaOptions options;
  options.max_answer_length = 2;
  const auto answers = decode_answers(context, {&w}, {l}, options);
  ASSERT_FALSE(answers.empty());
  EXPECT_EQ(answers[0].text, "def ghi");  // start 4 (5) + end 5 (4)
  EXPECT_FLOAT_EQ(answers[0].score, 9.0f);
  for (const QaAnswer& a : answers) {
    EXPECT_LE(a.begin, a.end);
    EXPECT_TRUE(std::isfinite(a.score));
    EXPECT_NE(a.text, "def ghi jkl");  // 3 tokens: over max_answer_length
  }
  double total = 0;
  for (const QaAnswer& a : answers) total += a.probability;
  EXPECT_NEAR(total, 1.0, 1e-5);
  for (size_t k = 1; k < answers.size(); ++k) EXPECT_GE(answers[k - 1].score, answers[k].score);
  // Every context token pruned: no answer at all.
  BertEncoder::SpanLogits none{{0, 9, 0, -inf, -inf, -inf, -inf, 0}, {0, 0, 0, -inf, -inf, -inf, -inf, 9}};
  EXPECT_TRUE(decode_answers(context, {&w}, {none}, options).empty());
}

TEST(QaWindows, OverlapByTheStrideAndCoverTheContext) {
  const TextModel model = TextModel::load(testing::reference_model_dir());
  std::string context;
  for (int i = 0; i < 150; ++i) context += "word" + std::to_string(i % 10) + " ";
  QaOptions options;
  options.max_length = 40;
  options.doc_stride = 10;
  const auto windows = make_qa_windows(model.tokenizer(), {"  which word?", context}, 3, options);
  ASSERT_GT(windows.size(), 2u);
  const size_t budget = options.max_length - (windows[0].context_begin + 1);
  size_t covered = 0;
  for (size_t w = 0; w < windows.size(); ++w) {
    EXPECT_EQ(windows[w].question_index, 3u);
    EXPECT_LE(windows[w].input.ids.size(), options.max_length);
    EXPECT_EQ(windows[w].input.is_special.back(), 1);
    if (w + 1 < windows.size()) {
      EXPECT_EQ(windows[w].context_bytes.size(), budget);
      // The next window starts doc_stride tokens before this one ends.
      EXPECT_EQ(windows[w + 1].context_bytes.front(), windows[w].context_bytes[budget - options.doc_stride]);
    }
    covered = windows[w].context_bytes.back().second;
  }
  EXPECT_EQ(covered, context.size() - 1);  // up to the last word; the trailing space is no token
  // The leading spaces of the question are dropped, as run_qa.py does.
  EXPECT_EQ(windows[0].input.ids, make_qa_windows(model.tokenizer(), {"which word?", context}, 3, options)[0].input.ids);

  // An empty context: one window with no context token, and no answer.
  const auto empty = make_qa_windows(model.tokenizer(), {"which word?", ""}, 0, options);
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_TRUE(empty[0].context_bytes.empty());
  // A question longer than max_query_length is cut; a max_length with no room for context is refused.
  std::string long_question;
  for (int i = 0; i < 200; ++i) long_question += "why ";
  QaOptions tight;
  tight.max_length = 20;
  tight.max_query_length = 64;
  EXPECT_THROW(make_qa_windows(model.tokenizer(), {long_question, context}, 0, tight), Error);
  tight.max_query_length = 8;
  EXPECT_EQ(make_qa_windows(model.tokenizer(), {long_question, context}, 0, tight)[0].context_begin, 10u);
  EXPECT_THROW(make_qa_windows(model.tokenizer(), {"ok?", "bad \xff utf-8"}, 0, options), Error);
}

TEST(SquadMetric, NormalizationMatchesTheOfficialScript) {
  const auto path = testing::reference_dir() / "qa" / "qa_reference.json";
  SIEVE_REQUIRE_FILE(path);
  std::ifstream in(path);
  const json reference = json::parse(in);
  for (const json& c : reference.at("normalize_cases"))
    EXPECT_EQ(normalize_squad_answer(c.at("text").get<std::string>()), c.at("normalized").get<std::string>()) << c.at("text");
}

TEST(SquadMetric, HandComputedScores) {
  EXPECT_EQ(squad_exact_match("The Denver Broncos", {"Denver Broncos", "Broncos"}), 1.0);
  EXPECT_EQ(squad_exact_match("Denver", {"Denver Broncos"}), 0.0);
  // pred {denver, broncos, team} vs gold {denver, broncos}: p 2/3, r 1 -> 0.8
  EXPECT_NEAR(squad_f1("the Denver Broncos team", {"Denver Broncos"}), 0.8, 1e-12);
  // max over golds: {broncos} vs {broncos}: 1
  EXPECT_NEAR(squad_f1("Broncos", {"Denver Broncos", "the Broncos"}), 1.0, 1e-12);
  // repeated words count as often as both sides have them: pred {a1, a1, b} gold {a1, b, b}: same 2 -> 2/3
  EXPECT_NEAR(squad_f1("a1 a1 b", {"a1 b b"}), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(squad_f1("", {"Broncos"}), 0.0);
  EXPECT_EQ(squad_f1("the", {"a"}), 0.0);  // both normalize to nothing: the official script gives 0
}

TEST(SquadData, SplitByArticleAndReadTheDevFile) {
  size_t counts[3] = {0, 0, 0};
  for (size_t a = 0; a < 48; ++a) ++counts[static_cast<int>(squad_split_of_article(a))];
  EXPECT_EQ(counts[static_cast<int>(SquadSplit::Train)], 32u);
  EXPECT_EQ(counts[static_cast<int>(SquadSplit::Calibration)], 4u);
  EXPECT_EQ(counts[static_cast<int>(SquadSplit::Evaluation)], 12u);
  EXPECT_EQ(parse_squad_split("eval"), SquadSplit::Evaluation);
  EXPECT_THROW(parse_squad_split("test"), Error);

  const std::filesystem::path dev = std::filesystem::path(SIEVE_SHARED_DATA_DIR) / "squad" / "dev-v1.1.json";
  SIEVE_REQUIRE_FILE(dev);
  const SquadData data = load_squad(dev);
  EXPECT_EQ(data.titles.size(), 48u);
  EXPECT_EQ(data.questions.size(), 10570u);
  size_t in_splits = 0;
  for (const char* split : {"train", "calibration", "eval"}) {
    const auto questions = squad_questions(data, parse_squad_split(split));
    in_splits += questions.size();
    for (const SquadQuestion& q : questions) EXPECT_EQ(squad_split_of_article(q.article), parse_squad_split(split));
  }
  EXPECT_EQ(in_splits, data.questions.size());
  // Every gold answer sits in its context where the file says (character offsets).
  const SquadQuestion& q = data.questions.front();
  EXPECT_FALSE(q.answers.empty());
  EXPECT_NE(data.contexts[q.paragraph].find(q.answers.front()), std::string::npos);
}

TEST(SquadData, HostileFilesGiveClearErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("sieve-squad-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto message = [&](const std::string& text) {
    const auto path = dir / "bad.json";
    std::ofstream(path) << text;
    try {
      load_squad(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("{").find("bad.json"), std::string::npos);
  EXPECT_NE(message("[]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(message(R"({"data": 3})").find("'data'"), std::string::npos);
  EXPECT_NE(message(R"({"data": [{"title": "t"}]})").find("'paragraphs'"), std::string::npos);
  EXPECT_NE(message(R"({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q", "answers": []}]}]}]})")
                .find("no answer"), std::string::npos);
  EXPECT_NE(message(R"({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q", "answers": [{"text": "c", "answer_start": -1}]}]}]}]})")
                .find("'answer_start'"), std::string::npos);
  EXPECT_NE(message(R"({"data": []})").find("no question"), std::string::npos);
  EXPECT_THROW(load_squad(dir / "missing.json"), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sieve
