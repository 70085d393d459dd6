#pragma once
// A whole file mapped read-only, for the weight formats (safetensors, GGUF): opening checks that
// the path is a regular file and maps it; the mapping lives as long as the object (movable).
// A file truncated by someone else after open() would still fault on access; the formats give no
// defence against that, and checkpoints are not rewritten in place.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

namespace sieve {

class MappedFile {
 public:
  // `kind` names the expected file in errors ("safetensors file", "GGUF file"), `extension` the
  // suffix a directory was mistaken for (".safetensors"). Throws sieve::Error naming the path.
  static MappedFile open(const std::filesystem::path& path, const std::string& kind, const std::string& extension);

  const std::filesystem::path& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {mapping_.get(), size_}; }
  const std::byte* data() const { return mapping_.get(); }
  size_t size() const { return size_; }

 private:
  struct Unmapper {
    size_t length;  // no initializer: it would hide the default constructor unique_ptr needs
    void operator()(const std::byte* mapping) const;
  };
  std::filesystem::path path_;
  std::unique_ptr<const std::byte, Unmapper> mapping_;
  size_t size_ = 0;
};

}  // namespace sieve
