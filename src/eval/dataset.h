#pragma once
// Labelled sentences in GLUE format: TSV as GLUE ships it (header with `sentence` and `label`, or
// `sentence1`/`sentence2` for pair tasks) read here, and the HF parquet files converted through
// tools/glue_to_tsv.py (pyarrow), since no Debian package offers a C++ parquet reader.
#include <filesystem>
#include <string>
#include <vector>

#include "model/text_model.h"

namespace sieve {

struct LabelledExample {
  TextPair text;
  int label = 0;
};

// Throws sieve::Error on a missing file, a header without the needed columns, a bad label, a
// malformed row (naming the line).
std::vector<LabelledExample> load_glue_file(const std::filesystem::path& path);

}  // namespace sieve
