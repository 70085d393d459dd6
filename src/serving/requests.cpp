#include "serving/requests.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace sieve::serving {

using json = nlohmann::json;

ApiError invalid(const std::string& message, const std::string& param, const std::string& code) {
  return ApiError(400, message, "invalid_request_error", param, code);
}

std::string error_body(const ApiError& e) {
  json error{{"message", e.what()}, {"type", e.type}, {"param", nullptr}, {"code", e.code}};
  if (e.param) error["param"] = *e.param;
  return json{{"error", error}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool is_valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

json parse_body(const std::string& body) {
  if (!is_valid_utf8(body)) throw ApiError(400, "the request body is not valid UTF-8", "invalid_request_error", std::nullopt, "invalid_utf8");
  json value = json::parse(body, nullptr, false);
  if (value.is_discarded()) throw ApiError(400, "the request body is not valid JSON", "invalid_request_error", std::nullopt, "invalid_json");
  if (!value.is_object()) throw ApiError(400, "the request body must be a JSON object", "invalid_request_error", std::nullopt, "invalid_json");
  return value;
}

namespace {

bool is_id_list(const json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const json& x : v)
    if (!x.is_number_integer()) return false;
  return true;
}

RequestInput ids_input(const json& v) {
  RequestInput in;
  in.is_ids = true;
  for (const json& x : v) in.ids.push_back(x.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(x.get<uint64_t>(), INT64_MAX))
                                                                  : x.get<int64_t>());
  return in;
}

void check_count(size_t count, const std::string& param, size_t max_inputs) {
  if (count == 0) throw invalid("'" + param + "' must not be an empty list", param, "empty_input");
  if (count > max_inputs)
    throw invalid("'" + param + "' has " + std::to_string(count) + " inputs; this server takes at most " + std::to_string(max_inputs) +
                      " per request",
                  param, "too_many_inputs");
}

const char* kInputShapes = "a string, a list of strings, a list of token ids, or a list of token-id lists";

}  // namespace

std::vector<RequestInput> parse_text_inputs(const json& value, const std::string& param, size_t max_inputs) {
  if (value.is_null()) throw invalid("'" + param + "' is required", param, "missing_field");
  std::vector<RequestInput> inputs;
  if (value.is_string()) {
    inputs.push_back({value.get<std::string>(), "", {}, false});
    return inputs;
  }
  if (!value.is_array()) throw invalid("'" + param + "' must be " + kInputShapes, param, "invalid_type");
  if (is_id_list(value)) {  // one input of token ids (its length is bounded by the body's)
    inputs.push_back(ids_input(value));
    return inputs;
  }
  check_count(value.size(), param, max_inputs);
  for (const json& item : value) {
    if (item.is_string()) inputs.push_back({item.get<std::string>(), "", {}, false});
    else if (is_id_list(item)) inputs.push_back(ids_input(item));
    else throw invalid("'" + param + "' must be " + kInputShapes + "; an item is " + item.type_name(), param, "invalid_type");
  }
  if (!std::all_of(inputs.begin(), inputs.end(), [&](const RequestInput& in) { return in.is_ids == inputs[0].is_ids; }))
    throw invalid("'" + param + "' mixes texts and token ids", param, "invalid_type");
  return inputs;
}

std::vector<RequestInput> parse_predict_inputs(const json& value, size_t max_inputs, bool& batched) {
  const std::string param = "inputs";
  auto is_pair = [](const json& v) { return v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_string(); };
  auto one = [&](const json& v) -> RequestInput {
    if (v.is_string()) return {v.get<std::string>(), "", {}, false};
    if (is_pair(v)) {
      RequestInput in{v[0].get<std::string>(), v[1].get<std::string>(), {}, false};
      if (in.pair.empty()) throw invalid("'inputs' holds a pair whose second text is empty", param, "empty_input");
      return in;
    }
    throw invalid("'inputs' must be a string, a [text, text] pair, or a list of those", param, "invalid_type");
  };
  if (value.is_null()) throw invalid("'inputs' is required", param, "missing_field");
  batched = false;
  // As in text-embeddings-inference, ["a", "b"] is one pair, not two texts.
  if (value.is_string() || is_pair(value)) return {one(value)};
  if (!value.is_array()) throw invalid("'inputs' must be a string, a [text, text] pair, or a list of those", param, "invalid_type");
  check_count(value.size(), param, max_inputs);
  batched = true;
  std::vector<RequestInput> inputs;
  for (const json& item : value) inputs.push_back(one(item));
  return inputs;
}

bool optional_bool(const json& body, const char* field, bool fallback) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw invalid(std::string("'") + field + "' must be true or false", field, "invalid_type");
  return it->get<bool>();
}

