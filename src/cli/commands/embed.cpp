// sieve embed: sentence embeddings as JSON or .npy, or a cosine-similarity table.
#include <cmath>
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

void run(const EmbedOptions& o) {
  const auto texts = collect_texts(o.texts, o.file);
  const TextModel model = load_model(o.model);
  std::vector<TextPair> inputs;
  for (const auto& t : texts) inputs.push_back({t, ""});
  std::vector<std::vector<float>> vectors(texts.size());
  run_batched(model, inputs, o.model, nullptr, [&](size_t i, const SequenceOutput& out) { vectors[i] = model.embedding(out); });

  if (o.similarity) return print_similarity(texts, vectors);
  const size_t dim = vectors.empty() ? 0 : vectors[0].size();
  auto write_json = [&](std::ostream& out) {
    out << "{\"dim\": " << dim << ", \"embeddings\": [\n";
    for (size_t i = 0; i < vectors.size(); ++i) {
      out << "  {\"text\": " << json_escape(texts[i]) << ", \"vector\": [";
      char buf[32];
      for (size_t c = 0; c < dim; ++c) {
        std::snprintf(buf, sizeof buf, "%s%.7g", c ? ", " : "", static_cast<double>(vectors[i][c]));
        out << buf;
      }
      out << "]}" << (i + 1 < vectors.size() ? ",\n" : "\n");
    }
    out << "]}\n";
  };
  if (o.output.empty()) return write_json(std::cout);
  write_file_atomically(o.output, [&](const std::filesystem::path& tmp) {
    if (std::filesystem::path(o.output).extension() == ".npy") {
      std::vector<float> flat;
      for (const auto& v : vectors) flat.insert(flat.end(), v.begin(), v.end());
      write_npy(tmp, flat, static_cast<int64_t>(vectors.size()), static_cast<int64_t>(dim));
    } else {
      std::ofstream out(tmp);
      if (!out) throw Error("cannot write " + o.output);
      write_json(out);
    }
  });
  std::fprintf(stderr, "wrote %zu embeddings of dimension %zu to %s\n", vectors.size(), dim, o.output.c_str());
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
