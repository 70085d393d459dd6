#pragma once
// SQuAD v1.1: the official JSON, the official metrics (exact match and F1 after the official
// answer normalization, max over the gold answers, as evaluate-v1.1.py computes them), the split
// of the dev set by article that every Sieve number uses, and the evaluation of pruning policies
// on it against dense in the same run (settings interleaved window batch by window batch).
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/question_answerer.h"

namespace sieve {

struct SquadQuestion {
  std::string id;
  std::string question;
  size_t paragraph = 0;              // index into SquadData::contexts
  size_t article = 0;                // index of its article in the file
  std::vector<std::string> answers;  // the gold answer texts (duplicates kept, as the file has them)
  std::vector<size_t> answer_starts; // their character offsets in the context, as the file has them
};

struct SquadData {
  std::vector<std::string> titles;    // per article
  std::vector<std::string> contexts;  // per paragraph
  std::vector<SquadQuestion> questions;
};

// Reads a SQuAD v1.1 file (data[].paragraphs[].qas[]). Throws Error, naming the place, for a
// missing or malformed file, a question without answers, invalid UTF-8. At most 64 MiB.
SquadData load_squad(const std::filesystem::path& path);

// The split of the dev set by article (no article on two sides): article i evaluates when
// i % 4 == 3 (12 of the 48), calibrates when i % 12 == 1 (4: thresholds are chosen there), and
// trains otherwise (32). tools/train_qa.py uses the same rule.
enum class SquadSplit { Train, Calibration, Evaluation };
SquadSplit squad_split_of_article(size_t article);
SquadSplit parse_squad_split(std::string_view name);  // "train" | "calibration" | "eval"; throws Error
const char* squad_split_name(SquadSplit split);
// The questions of `data` in `split`, in file order.
std::vector<SquadQuestion> squad_questions(const SquadData& data, SquadSplit split);

// evaluate-v1.1.py's normalize_answer: lower case, ASCII punctuation removed, the words a, an and
// the removed, whitespace runs collapsed to one space and trimmed.
std::string normalize_squad_answer(std::string_view text);
// Max over the gold answers, in [0, 1].
double squad_exact_match(std::string_view prediction, const std::vector<std::string>& golds);
double squad_f1(std::string_view prediction, const std::vector<std::string>& golds);

struct SquadEvalOptions {
  QaOptions qa;            // windows and decoding; qa.policy is ignored (settings give it)
  size_t limit = 0;        // 0 = all questions
  std::string progress_label = "answering";
};

struct SquadEvalResult {
  std::string spec;
  std::string description;
  size_t questions = 0, windows = 0;
  double exact_match = 0, f1 = 0;      // percent, as the official script prints them
  double agreement_with_dense = 1.0;   // fraction of questions with dense's answer text
  double gflops_per_question = 0, flops_reduction = 1.0;
  double latency_ms_per_question = 0, total_seconds = 0, speedup = 1.0;
  std::vector<double> tokens_kept;     // per layer: rows entering the FFN / dense's
  std::vector<std::string> predictions;  // best answer text per question
};

// results[0] is dense; then one per spec. Settings run the same window batches in turn.
std::vector<SquadEvalResult> evaluate_squad(const TextModel& model, const SquadData& data,
                                            const std::vector<SquadQuestion>& questions,
                                            const std::vector<std::string>& specs, const SquadEvalOptions& options);

}  // namespace sieve
