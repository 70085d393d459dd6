// sieve tokenize: the ids and pieces the model will see (no weights loaded): word pieces for the
// encoders, byte-level BPE pieces for the decoders (GPT-2 directories, Llama-family GGUF files).
#include <cstdio>

#include "cli/commands/common.h"
#include "model/decoder.h"
#include "tokenizers/byte_bpe.h"
#include "tokenizers/wordpiece.h"
#include "util/error.h"

namespace sieve::cli {

namespace {

struct TokenizeOptions {
  std::string model_dir, pair, file;
  std::vector<std::string> texts;
  size_t max_length = 512;
};

// A decoder's tokenizer: a .gguf file, a directory holding one, or GPT-2's vocab.json + merges.txt.
bool is_decoder_model(const std::filesystem::path& path) {
  std::error_code ignored;
  if (path.extension() == ".gguf") return true;
  if (!std::filesystem::is_directory(path, ignored)) return false;
  if (std::filesystem::exists(path / "vocab.json", ignored) && std::filesystem::exists(path / "merges.txt", ignored)) return true;
  for (const auto& entry : std::filesystem::directory_iterator(path, ignored))
    if (entry.path().extension() == ".gguf") return true;
  return false;
}

void run_decoder(const TokenizeOptions& o, const std::vector<std::string>& texts) {
  if (!o.pair.empty()) throw sieve::Error("--pair applies to encoders (WordPiece); a decoder reads one text");
  const ByteLevelBpe tok = load_decoder_tokenizer(o.model_dir);
  for (const auto& text : texts) {
    std::vector<int32_t> ids = tok.encode(text);
    const bool truncated = ids.size() > o.max_length;
    if (truncated) ids.resize(o.max_length);
    std::string id_list, pieces;
    for (size_t i = 0; i < ids.size(); ++i) {
      id_list += (i ? ", " : "") + std::to_string(ids[i]);
      pieces += (i ? ", " : "") + json_escape(tok.token_bytes(ids[i]));  // a piece may be part of a character: shown replaced
    }
    std::printf("{\"text\": %s, \"ids\": [%s], \"tokens\": [%s], \"truncated\": %s}\n", json_escape(text).c_str(),
                id_list.c_str(), pieces.c_str(), truncated ? "true" : "false");
    if (truncated) std::fprintf(stderr, "sieve: warning: input truncated to %zu tokens\n", o.max_length);
  }
}

void run(const TokenizeOptions& o) {
  const auto texts = collect_texts(o.texts, o.file);
  if (!o.model_dir.empty() && is_decoder_model(o.model_dir)) return run_decoder(o, texts);
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
  CLI::App* cmd = app.add_subcommand("tokenize", "Show token ids and pieces (JSON lines)");
  cmd->add_option("--model", options->model_dir, "Model: encoder directory (vocab.txt or tokenizer.json), GPT-2 directory or .gguf file");
  cmd->add_option("texts", options->texts, "Texts to tokenize");
  cmd->add_option("--file,-f", options->file, "Read texts from FILE, one per line ('-' = stdin)");
  cmd->add_option("--pair", options->pair, "Second sentence: encode each text as the pair (text, PAIR)");
  cmd->add_option("--max-length", options->max_length, "Truncate to this many tokens, specials included")->check(CLI::Range(3, 1 << 20));
  cmd->callback([options] { run(*options); });
}

}  // namespace sieve::cli
