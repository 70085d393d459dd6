#pragma once
// Extractive question answering with a BertForQuestionAnswering checkpoint, through a pruning
// policy: the answer is the span of the context whose start and end logits sum highest.
// Long contexts are cut into overlapping windows the way transformers' run_qa.py does it
// (truncation="only_second", max_length, stride = doc_stride tokens of overlap), and the answer
// is decoded as its utils_qa.py postprocessing does (n-best starts x n-best ends per window, both
// in the context, start <= end, at most max_answer_length tokens, best score over all windows).
// `sieve qa`, `sieve eval` on SQuAD and the bindings all answer through this class.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/text_embedder.h"
#include "model/text_model.h"
#include "policies/layer_policy.h"

namespace sieve {

struct QaOptions {
  std::string policy = "dense";   // a policy spec (policies/policy_spec.h)
  size_t max_length = 384;        // tokens per window, specials included
  size_t doc_stride = 128;        // tokens shared by consecutive windows of a long context
  size_t max_query_length = 64;   // question tokens kept (the rest cut off)
  size_t max_answer_length = 30;  // tokens in an answer
  size_t n_best = 20;             // starts and ends tried per window, and answers returned
  int batch_size = 32;            // windows per forward call
  std::optional<Precision> precision = std::nullopt;  // the GEMMs'; empty = the model's
};

// One window of (question, context): the encoder's input and where its context tokens came from.
struct QaWindow {
  EncoderInput input;
  size_t question_index = 0;  // which question of the call
  size_t context_begin = 0;   // token position of the window's first context token
  // Byte range in the context of each token at context_begin + i.
  std::vector<std::pair<size_t, size_t>> context_bytes;
};

struct QaAnswer {
  std::string text;          // context bytes [begin, end)
  size_t begin = 0, end = 0;
  float score = 0;           // start logit + end logit
  float probability = 0;     // softmax of the scores over the n-best answers
};

struct QaQuery {
  std::string question;
  std::string context;
};

// The windows of one question (run_qa.py's prepare_validation_features). Throws Error for
// invalid UTF-8 or a max_length too small for the question plus one context token.
std::vector<QaWindow> make_qa_windows(const WordPieceTokenizer& tokenizer, const QaQuery& query, size_t question_index,
                                      const QaOptions& options);

// The windows of every query, in order (question_index: the query's place in `queries`).
std::vector<QaWindow> make_qa_windows(const WordPieceTokenizer& tokenizer, const std::vector<QaQuery>& queries,
                                      const QaOptions& options);

// The n-best answers of one question from its windows' logits (window w: logits[w]), best first;
// empty when no valid span exists (every context token pruned, say).
std::vector<QaAnswer> decode_answers(const std::string& context, const std::vector<const QaWindow*>& windows,
                                     const std::vector<BertEncoder::SpanLogits>& logits, const QaOptions& options);
// The same for every query at once: windows and logits as make_qa_windows(queries) and the
// encoder gave them, one set of logits per window.
std::vector<std::vector<QaAnswer>> decode_answers(const std::vector<QaQuery>& queries, const std::vector<QaWindow>& windows,
                                                  std::vector<BertEncoder::SpanLogits> logits, const QaOptions& options);

// Not thread-safe: a policy keeps per-call state. Use one QuestionAnswerer per thread.
class QuestionAnswerer {
 public:
  // Throws Error when the model has no question-answering head, or for a bad policy or option.
  QuestionAnswerer(const TextModel& model, QaOptions options);

  // The n-best answers of each query, in order. Tokenizes everything before running anything, so
  // bad input anywhere throws Error with nothing computed. stats: FLOPs, tokens, windows.
  std::vector<std::vector<QaAnswer>> answer(const std::vector<QaQuery>& queries, EmbedStats* stats = nullptr);

  const QaOptions& options() const { return options_; }

 private:
  const TextModel& model_;
  QaOptions options_;
  std::unique_ptr<PolicyChain> policy_;
};

}  // namespace sieve
