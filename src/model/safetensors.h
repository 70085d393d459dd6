#pragma once
// Read-only access to .safetensors checkpoints, the Hugging Face weight format:
//   [8-byte little-endian header length N][N bytes of JSON header][data region]
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end)} where the
// offsets are relative to the start of the data region. The file is memory-mapped and the
// whole header is validated in open(), so a truncated or lying file is reported as a
// sieve::Error before any tensor byte is read.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"
#include "util/mapped_file.h"

namespace sieve {

// Every element type the safetensors format names. Only F32, F16 and BF16 can be loaded as
// fp32; the others are still recognised so that a checkpoint holding, say, an I64
// position-id buffer (as MiniLM's does) opens and its float tensors remain usable.
enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

std::string_view dtype_name(DType dtype);   // the spelling used in the header, e.g. "BF16"
size_t dtype_size(DType dtype);             // bytes per element

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;  // byte range [begin, end) within the data region
  uint64_t end;
};

class SafetensorsFile {
 public:
  // Maps the file and validates the header and every tensor entry; throws sieve::Error.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws "missing tensor X in FILE"
  std::vector<std::string> names() const;                 // sorted

  // Copies the tensor into fp32 (converting F16/BF16), checking the shape when expected is
  // non-empty.
  Tensor load_f32(const std::string& name, const std::vector<int64_t>& expected_shape = {}) const;

 private:
  SafetensorsFile() = default;
  void map_file();
  void parse_header();
  std::string describe(const std::string& tensor_name) const;  // "tensor 'X' in FILE"

  std::filesystem::path path_;
  MappedFile mapping_;
  size_t file_size_ = 0;
  size_t data_offset_ = 0;  // where the data region starts within the mapping
  std::map<std::string, TensorInfo> tensors_;
};

// Writes fp32 tensors as a safetensors file, in the given order (tests and tools use it).
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, const Tensor*>>& tensors);

}  // namespace sieve
