#include "model/gguf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace sieve {

static_assert(std::endian::native == std::endian::little, "GGUF loading assumes a little-endian host");

namespace {

// GGUF value type ids.
enum : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

constexpr uint32_t kMagic = 0x46554747;     // "GGUF" read as a little-endian u32
constexpr uint32_t kMaxDimensions = 4;      // GGML_MAX_DIMS
constexpr uint64_t kMaxKeyBytes = 1 << 16;  // keys are short dotted names
constexpr uint64_t kMaxAlignment = 1 << 20;

// Bytes of a scalar type, 0 for strings and arrays (variable) and for unknown ids.
uint64_t scalar_bytes(uint32_t type) {
  switch (type) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    default: return 0;
  }
}

// Sequential bounded reads over the mapped file; every read checks the bytes left first.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, std::string file) : bytes_(bytes), file_(std::move(file)) {}

  uint64_t position() const { return position_; }
  uint64_t left() const { return bytes_.size() - position_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(file_ + ": " + what + " (at byte " + std::to_string(position_) + "; not a valid GGUF file)");
  }

  template <typename T>
  T read(const char* what) {
    if (left() < sizeof(T)) fail(std::string("file ends inside ") + what + "; the file is truncated");
    T value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }

  std::string read_string(const char* what, uint64_t max_bytes) {
    const uint64_t length = read<uint64_t>(what);
    if (length > left()) fail(std::string(what) + " claims " + std::to_string(length) + " bytes but only " + std::to_string(left()) + " remain");
    if (length > max_bytes) fail(std::string(what) + " of " + std::to_string(length) + " bytes is over the limit of " + std::to_string(max_bytes));
    std::string s(reinterpret_cast<const char*>(bytes_.data() + position_), length);
    position_ += length;
    return s;
  }

  // A count of items each at least min_item_bytes long, believed only if the rest of the file could hold them.
  uint64_t read_count(const char* what, uint64_t min_item_bytes) {
    const uint64_t count = read<uint64_t>(what);
    if (min_item_bytes > 0 && count > left() / min_item_bytes)
      fail(std::string(what) + " " + std::to_string(count) + " cannot fit in the " + std::to_string(left()) + " bytes left");
    return count;
  }

 private:
  std::span<const std::byte> bytes_;
  std::string file_;
  uint64_t position_ = 0;
};

int64_t read_integer(Cursor& in, uint32_t type) {
  switch (type) {
    case kU8: return in.read<uint8_t>("a u8 value");
    case kI8: return in.read<int8_t>("an i8 value");
    case kU16: return in.read<uint16_t>("a u16 value");
    case kI16: return in.read<int16_t>("an i16 value");
    case kU32: return in.read<uint32_t>("a u32 value");
    case kI32: return in.read<int32_t>("an i32 value");
    case kI64: return in.read<int64_t>("an i64 value");
    case kU64: return static_cast<int64_t>(in.read<uint64_t>("a u64 value"));  // the bits; see GgufValue
    default: in.fail("internal: not an integer type");
  }
}

bool is_integer(uint32_t type) {
  return type == kU8 || type == kI8 || type == kU16 || type == kI16 || type == kU32 || type == kI32 || type == kU64 || type == kI64;
}

