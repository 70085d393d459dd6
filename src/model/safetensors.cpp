#include "model/safetensors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/half.h"
#include "util/json_file.h"

namespace sieve {

// The format is little-endian; raw copies of the data region rely on the host being so too.
static_assert(std::endian::native == std::endian::little, "safetensors loading assumes a little-endian host");

namespace {

using nlohmann::json;

// Real headers are a few hundred KiB at most; the reference implementation refuses anything
// above 100 MB, and so do we, rather than trying to parse whatever a corrupt length points at.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kLengthFieldBytes = 8;

struct DTypeSpelling {
  DType dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeSpelling, 15> kDTypes = {{
    {DType::F32, "F32", 4},    {DType::F16, "F16", 2},      {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8},    {DType::I64, "I64", 8},      {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},    {DType::I8, "I8", 1},        {DType::U64, "U64", 8},
    {DType::U32, "U32", 4},    {DType::U16, "U16", 2},      {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},  {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
}};

const DTypeSpelling& spelling_of(DType dtype) {
  for (const DTypeSpelling& s : kDTypes) {
    if (s.dtype == dtype) return s;
  }
  throw Error("internal: unnamed dtype");  // unreachable while kDTypes lists every enumerator
}


template <float (*Convert)(uint16_t)>
void convert_16bit(const std::byte* source, float* destination, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    uint16_t raw;
    std::memcpy(&raw, source + 2 * i, sizeof raw);  // tensor data need not be aligned
    destination[i] = Convert(raw);
  }
}

// The header through the shared bounded JSON reader: linear time, depth-limited, duplicate keys
// refused (they would mean different tensors to different readers).
json parse_header_json(std::string_view text, const std::string& file) {
  const json header = parse_json_text(text, file + ": safetensors header");
  if (!header.is_object()) {
    throw Error(file + ": safetensors header must be a JSON object, got " + header.type_name());
  }
  return header;
}

// The index of the first NaN or infinity among n floats, or n.
int64_t first_non_finite(const float* values, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) return i;
  }
  return n;
}

// A non-negative JSON integer; `what` names the value in messages. Messages quote only
// numbers: dumping a hostile string or a deeply nested array could be huge or overflow the stack.
uint64_t read_unsigned(const json& value, const std::string& what) {
  if (!value.is_number_integer()) {
    throw Error(what + " must be a non-negative integer, got " + value.type_name());
  }
  if (!value.is_number_unsigned() && value.get<int64_t>() < 0) {
    throw Error(what + " is negative (" + value.dump() + ")");
  }
  return value.get<uint64_t>();
}

const json& require_field(const json& entry, const char* field, const std::string& where) {
  const auto it = entry.find(field);
  if (it == entry.end()) throw Error(where + ": missing field '" + field + "'");
  return *it;
}

DType parse_dtype(const json& value, const std::string& where) {
  if (!value.is_string()) throw Error(where + ": 'dtype' must be a string, got " + value.type_name());
  const std::string& name = value.get_ref<const std::string&>();
  for (const DTypeSpelling& s : kDTypes) {
    if (s.name == name) return s.dtype;
  }
  throw Error(where + ": unknown dtype '" + name + "'");
}

std::vector<int64_t> parse_shape(const json& value, const std::string& where) {
  if (!value.is_array()) throw Error(where + ": 'shape' must be an array, got " + value.type_name());
  std::vector<int64_t> shape;
  for (const json& dim : value) {
    const uint64_t d = read_unsigned(dim, where + ": shape dimension");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw Error(where + ": shape dimension " + std::to_string(d) + " is too large");
    }
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

// Bytes the shape needs, refusing shapes whose size does not fit in 64 bits.
uint64_t shape_bytes(const std::vector<int64_t>& shape, DType dtype, const std::string& where) {
  uint64_t bytes = spelling_of(dtype).size;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
      throw Error(where + ": shape " + shape_string(shape) + " is too large (byte size overflows)");
    }
  }
  return bytes;
}

TensorInfo parse_entry(const std::string& name, const json& entry, uint64_t data_size,
                       const std::string& where) {
  if (!entry.is_object()) throw Error(where + ": entry must be a JSON object, got " + entry.type_name());
  TensorInfo info{name, parse_dtype(require_field(entry, "dtype", where), where),
                  parse_shape(require_field(entry, "shape", where), where), 0, 0};

  const json& offsets = require_field(entry, "data_offsets", where);
  if (!offsets.is_array() || offsets.size() != 2) {
    throw Error(where + ": 'data_offsets' must be an array [begin, end], got " +
                (offsets.is_array() ? std::to_string(offsets.size()) + " elements" : offsets.type_name()));
  }
  info.begin = read_unsigned(offsets[0], where + ": data_offsets begin");
  info.end = read_unsigned(offsets[1], where + ": data_offsets end");
  const std::string range = "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "]";
  if (info.begin > info.end) throw Error(where + ": " + range + " has begin > end");
  if (info.end > data_size) {
    throw Error(where + ": " + range + " ends beyond the data region (" + std::to_string(data_size) +
                " bytes); the file is truncated or the header lies");
  }
  const uint64_t needed = shape_bytes(info.shape, info.dtype, where);
  if (needed != info.end - info.begin) {
    throw Error(where + ": shape " + shape_string(info.shape) + " of " + std::string(dtype_name(info.dtype)) +
                " needs " + std::to_string(needed) + " bytes but " + range + " span " +
                std::to_string(info.end - info.begin));
  }
  return info;
}

