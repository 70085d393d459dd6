#pragma once
// Reading and writing files a hostile user may have prepared: reads are bounded, lines have a
// maximum length, temporary files are created exclusively with unpredictable names.
#include <cstdint>
#include <filesystem>
#include <istream>
#include <string>

namespace sieve {

// The whole file, refused with Error (naming `path`) when it holds more than max_bytes, is a
// directory, cannot be opened or fails to read. Works on pipes and devices too: at most
// max_bytes + 1 bytes are ever read, so /dev/zero is refused rather than read forever.
std::string read_file_bounded(const std::filesystem::path& path, uint64_t max_bytes);

// Lines of a stream, each at most max_line_bytes long (without its "\n" or "\r\n"); a longer line
// or a read error throws Error naming `source` and the line number.
class LineReader {
 public:
  LineReader(std::istream& in, std::string source, size_t max_line_bytes);
  bool next(std::string& line);  // false at the end of the input
  size_t line_number() const { return line_number_; }

 private:
  std::istream& in_;
  std::string source_;
  size_t max_line_bytes_;
  size_t line_number_ = 0;
  std::string buffer_;
};

// A new empty file, created exclusively (O_EXCL, mode 0600) with a random name
// "<prefix>XXXXXX<suffix>" in `directory`, removed when this object dies unless keep() was called.
// A name planted in advance (a symlink, say) is never followed or reused.
class TempFile {
 public:
  TempFile(const std::filesystem::path& directory, const std::string& prefix, const std::string& suffix = "");
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  int fd() const { return fd_; }
  void close();  // throws Error when the kernel reports a late write error
  void keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool keep_ = false;
};

}  // namespace sieve
