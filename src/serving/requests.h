#pragma once
// Request validation and response encoding for the server's routes, kept apart from HTTP so each
// rule is a plain function with a test. Every rejection is an ApiError: a status code and the
// fields of OpenAI's error body {"error": {"message", "type", "param", "code"}}.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/text_model.h"

namespace sieve::serving {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string type, std::optional<std::string> param, std::string code)
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string type;                  // "invalid_request_error", "rate_limit_error", "server_error"
  std::optional<std::string> param;  // the request field at fault, null when none
  std::string code;                  // a stable machine-readable reason
};

// 400 invalid_request_error about `param`.
ApiError invalid(const std::string& message, const std::string& param, const std::string& code = "invalid_value");
// {"error": {...}} for `e`.
std::string error_body(const ApiError& e);

bool is_valid_utf8(std::string_view text);
// The body as a JSON object; ApiError for invalid UTF-8, malformed JSON or a non-object.
nlohmann::json parse_body(const std::string& body);

// One input as a client sent it: a text, a (text, text) pair, or token ids of the model's vocabulary.
struct RequestInput {
  std::string text, pair;
  std::vector<int64_t> ids;
  bool is_ids = false;
};

// OpenAI's `input`: a string, a list of strings, a list of token ids, or a list of such lists.
// TEI's `inputs` (/embed, /tokenize) takes the same shapes.
std::vector<RequestInput> parse_text_inputs(const nlohmann::json& value, const std::string& param, size_t max_inputs);
// TEI's /predict `inputs`: a string, a [text, pair] list, or a list of those. `batched` tells the
// caller whether to answer with a list of answers or a single one.
std::vector<RequestInput> parse_predict_inputs(const nlohmann::json& value, size_t max_inputs, bool& batched);

// Field readers: absent (or null) gives the default, the wrong type an ApiError naming the field.
bool optional_bool(const nlohmann::json& body, const char* field, bool fallback);
std::optional<std::string> optional_string(const nlohmann::json& body, const char* field);

struct TokenizeSettings {
  size_t max_length = 512;  // the model's (or --max-length's) limit, specials included
  bool truncate = true;     // false: an input over max_length is an error
  bool truncate_left = false;
};
// Tokenizes (or wraps token ids in [CLS] ... [SEP]) as the model expects. Throws ApiError for an
// empty text, invalid UTF-8, a token id outside the vocabulary, or an input over max_length when
// truncate is false; `param` names the field in the error.
std::vector<EncoderInput> encode_inputs(const TextModel& model, const std::vector<RequestInput>& inputs,
                                        const TokenizeSettings& settings, const std::string& param);

// Keeps the first `dimensions` values and rescales them to unit length (OpenAI's `dimensions`,
// for Matryoshka-trained models).
void truncate_and_normalize(std::vector<float>& v, size_t dimensions);
std::string base64_floats(std::span<const float> values);  // little-endian float32, as OpenAI sends
// Shortest decimal text that reads back as the same float.
void append_float(std::string& out, float value);

}  // namespace sieve::serving
