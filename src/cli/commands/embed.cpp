// sieve embed: sentence embeddings as JSON or .npy, or a cosine-similarity table.
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/commands/common.h"
#include "eval/embedding_eval.h"
#include "model/text_embedder.h"
#include "policies/policy_spec.h"
#include "util/progress.h"
#include "util/error.h"
#include "util/npy.h"

namespace sieve::cli {

namespace {

struct EmbedOptions {
  ModelOptions model;
  std::vector<std::string> texts;
  std::string file, output;
  bool similarity = false;
  std::string policy = "dense", pool = "frozen", long_inputs = "truncate";
  size_t chunk_overlap = 32;
};

// Embeds `texts` in forward batches with a progress bar, warning once per truncated input.
std::vector<std::vector<float>> embed_with_progress(TextEmbedder& embedder, const std::vector<std::string>& texts,
                                                    size_t first_index) {
  EmbedStats stats;
  ProgressBar progress("encoding", static_cast<int64_t>(texts.size()));
  auto vectors = embedder.embed(texts, &stats, [&](size_t n) { progress.advance(static_cast<int64_t>(n)); });
  progress.finish();
  for (size_t k = 0; k < stats.truncated_inputs.size() && k < 5; ++k)
    std::fprintf(stderr, "sieve: warning: input %zu truncated to the model's length limit (--long chunk embeds all of it)\n",
                 first_index + stats.truncated_inputs[k] + 1);
  if (stats.truncated_inputs.size() > 5) std::fprintf(stderr, "sieve: warning: %zu inputs truncated in all\n", stats.truncated_inputs.size());
  return vectors;
}

void print_similarity(const std::vector<std::string>& texts, const std::vector<std::vector<float>>& vectors) {
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
  EmbedderOptions eo;
  eo.policy = o.policy, eo.pruned_pooling = parse_pruned_pooling(o.pool), eo.long_inputs = parse_long_input_mode(o.long_inputs);
  eo.max_length = o.model.max_length, eo.chunk_overlap = o.chunk_overlap, eo.batch_size = o.model.batch_size;
  TextEmbedder embedder(model, eo);
  if (o.similarity) {
    const auto texts = collect_texts(o.texts, o.file, kMaxSimilarityTexts);
    return print_similarity(texts, embed_with_progress(embedder, texts, 0));
  }
  const size_t dim = embedder.dimension();
  auto embed_all = [&](EmbeddingWriter& writer) {
    constexpr size_t kChunkTexts = 4096;  // texts (at most 1 MiB each) tokenized and held at once
    std::vector<std::string> texts;
    for (size_t first = 0; source.next_chunk(kChunkTexts, texts); first += texts.size()) {
      const auto vectors = embed_with_progress(embedder, texts, first);
      for (size_t i = 0; i < texts.size(); ++i) writer.add(texts[i], vectors[i]);
    }
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
  cmd->add_option("--policy,-p", options->policy, std::string("Pruning policy spec: ") + kPolicySpecHelp);
  cmd->add_option("--pool", options->pool, "Pooling of pruned tokens: frozen (default: a pruned token keeps its state when pruned) or survivors (the mean of the tokens that reached the last layer)")
      ->check(CLI::IsMember({"frozen", "survivors"}));
  cmd->add_option("--long", options->long_inputs, "Inputs over the length limit: truncate (default) or chunk (overlapping windows, pooled)")
      ->check(CLI::IsMember({"truncate", "chunk"}));
  cmd->add_option("--chunk-overlap", options->chunk_overlap, "Tokens shared by neighbouring windows with --long chunk")->check(CLI::Range(0, 4096));
  cmd->callback([options] { run(*options); });
}

}  // namespace sieve::cli
