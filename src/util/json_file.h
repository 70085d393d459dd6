#pragma once
// One bounded reader for every JSON document Sieve loads: config.json, tokenizer.json,
// tokenizer_config.json, vocab.json, exits.json, the sentence-transformers files and safetensors
// headers. Each is read with a size limit checked before the bytes are, parsed in linear time
// with a nesting-depth limit, and refused if an object repeats a key (JSON libraries disagree on
// which duplicate wins, so such a file means different things to different readers). A limit
// changed here holds for every loader.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sieve {

inline constexpr int kMaxJsonDepth = 64;                       // real files nest 5 or 6 deep
inline constexpr uint64_t kMaxSmallJsonBytes = 16ull << 20;    // config.json, exits.json, ...
inline constexpr uint64_t kMaxTokenizerJsonBytes = 64ull << 20;  // tokenizer.json, vocab.json

// Parses text; errors read "<source>: not valid JSON (...)" and the like.
nlohmann::json parse_json_text(std::string_view text, const std::string& source);

// Reads and parses a file of at most max_bytes; throws Error for a missing, unreadable, oversized
// or invalid file. read_json_file_if_exists returns null when nothing is at `path`.
nlohmann::json read_json_file(const std::filesystem::path& path, uint64_t max_bytes);
nlohmann::json read_json_file_if_exists(const std::filesystem::path& path, uint64_t max_bytes);

// An integer in [low, high]; anything else (a float, a string, 2^40 where an int is meant) throws
// Error("<what> must be an integer from low to high").
int64_t json_integer(const nlohmann::json& value, int64_t low, int64_t high, const std::string& what);

}  // namespace sieve