GgufValue read_value(Cursor& in, uint32_t type, const std::string& key) {
  GgufValue v{};
  v.file_type = type;
  if (is_integer(type)) {
    v.kind = GgufValue::Kind::Integer;
    v.integer = read_integer(in, type);
  } else if (type == kF32 || type == kF64) {
    v.kind = GgufValue::Kind::Float;
    v.number = type == kF32 ? in.read<float>("an f32 value") : in.read<double>("an f64 value");
  } else if (type == kBool) {
    v.kind = GgufValue::Kind::Bool;
    const uint8_t b = in.read<uint8_t>("a bool value");
    if (b > 1) in.fail("metadata '" + key + "': bool value " + std::to_string(b) + " is neither 0 nor 1");
    v.boolean = b == 1;
  } else if (type == kString) {
    v.kind = GgufValue::Kind::String;
    v.text = in.read_string("a string value", std::numeric_limits<uint64_t>::max());
  } else if (type == kArray) {
    const uint32_t element = in.read<uint32_t>("an array's element type");
    v.file_type = element;
    if (element == kArray) in.fail("metadata '" + key + "': arrays of arrays are not supported");
    const uint64_t element_bytes = element == kString ? sizeof(uint64_t) : scalar_bytes(element);
    if (element_bytes == 0) in.fail("metadata '" + key + "': unknown array element type " + std::to_string(element));
    const uint64_t count = in.read_count("array length", element_bytes);
    if (element == kString) {
      v.kind = GgufValue::Kind::StringArray;
      v.strings.reserve(count);
      for (uint64_t i = 0; i < count; ++i) v.strings.push_back(in.read_string("a string in an array", std::numeric_limits<uint64_t>::max()));
    } else if (element == kF32 || element == kF64) {
      v.kind = GgufValue::Kind::FloatArray;
      v.numbers.reserve(count);
      for (uint64_t i = 0; i < count; ++i)
        v.numbers.push_back(element == kF32 ? in.read<float>("an f32 value") : in.read<double>("an f64 value"));
    } else if (element == kBool) {
      v.kind = GgufValue::Kind::BoolArray;
      v.integers.reserve(count);
      for (uint64_t i = 0; i < count; ++i) v.integers.push_back(in.read<uint8_t>("a bool value") != 0);
    } else {
      v.kind = GgufValue::Kind::IntegerArray;
      v.integers.reserve(count);
      for (uint64_t i = 0; i < count; ++i) v.integers.push_back(read_integer(in, element));
    }
  } else {
    in.fail("metadata '" + key + "': unknown value type " + std::to_string(type));
  }
  return v;
}

}  // namespace

int64_t GgufTensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

GgufFile GgufFile::open(const std::filesystem::path& path) {
  GgufFile file;
  file.mapping_ = MappedFile::open(path, "GGUF file", ".gguf");
  file.parse();
  return file;
}

void GgufFile::parse() {
  const std::string file = path().string();
  Cursor in(mapping_.bytes(), file);
  if (in.left() < 4 || in.read<uint32_t>("the magic") != kMagic) throw Error(file + ": not a GGUF file (no 'GGUF' magic)");
  version_ = in.read<uint32_t>("the version");
  if (version_ != 2 && version_ != 3)
    throw Error(file + ": GGUF version " + std::to_string(version_) + " is not supported (supported: 2, 3)");
  // Each tensor entry takes at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset) bytes,
  // each metadata entry at least 8 (key length) + 4 (type) + 1.
  const uint64_t tensor_count = in.read_count("tensor count", 24);
  const uint64_t metadata_count = in.read_count("metadata count", 13);

  for (uint64_t i = 0; i < metadata_count; ++i) {
    std::string key = in.read_string("a metadata key", kMaxKeyBytes);
    const uint32_t type = in.read<uint32_t>("a metadata value type");
    GgufValue value = read_value(in, type, key);
    if (!metadata_.emplace(key, std::move(value)).second) in.fail("metadata key '" + key + "' appears twice");
  }
  if (const GgufValue* a = find("general.alignment")) {
    if (a->kind != GgufValue::Kind::Integer || a->integer < 1 || static_cast<uint64_t>(a->integer) > kMaxAlignment ||
        !std::has_single_bit(static_cast<uint64_t>(a->integer)))
      throw Error(file + ": general.alignment must be a power of two up to " + std::to_string(kMaxAlignment));
    alignment_ = static_cast<uint64_t>(a->integer);
  }

  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo t;
    t.name = in.read_string("a tensor name", kMaxKeyBytes);
    const std::string where = "tensor '" + t.name + "'";
    const uint32_t dims = in.read<uint32_t>("a tensor's dimension count");
    if (dims < 1 || dims > kMaxDimensions) in.fail(where + " has " + std::to_string(dims) + " dimensions (1 to 4 allowed)");
    uint64_t elements = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      const uint64_t n = in.read<uint64_t>("a tensor dimension");
      if (n < 1 || n > (uint64_t{1} << 40) || elements > (uint64_t{1} << 50) / n)
        in.fail(where + " has an impossible dimension " + std::to_string(n));
      elements *= n;
      t.ne.push_back(static_cast<int64_t>(n));
    }
    const uint32_t type_id = in.read<uint32_t>("a tensor type");
    const std::optional<GgmlTypeTraits> traits = ggml_type_traits(type_id);
    if (!traits) in.fail(where + " has unknown GGML type " + std::to_string(type_id));
    t.type = traits->type;
    if (t.ne[0] % traits->block_elements != 0)
      in.fail(where + " rows of " + std::to_string(t.ne[0]) + " are not whole " + std::string(traits->name) + " blocks of " +
              std::to_string(traits->block_elements));
    t.bytes = elements / static_cast<uint64_t>(traits->block_elements) * static_cast<uint64_t>(traits->block_bytes);
    t.offset = in.read<uint64_t>("a tensor offset");
    if (t.offset % alignment_ != 0) in.fail(where + " offset " + std::to_string(t.offset) + " is not aligned to " + std::to_string(alignment_));
    if (tensors_.count(t.name)) in.fail(where + " appears twice");
    tensor_order_.push_back(t.name);
    tensors_.emplace(t.name, std::move(t));
  }

  data_offset_ = (in.position() + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t file_size = mapping_.size();
  const uint64_t data_size = data_offset_ <= file_size ? file_size - data_offset_ : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& [name, t] : tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      throw Error(file + ": tensor '" + name + "' (" + std::to_string(t.bytes) + " bytes at offset " + std::to_string(t.offset) +
                  ") lies outside the " + std::to_string(data_size) + "-byte data section; the file is truncated or lies");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->bytes > by_offset[i]->offset)
      throw Error(file + ": tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {

const GgufValue& expect(const GgufFile& f, const std::string& key, GgufValue::Kind kind, const char* kind_name) {
  const GgufValue* v = f.find(key);
  if (!v) throw Error(f.path().string() + ": metadata '" + key + "' is missing");
  if (v->kind != kind) throw Error(f.path().string() + ": metadata '" + key + "' is not " + kind_name);
  return *v;
}

}  // namespace

