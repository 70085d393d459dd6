#pragma once
// Labelled sentences in GLUE format: TSV as GLUE ships it (header with `sentence` and `label`, or
// `sentence1`/`sentence2` for pair tasks) read here, and the HF parquet files converted through
// tools/glue_to_tsv.py (pyarrow), since no Debian package offers a C++ parquet reader.
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "model/text_model.h"

namespace sieve {

struct LabelledExample {
  TextPair text;
  int label = 0;
};

// Sentence pairs for embedding evaluation: `sentence1`, `sentence2` and, for similarity data such as
// STS-B, a gold `score`; without one the pairs are a retrieval task (sentence1 i should find
// sentence2 i among all sentence2).
struct ScoredPair {
  TextPair text;
  double score = std::numeric_limits<double>::quiet_NaN();  // NaN = no score column
};

// Throws sieve::Error on a missing file, a header without the needed columns, a bad label, a
// malformed row (naming the line).
std::vector<LabelledExample> load_glue_file(const std::filesystem::path& path);
// Same errors; also a score that is not a finite number.
std::vector<ScoredPair> load_pair_file(const std::filesystem::path& path);

// Either kind, by the header: a `label` column makes labelled examples, else scored pairs.
struct EvalData {
  std::vector<LabelledExample> labelled;
  std::vector<ScoredPair> pairs;
};
EvalData load_eval_data(const std::filesystem::path& path);

}  // namespace sieve
