// sieve qa: the answer to a question in a context, from a checkpoint with a question-answering
// head (extractive: a span of the context), through a pruning policy.
#include <cstdio>

#include "cli/commands/common.h"
#include "model/question_answerer.h"
#include "policies/policy_spec.h"
#include "util/error.h"
#include "util/files.h"

namespace sieve::cli {

namespace {

struct QaCommandOptions {
  ModelOptions model;
  std::string question, context, context_file, policy = "dense";
  QaOptions qa;
};

void run(QaCommandOptions o) {
  if (o.context.empty() == o.context_file.empty()) throw Error("give the context with exactly one of --context and --context-file");
  const std::string context = o.context_file.empty() ? o.context : read_file_bounded(o.context_file, kMaxTextBytes);
  if (o.question.empty()) throw Error("--question is empty");
  const TextModel model = load_model(o.model);
  o.qa.policy = o.policy;
  o.qa.batch_size = o.model.batch_size;
  if (o.model.max_length) o.qa.max_length = o.model.max_length;
  QuestionAnswerer answerer(model, o.qa);
  EmbedStats stats;
  const auto answers = answerer.answer({{o.question, context}}, &stats).front();
  std::printf("{\"question\": %s, \"answers\": [", json_escape(o.question).c_str());
  for (size_t i = 0; i < answers.size(); ++i) {
    const QaAnswer& a = answers[i];
    std::printf("%s{\"text\": %s, \"start\": %zu, \"end\": %zu, \"score\": %s, \"probability\": %s}", i ? ", " : "",
                json_escape(a.text).c_str(), a.begin, a.end, json_number(a.score).c_str(), json_number(a.probability).c_str());
  }
  std::printf("], \"windows\": %zu, \"tokens\": %lld, \"gflops\": %s}\n", stats.sequences, static_cast<long long>(stats.tokens_in),
              json_number(stats.forward.flops / 1e9).c_str());
}

}  // namespace

void register_qa(CLI::App& app) {
  auto o = std::make_shared<QaCommandOptions>();
  CLI::App* cmd = app.add_subcommand("qa", "Answer a question from a context (extractive QA head; JSON: n-best spans with byte offsets)");
  add_model_options(*cmd, o->model);
  cmd->add_option("--question,-q", o->question, "The question")->required();
  cmd->add_option("--context,-c", o->context, "The context the answer is cut from");
  cmd->add_option("--context-file", o->context_file, "Read the context from FILE");
  cmd->add_option("--policy,-p", o->policy, std::string("Pruning policy spec: ") + kPolicySpecHelp)->capture_default_str();
  cmd->add_option("--doc-stride", o->qa.doc_stride, "Tokens shared by consecutive windows of a long context")->capture_default_str()
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--max-query-length", o->qa.max_query_length, "Question tokens kept")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--max-answer-length", o->qa.max_answer_length, "Tokens in an answer")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--n-best", o->qa.n_best, "Answers returned (and starts/ends tried per window)")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
