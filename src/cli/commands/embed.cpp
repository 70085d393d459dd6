// sieve embed: sentence embeddings as JSON or .npy, or a cosine-similarity table.
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/commands/common.h"
#include "util/error.h"
#include "util/npy.h"

namespace sieve::cli {

namespace {

struct EmbedOptions {
  ModelOptions model;
  std::vector<std::string> texts;
  std::string file, output;
  bool similarity = false;
};

void print_similarity(const std::vector<std::string>& texts, const std::vector<std::vector<float>>& vectors) {
  auto cosine = [](const std::vector<float>& a, const std::vector<float>& b) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      dot += static_cast<double>(a[i]) * b[i];
      na += static_cast<double>(a[i]) * a[i];
      nb += static_cast<double>(b[i]) * b[i];
    }
    return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
  };
  std::printf("cosine similarity\n");
  for (size_t i = 0; i < texts.size(); ++i) {
    std::printf("[%zu] %s\n", i + 1, texts[i].c_str());
  }
  std::printf("%6s", "");
  for (size_t j = 0; j < texts.size(); ++j) std::printf(" [%4zu]", j + 1);
  std::printf("\n");
  for (size_t i = 0; i < texts.size(); ++i) {
    std::printf("[%3zu] ", i + 1);
    for (size_t j = 0; j < texts.size(); ++j) std::printf(" %6.3f", cosine(vectors[i], vectors[j]));
    std::printf("\n");
  }
}

// Similarity prints an n x n table, so it takes few texts; embeddings stream without a limit.
constexpr size_t kMaxSimilarityTexts = 1000;

// Writes embeddings as they are computed: JSON ({"dim": D, "embeddings": [...]}) or a float32 .npy
// whose header is rewritten with the final row count at the end (it has a fixed size for that).
class EmbeddingWriter {
 public:
  EmbeddingWriter(std::ostream& out, size_t dim, bool npy) : out_(out), dim_(dim), npy_(npy) {
    if (npy_) {
      out_ << npy_header(0, static_cast<int64_t>(dim_));
    } else {
      out_ << "{\"dim\": " << dim_ << ", \"embeddings\": [";
    }
  }
  void add(const std::string& text, const std::vector<float>& vector) {
    if (npy_) {
      out_.write(reinterpret_cast<const char*>(vector.data()), static_cast<std::streamsize>(vector.size() * sizeof(float)));
    } else {
      out_ << (rows_ ? ",\n" : "\n") << "  {\"text\": " << json_escape(text) << ", \"vector\": [";
      for (size_t c = 0; c < vector.size(); ++c) out_ << (c ? ", " : "") << json_number(vector[c]);
      out_ << "]}";
    }
    ++rows_;
    if (!out_) throw Error("writing the embeddings failed: " + std::string(std::strerror(errno)));
  }
  void finish() {
    if (npy_) {
      out_.seekp(0);
      out_ << npy_header(static_cast<int64_t>(rows_), static_cast<int64_t>(dim_));
    } else {
      out_ << "\n]}\n";
    }
  }
  size_t rows() const { return rows_; }

 private:
  std::ostream& out_;
  size_t dim_;
  bool npy_;
  size_t rows_ = 0;
};

void run(const EmbedOptions& o) {
  TextSource source(o.texts, o.file);
  const TextModel model = load_model(o.model);
  if (o.similarity) {
    const auto texts = collect_texts(o.texts, o.file, kMaxSimilarityTexts);
    std::vector<TextPair> inputs;
    for (const auto& t : texts) inputs.push_back({t, ""});
    std::vector<std::vector<float>> vectors(texts.size());
    run_batched(model, inputs, o.model, nullptr, [&](size_t i, const SequenceOutput& out) { vectors[i] = model.embedding(out); });
    return print_similarity(texts, vectors);
  }
  const auto dim = static_cast<size_t>(model.encoder().config().hidden_size);
  auto embed_all = [&](EmbeddingWriter& writer) {
    run_streamed(model, source, o.model,
                 [&](size_t, const std::string& text, const SequenceOutput& out) { writer.add(text, model.embedding(out)); });
    writer.finish();
    return writer.rows();
  };
  if (o.output.empty()) {
    EmbeddingWriter writer(std::cout, dim, false);
    embed_all(writer);
    return;
  }
  size_t rows = 0;
  write_file_atomically(o.output, [&](std::ostream& out) {
    EmbeddingWriter writer(out, dim, std::filesystem::path(o.output).extension() == ".npy");
    rows = embed_all(writer);
  });
  std::fprintf(stderr, "wrote %zu embeddings of dimension %zu to %s\n", rows, dim, o.output.c_str());
}

}  // namespace

void register_embed(CLI::App& app) {
  auto options = std::make_shared<EmbedOptions>();
  CLI::App* cmd = app.add_subcommand("embed", "Sentence embeddings (pooling and normalization as the model directory declares)");
  add_model_options(*cmd, options->model);
  cmd->add_option("texts", options->texts, "Texts to embed");
  cmd->add_option("--file,-f", options->file, "Read texts from FILE, one per line ('-' = stdin)");
  cmd->add_option("--output,-o", options->output, "Write to FILE: .npy (float32 matrix) or JSON (default: JSON on stdout)");
  cmd->add_flag("--similarity", options->similarity, "Print the cosine-similarity matrix of the inputs instead");
  cmd->callback([options] { run(*options); });
}

}  // namespace sieve::cli