std::optional<std::string> optional_string(const json& body, const char* field) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw invalid(std::string("'") + field + "' must be a string", field, "invalid_type");
  return it->get<std::string>();
}

std::vector<EncoderInput> encode_inputs(const TextModel& model, const std::vector<RequestInput>& inputs,
                                        const TokenizeSettings& s, const std::string& param) {
  const WordPieceTokenizer& tok = model.tokenizer();
  const int32_t cls = tok.cls_id(), sep = tok.sep_id();
  auto too_long = [&](size_t i, size_t tokens) {
    return invalid("input " + std::to_string(i) + " has " + (tokens > 0 ? std::to_string(tokens) : "more than " + std::to_string(s.max_length)) +
                       " tokens, over the model's limit of " + std::to_string(s.max_length) + "; send truncate: true to cut it",
                   param, "context_length_exceeded");
  };
  std::vector<EncoderInput> out;
  out.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const RequestInput& in = inputs[i];
    EncoderInput e;
    if (in.is_ids) {
      std::vector<int32_t> ids;
      for (int64_t id : in.ids) {
        if (id < 0 || id >= static_cast<int64_t>(tok.vocab_size()))
          throw invalid("input " + std::to_string(i) + " has token id " + std::to_string(id) + ", outside the vocabulary (0.." +
                            std::to_string(tok.vocab_size() - 1) + ")",
                        param, "invalid_token_id");
        ids.push_back(static_cast<int32_t>(id));
      }
      // Ids as /tokenize returns them ([CLS] ... [SEP]) are taken as they are; bare ids get both.
      if (ids.size() < 2 || ids.front() != cls || ids.back() != sep) {
        ids.insert(ids.begin(), cls);
        ids.push_back(sep);
      }
      if (ids.size() > s.max_length) {
        if (!s.truncate) throw too_long(i, ids.size());
        if (s.truncate_left) ids.erase(ids.begin() + 1, ids.begin() + static_cast<std::ptrdiff_t>(ids.size() - s.max_length + 1));
        else ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(s.max_length - 1), ids.end() - 1);
      }
      e.ids = std::move(ids);
    } else {
      if (in.text.empty()) throw invalid("input " + std::to_string(i) + " is an empty string", param, "empty_input");
      if (!is_valid_utf8(in.text) || !is_valid_utf8(in.pair))
        throw invalid("input " + std::to_string(i) + " is not valid UTF-8", param, "invalid_utf8");
      Encoding enc;
      try {
        if (s.truncate_left && in.pair.empty()) {
          // The tokenizer cuts from the right; cut from the left here instead (the text is bounded
          // by the body limit, so its full tokenization is too).
          enc = tok.encode(in.text, std::numeric_limits<int32_t>::max());
          if (enc.ids.size() > s.max_length) {
            if (!s.truncate) throw too_long(i, enc.ids.size());
            const auto cut = static_cast<std::ptrdiff_t>(enc.ids.size() - s.max_length);
            enc.ids.erase(enc.ids.begin() + 1, enc.ids.begin() + 1 + cut);
            enc.type_ids.erase(enc.type_ids.begin() + 1, enc.type_ids.begin() + 1 + cut);
          }
        } else {
          enc = in.pair.empty() ? tok.encode(in.text, s.max_length) : tok.encode_pair(in.text, in.pair, s.max_length);
          if (enc.truncated && !s.truncate) throw too_long(i, 0);  // 0: the full count is unknown
        }
      } catch (const Error& error) {  // the tokenizer's own checks
        throw invalid("input " + std::to_string(i) + ": " + error.what(), param, "invalid_input");
      }
      e.ids = std::move(enc.ids);
      e.type_ids = std::move(enc.type_ids);
    }
    e.is_special.resize(e.ids.size());
    for (size_t t = 0; t < e.ids.size(); ++t) e.is_special[t] = e.ids[t] == cls || e.ids[t] == sep;
    out.push_back(std::move(e));
  }
  return out;
}

void truncate_and_normalize(std::vector<float>& v, size_t dimensions) {
  if (dimensions >= v.size()) return;
  v.resize(dimensions);
  l2_normalize(v);
}

std::string base64_floats(std::span<const float> values) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(values.size() * 4, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits = std::bit_cast<uint32_t>(values[i]);
    for (int b = 0; b < 4; ++b) bytes[4 * i + static_cast<size_t>(b)] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const auto byte = [&](size_t k) { return k < bytes.size() ? static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])) : 0u; };
    const uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

void append_float(std::string& out, float value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char text[32];
  const auto r = std::to_chars(text, text + sizeof text, value);
  out.append(text, r.ptr);
}

}  // namespace sieve::serving
