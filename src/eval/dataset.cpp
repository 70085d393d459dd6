#include "eval/dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/files.h"

namespace sieve {

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, '\t')) cells.push_back(cell);
  if (!line.empty() && line.back() == '\t') cells.emplace_back();
  return cells;
}

// A row longer than this is a damaged file (GLUE's longest are a few KiB), and the whole file is
// held as examples, so it is bounded too (GLUE's largest TSV, MNLI's training set, is ~80 MB).
constexpr size_t kMaxRowBytes = 1 << 20;
constexpr uintmax_t kMaxDataBytes = 1ull << 30;

// A TSV with a header row, as cells; rows of fewer than `need` cells (the largest column index any
// caller reads, plus one) are errors naming the line. Empty lines are skipped.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<size_t> line_numbers;
  int column(std::initializer_list<const char*> names) const {
    for (size_t i = 0; i < header.size(); ++i)
      for (const char* n : names)
        if (header[i] == n) return static_cast<int>(i);
    return -1;
  }
};

Table read_table(std::istream& in, const std::string& name) {
  LineReader lines(in, name, kMaxRowBytes);
  std::string line;
  if (!lines.next(line)) throw Error(name + ": empty file");
  Table t;
  t.header = split_tabs(line);
  while (lines.next(line)) {
    if (line.empty()) continue;
    t.rows.push_back(split_tabs(line));
    t.line_numbers.push_back(lines.line_number());
  }
  return t;
}

void check_width(const Table& t, size_t row, std::initializer_list<int> columns, const std::string& name) {
  const size_t need = static_cast<size_t>(std::max(columns)) + 1;
  if (t.rows[row].size() < need)
    throw Error(name + ":" + std::to_string(t.line_numbers[row]) + ": expected " + std::to_string(need) +
                " tab-separated columns, found " + std::to_string(t.rows[row].size()));
}

std::vector<LabelledExample> labelled_examples(const Table& t, const std::string& name) {
  const int sentence = t.column({"sentence"}), first = t.column({"sentence1", "question1", "question"});
  const int second = t.column({"sentence2", "question2"}), label = t.column({"label"});
  if (sentence < 0 && first < 0) throw Error(name + ": header has no 'sentence' (or 'sentence1') column");
  if (label < 0) throw Error(name + ": header has no 'label' column");
  std::vector<LabelledExample> rows;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    check_width(t, r, {sentence, first, second, label}, name);
    const auto& cells = t.rows[r];
    LabelledExample ex;
    ex.text.first = cells[static_cast<size_t>(sentence >= 0 ? sentence : first)];
    if (sentence < 0 && second >= 0) ex.text.second = cells[static_cast<size_t>(second)];
    const std::string& l = cells[static_cast<size_t>(label)];
    const auto [ptr, ec] = std::from_chars(l.data(), l.data() + l.size(), ex.label);
    if (ec != std::errc() || ptr != l.data() + l.size() || ex.label < 0)
      throw Error(name + ":" + std::to_string(t.line_numbers[r]) + ": label '" + l + "' is not a non-negative integer");
    rows.push_back(std::move(ex));
  }
  if (rows.empty()) throw Error(name + ": no examples");
  return rows;
}

std::vector<ScoredPair> scored_pairs(const Table& t, const std::string& name) {
  const int first = t.column({"sentence1"}), second = t.column({"sentence2"}), score = t.column({"score"});
  if (first < 0 || second < 0) throw Error(name + ": header needs 'sentence1' and 'sentence2' columns (and 'score' for similarity)");
  std::vector<ScoredPair> rows;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    check_width(t, r, {first, second, score}, name);
    const auto& cells = t.rows[r];
    ScoredPair p;
    p.text = {cells[static_cast<size_t>(first)], cells[static_cast<size_t>(second)]};
    if (score >= 0) {
      const std::string& v = cells[static_cast<size_t>(score)];
      const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), p.score);
      if (ec != std::errc() || ptr != v.data() + v.size() || !std::isfinite(p.score))
        throw Error(name + ":" + std::to_string(t.line_numbers[r]) + ": score '" + v + "' is not a finite number");
    }
    rows.push_back(std::move(p));
  }
  if (rows.empty()) throw Error(name + ": no examples");
  return rows;
}

// The file as a table: TSV read directly, parquet through tools/glue_to_tsv.py (pyarrow).
Table load_table(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) throw Error("data file not found: " + path.string());
  if (std::filesystem::file_size(path, error) > kMaxDataBytes)
    throw Error(path.string() + ": larger than the " + std::to_string(kMaxDataBytes >> 30) + " GiB Sieve reads as a data set");
  if (path.extension() != ".parquet") {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open " + path.string());
    return read_table(in, path.string());
  }
  const char* py_env = std::getenv("SIEVE_PYTHON");
  const std::string python = py_env && *py_env ? py_env : std::string(SIEVE_SOURCE_DIR) + "/.venv/bin/python";
  // A fresh file with a random name (not "sieve-data-<pid>.tsv", which anyone could plant a link at).
  const TempFile tsv(std::filesystem::temp_directory_path(), "sieve-data-", ".tsv");
  const std::string cmd = "'" + python + "' '" + SIEVE_SOURCE_DIR + "/tools/glue_to_tsv.py' '" + path.string() + "' --out '" + tsv.path().string() + "'";
  if (path.string().find('\'') != std::string::npos) throw Error("data path may not contain a quote: " + path.string());
  if (std::system(cmd.c_str()) != 0) {
    throw Error("could not convert " + path.string() + " (needs the project's Python venv with pyarrow: run scripts/setup.sh)");
  }
  std::ifstream in(tsv.path(), std::ios::binary);
  return read_table(in, path.string());
}

}  // namespace

std::vector<LabelledExample> load_glue_file(const std::filesystem::path& path) {
  return labelled_examples(load_table(path), path.string());
}

std::vector<ScoredPair> load_pair_file(const std::filesystem::path& path) {
  return scored_pairs(load_table(path), path.string());
}

EvalData load_eval_data(const std::filesystem::path& path) {
  const Table t = load_table(path);
  EvalData data;
  if (t.column({"label"}) >= 0) data.labelled = labelled_examples(t, path.string());
  else data.pairs = scored_pairs(t, path.string());
  return data;
}

}  // namespace sieve