int64_t GgufFile::integer(const std::string& key) const {
  const GgufValue& v = expect(*this, key, GgufValue::Kind::Integer, "an integer");
  if (v.file_type == kU64 && v.integer < 0) throw Error(path().string() + ": metadata '" + key + "' is a u64 beyond the int64 range");
  return v.integer;
}

double GgufFile::number(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v && v->kind == GgufValue::Kind::Integer) return static_cast<double>(v->integer);
  return expect(*this, key, GgufValue::Kind::Float, "a number").number;
}

bool GgufFile::boolean(const std::string& key) const { return expect(*this, key, GgufValue::Kind::Bool, "a bool").boolean; }

const std::string& GgufFile::string(const std::string& key) const { return expect(*this, key, GgufValue::Kind::String, "a string").text; }

const std::vector<std::string>& GgufFile::strings(const std::string& key) const {
  return expect(*this, key, GgufValue::Kind::StringArray, "an array of strings").strings;
}

const std::vector<int64_t>& GgufFile::integers(const std::string& key) const {
  return expect(*this, key, GgufValue::Kind::IntegerArray, "an array of integers").integers;
}

const std::vector<double>& GgufFile::numbers(const std::string& key) const {
  return expect(*this, key, GgufValue::Kind::FloatArray, "an array of floats").numbers;
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("missing tensor " + name + " in " + path().string());
  return it->second;
}

std::vector<std::string> GgufFile::tensor_names() const { return tensor_order_; }

std::span<const std::byte> GgufFile::tensor_bytes(const std::string& name) const {
  const GgufTensorInfo& t = tensor(name);
  return mapping_.bytes().subspan(data_offset_ + t.offset, t.bytes);
}

Tensor GgufFile::load_f32(const std::string& name, const std::vector<int64_t>& expected_shape) const {
  const GgufTensorInfo& t = tensor(name);
  const std::vector<int64_t> shape = t.shape();
  if (!expected_shape.empty() && shape != expected_shape)
    throw Error("tensor '" + name + "' in " + path().string() + " has shape " + shape_string(shape) + ", expected " + shape_string(expected_shape));
  const GgmlTypeTraits& traits = ggml_type_traits(t.type);
  if (!traits.dequantizable)
    throw Error("tensor '" + name + "' in " + path().string() + " has type " + std::string(traits.name) +
                ", which Sieve cannot read (supported: " + dequantizable_type_names() + ")");
  Tensor result(shape);
  const std::span<const std::byte> bytes = tensor_bytes(name);
  const int64_t row = t.ne[0], rows = t.elements() / row;
  const int64_t row_bytes = row / traits.block_elements * traits.block_bytes;
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t.type, bytes.data() + r * row_bytes, result.data() + r * row, row);
  for (int64_t i = 0; i < result.size(); ++i)
    if (!std::isfinite(result.data()[i]))
      throw Error("tensor '" + name + "' in " + path().string() + " holds a non-finite value at element " + std::to_string(i));
  return result;
}

}  // namespace sieve