void check_no_overlaps(const std::map<std::string, TensorInfo>& tensors, const std::string& file) {
  std::vector<const TensorInfo*> by_begin;
  for (const auto& [name, info] : tensors) {
    if (info.begin != info.end) by_begin.push_back(&info);  // empty ranges cannot overlap anything
  }
  std::sort(by_begin.begin(), by_begin.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_begin.size(); ++i) {
    const TensorInfo& previous = *by_begin[i - 1];
    const TensorInfo& current = *by_begin[i];
    if (current.begin < previous.end) {
      throw Error(file + ": tensors '" + previous.name + "' and '" + current.name +
                  "' overlap in the data region (bytes " + std::to_string(current.begin) + " to " +
                  std::to_string(std::min(previous.end, current.end)) + ")");
    }
  }
}

}  // namespace

std::string_view dtype_name(DType dtype) { return spelling_of(dtype).name; }
size_t dtype_size(DType dtype) { return spelling_of(dtype).size; }

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile file;
  file.path_ = path;
  file.map_file();
  file.parse_header();
  return file;
}

void SafetensorsFile::map_file() {
  mapping_ = MappedFile::open(path_, "safetensors file", ".safetensors");
  file_size_ = mapping_.size();
  if (file_size_ < kLengthFieldBytes) {
    throw Error(path_.string() + ": file is " + std::to_string(file_size_) +
                " bytes, too short for a safetensors header (at least 8)");
  }
}

void SafetensorsFile::parse_header() {
  const std::string file = path_.string();
  uint64_t header_length;
  std::memcpy(&header_length, mapping_.data(), sizeof header_length);
  if (header_length > kMaxHeaderBytes) {
    throw Error(file + ": header length " + std::to_string(header_length) + " is absurd (limit " +
                std::to_string(kMaxHeaderBytes) + " bytes); not a safetensors file?");
  }
  if (header_length > file_size_ - kLengthFieldBytes) {
    throw Error(file + ": header length " + std::to_string(header_length) + " exceeds the " +
                std::to_string(file_size_ - kLengthFieldBytes) +
                " bytes after the length field; the file is truncated");
  }
  data_offset_ = kLengthFieldBytes + header_length;
  const std::string_view text(reinterpret_cast<const char*>(mapping_.data()) + kLengthFieldBytes, header_length);
  const json header = parse_header_json(text, file);

  const uint64_t data_size = file_size_ - data_offset_;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      // Free-form string-to-string annotations; checked for shape, otherwise unused.
      if (!entry.is_object()) throw Error(file + ": '__metadata__' must be a JSON object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw Error(file + ": '__metadata__' value of '" + key + "' must be a string");
      }
      continue;
    }
    tensors_.emplace(name, parse_entry(name, entry, data_size, describe(name)));
  }
  check_no_overlaps(tensors_, file);
}

std::string SafetensorsFile::describe(const std::string& tensor_name) const {
  return "tensor '" + tensor_name + "' in " + path_.string();
}

bool SafetensorsFile::contains(const std::string& name) const { return tensors_.count(name) != 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("missing tensor " + name + " in " + path_.string());
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> result;
  result.reserve(tensors_.size());
  for (const auto& [name, info] : tensors_) result.push_back(name);
  return result;
}

Tensor SafetensorsFile::load_f32(const std::string& name, const std::vector<int64_t>& expected_shape) const {
  const TensorInfo& tensor = info(name);
  if (!expected_shape.empty() && tensor.shape != expected_shape) {
    throw Error(describe(name) + " has shape " + shape_string(tensor.shape) + ", expected " +
                shape_string(expected_shape));
  }
  if (tensor.dtype != DType::F32 && tensor.dtype != DType::F16 && tensor.dtype != DType::BF16) {
    throw Error(describe(name) + " has dtype " + std::string(dtype_name(tensor.dtype)) +
                "; only F32, F16 and BF16 can be loaded as fp32");
  }
  Tensor result(tensor.shape);
  if (result.empty()) return result;
  // open() proved [begin, end) lies inside the data region and matches the shape's byte size.
  const std::byte* source = mapping_.data() + data_offset_ + tensor.begin;
  switch (tensor.dtype) {
    case DType::F32:
      std::memcpy(result.data(), source, tensor.end - tensor.begin);
      break;
    case DType::F16:
      convert_16bit<f16_to_f32>(source, result.data(), result.size());
      break;
    default:  // BF16, the only other type let through above
      convert_16bit<bf16_to_f32>(source, result.data(), result.size());
      break;
  }
  // One NaN weight turns every output it touches into NaN, or, through a clamping exp kernel,
  // into finite but wrong numbers: refuse the file instead of computing with it.
  if (const int64_t bad = first_non_finite(result.data(), result.size()); bad != result.size()) {
    throw Error(describe(name) + " holds " + (std::isnan(result.data()[bad]) ? "NaN" : "infinity") + " at element " +
                std::to_string(bad) + "; the checkpoint is corrupt");
  }
  return result;
}

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, const Tensor*>>& tensors) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (tensor == nullptr) throw Error("write_safetensors: tensor '" + name + "' is null");
    if (name == "__metadata__" || header.contains(name)) {
      throw Error("write_safetensors: tensor name '" + name + "' is reserved or repeated");
    }
    const uint64_t bytes = static_cast<uint64_t>(tensor->size()) * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", tensor->shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  // Pad with spaces (allowed by the format) so the data region starts 8-byte aligned.
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_length = text.size();

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path.string() + ": cannot open for writing");
  out.write(reinterpret_cast<const char*>(&header_length), sizeof header_length);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& [name, tensor] : tensors) {
    out.write(reinterpret_cast<const char*>(tensor->data()),
              static_cast<std::streamsize>(tensor->size() * sizeof(float)));
  }
  out.close();
  if (!out) throw Error(path.string() + ": write failed");
}

}  // namespace sieve
