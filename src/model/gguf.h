#pragma once
// Read-only access to GGUF files (llama.cpp's model format, version 2 and 3):
//   "GGUF" | version u32 | tensor count u64 | metadata count u64
//   metadata: key (u64 length + bytes), value type u32, value (scalars, strings, arrays)
//   tensor table: name, dimension count u32, dimensions u64 (ne0 first: the row length),
//                 GGML type u32, offset u64 (relative to the data section)
//   padding to general.alignment (default 32), then the data section.
// Like SafetensorsFile, the file is memory-mapped and everything is validated in open(): every
// length against the bytes left, every tensor's byte range inside the data section, aligned and
// not overlapping another. Nothing is allocated because the file claims a size: a count is
// believed only as far as the bytes that remain could hold it.
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tensor/ggml_quants.h"
#include "tensor/tensor.h"
#include "util/mapped_file.h"

namespace sieve {

// One metadata value. Integers of every width are held in int64 (a u64 as its bits: read it as
// uint64_t when file_type is 10; GgufFile::integer() refuses one beyond the int64 range), floats
// as double; an array holds one element type.
struct GgufValue {
  enum class Kind { Integer, Float, Bool, String, IntegerArray, FloatArray, BoolArray, StringArray };
  Kind kind;
  uint32_t file_type;  // the GGUF type id (for arrays, the element's)
  int64_t integer = 0;
  double number = 0;
  bool boolean = false;
  std::string text;
  std::vector<int64_t> integers;
  std::vector<double> numbers;
  std::vector<std::string> strings;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;  // GGML order: ne[0] is the row length
  uint64_t offset = 0;      // within the data section
  uint64_t bytes = 0;
  // Sieve's row-major shape: ne reversed ([rows, row length] for a matrix).
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
  int64_t elements() const;
};

class GgufFile {
 public:
  // Maps and validates the whole file; throws sieve::Error naming the file and what is wrong.
  static GgufFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return mapping_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // where the data section starts in the file

  const GgufValue* find(const std::string& key) const;
  // Typed access; a missing key or one of another type throws Error naming the key.
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;  // a float or an integer
  bool boolean(const std::string& key) const;
  const std::string& string(const std::string& key) const;
  const std::vector<std::string>& strings(const std::string& key) const;
  const std::vector<int64_t>& integers(const std::string& key) const;
  const std::vector<double>& numbers(const std::string& key) const;
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }

  bool contains(const std::string& tensor) const { return tensors_.count(tensor) != 0; }
  const GgufTensorInfo& tensor(const std::string& name) const;  // throws "missing tensor X in FILE"
  std::vector<std::string> tensor_names() const;                // in file order
  std::span<const std::byte> tensor_bytes(const std::string& name) const;

  // The tensor dequantized to fp32 in Sieve's shape (see GgufTensorInfo::shape), checked against
  // expected_shape when it is given. Non-finite values are refused.
  Tensor load_f32(const std::string& name, const std::vector<int64_t>& expected_shape = {}) const;

 private:
  GgufFile() = default;
  void parse();

  MappedFile mapping_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::map<std::string, GgufTensorInfo> tensors_;
  std::vector<std::string> tensor_order_;
};

}  // namespace sieve
