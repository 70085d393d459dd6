#include "util/json_file.h"

#include <unordered_set>
#include <vector>

#include "util/error.h"
#include "util/files.h"

namespace sieve {

namespace {

using nlohmann::json;

// nlohmann's own DOM builder, with the depth limit and the duplicate-key check added in front.
// (Its callback parser could check keys too, but it rescans the parent object every time an
// object closes, which makes a header with many entries quadratic.)
class BoundedJsonBuilder {
 public:
  BoundedJsonBuilder(json& root, const std::string& source) : dom_(root), source_(source) {}

  bool null() { return dom_.null(); }
  bool boolean(bool value) { return dom_.boolean(value); }
  bool number_integer(json::number_integer_t value) { return dom_.number_integer(value); }
  bool number_unsigned(json::number_unsigned_t value) { return dom_.number_unsigned(value); }
  bool number_float(json::number_float_t value, const json::string_t& text) { return dom_.number_float(value, text); }
  bool string(json::string_t& value) { return dom_.string(value); }
  bool binary(json::binary_t& value) { return dom_.binary(value); }
  bool start_object(std::size_t size) {
    enter();
    keys_.emplace_back();
    return dom_.start_object(size);
  }
  bool key(json::string_t& name) {
    if (!keys_.back().insert(name).second) throw Error(source_ + ": the key '" + shorten(name) + "' appears twice in one object");
    return dom_.key(name);
  }
  bool end_object() {
    --depth_;
    keys_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t size) {
    enter();
    return dom_.start_array(size);
  }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& error) {
    return dom_.parse_error(position, token, error);  // throws
  }

 private:
  void enter() {
    if (++depth_ > kMaxJsonDepth) {
      throw Error(source_ + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
  }
  // Keys come from the file: quote at most 100 bytes of one.
  static std::string shorten(const std::string& text) { return text.size() <= 100 ? text : text.substr(0, 100) + "..."; }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  const std::string& source_;
  std::vector<std::unordered_set<std::string>> keys_;  // one set per open object
  int depth_ = 0;
};

}  // namespace

json parse_json_text(std::string_view text, const std::string& source) {
  // The library stops at a NUL as if the input ended, which would silently ignore the rest.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    throw Error(source + ": not valid JSON (NUL byte at offset " + std::to_string(nul) + ")");
  }
  json root;
  BoundedJsonBuilder builder(root, source);
  try {
    json::sax_parse(text.begin(), text.end(), &builder);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  return root;
}

json read_json_file(const std::filesystem::path& path, uint64_t max_bytes) {
  return parse_json_text(read_file_bounded(path, max_bytes), path.string());
}

json read_json_file_if_exists(const std::filesystem::path& path, uint64_t max_bytes) {
  std::error_code error;
  // symlink_status: a dangling or looping link is "there" and gets read_json_file's clear error.
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, error))) return nullptr;
  return read_json_file(path, max_bytes);
}

int64_t json_integer(const json& value, int64_t low, int64_t high, const std::string& what) {
  const bool in_range = value.is_number_integer() &&
                        (value.is_number_unsigned() ? value.get<uint64_t>() <= static_cast<uint64_t>(high)
                                                    : value.get<int64_t>() >= low && value.get<int64_t>() <= high) &&
                        value.get<int64_t>() >= low;
  if (!in_range) {
    throw Error(what + " must be an integer from " + std::to_string(low) + " to " + std::to_string(high) + ", got " +
                (value.is_number() || value.is_boolean() ? value.dump() : std::string(value.type_name())));
  }
  return value.get<int64_t>();
}

}  // namespace sieve
