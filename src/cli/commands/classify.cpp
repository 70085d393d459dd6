// sieve classify: labels and probabilities from a checkpoint with a sequence-classification head.
#include <algorithm>
#include <cstdio>

#include "cli/commands/common.h"
#include "model/text_classifier.h"
#include "util/error.h"

namespace sieve::cli {

namespace {

struct ClassifyOptions {
  ModelOptions model;
  std::vector<std::string> texts;
  std::string file;
};

void run(const ClassifyOptions& o) {
  TextSource source(o.texts, o.file);
  const TextModel model = load_model(o.model);
  const BertEncoder& enc = model.encoder();
  if (!enc.has_classifier())
    throw Error("this model has no sequence-classification head (classifier.weight); use `sieve embed`, "
                "or fine-tune one with tools/finetune_classifier.py");
  run_streamed(model, source, o.model, [&](size_t, const std::string& text, const SequenceOutput& out) {
    const std::vector<float> p = softmax_probabilities(enc.classify(out));
    const size_t best = static_cast<size_t>(std::max_element(p.begin(), p.end()) - p.begin());
    auto label = [&](size_t c) { return label_name(enc.config(), c); };
    std::printf("{\"text\": %s, \"label\": %s, \"probabilities\": {", json_escape(text).c_str(), json_escape(label(best)).c_str());
    for (size_t c = 0; c < p.size(); ++c) std::printf("%s%s: %s", c ? ", " : "", json_escape(label(c)).c_str(), json_number(p[c]).c_str());
    std::printf("}}\n");
  }, /*cls_only_output=*/true);
}

}  // namespace

void register_classify(CLI::App& app) {
  auto options = std::make_shared<ClassifyOptions>();
  CLI::App* cmd = app.add_subcommand("classify", "Classify texts with the model's sequence-classification head (JSON lines)");
  add_model_options(*cmd, options->model);
  cmd->add_option("texts", options->texts, "Texts to classify");
  cmd->add_option("--file,-f", options->file, "Read texts from FILE, one per line ('-' = stdin)");
  cmd->callback([options] { run(*options); });
}

}  // namespace sieve::cli
