// sieve tokenize: the ids and word pieces the model will see (no weights loaded).
#include <cstdio>

#include "cli/commands/common.h"
#include "tokenizers/wordpiece.h"

namespace sieve::cli {

namespace {

struct TokenizeOptions {
  std::string model_dir, pair, file;
  std::vector<std::string> texts;
  size_t max_length = 512;
};

void run(const TokenizeOptions& o) {
  const auto texts = collect_texts(o.texts, o.file);
  const auto tok = WordPieceTokenizer::from_model_dir(o.model_dir.empty() ? default_model_dir() : std::filesystem::path(o.model_dir));
  for (const auto& text : texts) {
    const Encoding e = o.pair.empty() ? tok.encode(text, o.max_length) : tok.encode_pair(text, o.pair, o.max_length);
    std::string ids, tokens, types;
    for (size_t i = 0; i < e.ids.size(); ++i) {
      ids += (i ? ", " : "") + std::to_string(e.ids[i]);
      types += (i ? ", " : "") + std::to_string(e.type_ids[i]);
      tokens += (i ? ", " : "") + json_escape(e.tokens[i]);
    }
    std::printf("{\"text\": %s, \"ids\": [%s], \"tokens\": [%s], \"type_ids\": [%s], \"truncated\": %s}\n",
                json_escape(text).c_str(), ids.c_str(), tokens.c_str(), types.c_str(), e.truncated ? "true" : "false");
    if (e.truncated) std::fprintf(stderr, "sieve: warning: input truncated to %zu tokens\n", o.max_length);
  }
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Show token ids and word pieces (JSON lines)");
  cmd->add_option("--model", options->model_dir, "Model directory (vocab.txt or tokenizer.json)");
  cmd->add_option("texts", options->texts, "Texts to tokenize");
  cmd->add_option("--file,-f", options->file, "Read texts from FILE, one per line ('-' = stdin)");
  cmd->add_option("--pair", options->pair, "Second sentence: encode each text as the pair (text, PAIR)");
  cmd->add_option("--max-length", options->max_length, "Truncate to this many tokens, specials included")->check(CLI::Range(3, 1 << 20));
  cmd->callback([options] { run(*options); });
}

}  // namespace sieve::cli
