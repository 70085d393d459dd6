#include "eval/dataset.h"

#include <algorithm>
#include <charconv>
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

std::vector<LabelledExample> read_tsv(std::istream& in, const std::string& name) {
  LineReader lines(in, name, kMaxRowBytes);
  std::string line;
  if (!lines.next(line)) throw Error(name + ": empty file");
  const auto header = split_tabs(line);
  int sentence = -1, first = -1, second = -1, label = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == "sentence") sentence = static_cast<int>(i);
    if (header[i] == "sentence1" || header[i] == "question1" || header[i] == "question") first = static_cast<int>(i);
    if (header[i] == "sentence2" || header[i] == "question2") second = static_cast<int>(i);
    if (header[i] == "label") label = static_cast<int>(i);
  }
  if (sentence < 0 && first < 0) throw Error(name + ": header has no 'sentence' (or 'sentence1') column");
  if (label < 0) throw Error(name + ": header has no 'label' column");
  std::vector<LabelledExample> rows;
  while (lines.next(line)) {
    const size_t line_no = lines.line_number();
    if (line.empty()) continue;
    const auto cells = split_tabs(line);
    const size_t need = static_cast<size_t>(std::max({sentence, first, second, label})) + 1;
    if (cells.size() < need) throw Error(name + ":" + std::to_string(line_no) + ": expected " + std::to_string(need) + " tab-separated columns, found " + std::to_string(cells.size()));
    LabelledExample ex;
    ex.text.first = cells[static_cast<size_t>(sentence >= 0 ? sentence : first)];
    if (sentence < 0 && second >= 0) ex.text.second = cells[static_cast<size_t>(second)];
    const std::string& l = cells[static_cast<size_t>(label)];
    const auto [ptr, ec] = std::from_chars(l.data(), l.data() + l.size(), ex.label);
    if (ec != std::errc() || ptr != l.data() + l.size() || ex.label < 0)
      throw Error(name + ":" + std::to_string(line_no) + ": label '" + l + "' is not a non-negative integer");
    rows.push_back(std::move(ex));
  }
  if (rows.empty()) throw Error(name + ": no examples");
  return rows;
}

}  // namespace

std::vector<LabelledExample> load_glue_file(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) throw Error("data file not found: " + path.string());
  if (std::filesystem::file_size(path, error) > kMaxDataBytes)
    throw Error(path.string() + ": larger than the " + std::to_string(kMaxDataBytes >> 30) + " GiB Sieve reads as a data set");
  if (path.extension() != ".parquet") {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open " + path.string());
    return read_tsv(in, path.string());
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
  return read_tsv(in, path.string());
}

}  // namespace sieve
