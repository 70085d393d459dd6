#include "util/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "util/error.h"

namespace sieve {

namespace {

std::string system_error_text() { return std::strerror(errno); }

// "1 MiB" rather than "1048576 bytes" for the limits in messages.
std::string describe_bytes(uint64_t bytes) {
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

std::string read_file_bounded(const std::filesystem::path& path, uint64_t max_bytes) {
  const std::string name = path.string();
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error && error != std::errc::no_such_file_or_directory) throw Error(name + ": " + error.message());
  if (!std::filesystem::exists(status)) throw Error(name + ": file not found");
  if (std::filesystem::is_directory(status)) throw Error(name + ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(name + ": cannot open for reading: " + system_error_text());
  std::string text;
  std::vector<char> chunk(1 << 16);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    text.append(chunk.data(), static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes) {
      throw Error(name + ": larger than the " + describe_bytes(max_bytes) + " Sieve reads for this kind of file");
    }
  }
  if (in.bad()) throw Error(name + ": read failed");
  return text;
}

LineReader::LineReader(std::istream& in, std::string source, size_t max_line_bytes)
    : in_(in), source_(std::move(source)), max_line_bytes_(max_line_bytes) {}

bool LineReader::next(std::string& line) {
  // istream::getline stores at most n - 1 bytes and sets failbit when the line is longer, so a
  // line without an end (4 GB of NULs) costs max_line_bytes, not memory until the OOM killer.
  // Read into one reused buffer, then copy out: a line that kept the buffer's capacity would hold
  // max_line_bytes of memory however short it is (4096 one-word lines would take 4 GB).
  buffer_.resize(max_line_bytes_ + 2);  // the line, a '\r' of "\r\n", and getline's terminating NUL
  in_.getline(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  if (in_.bad()) throw Error(source_ + ": read failed after line " + std::to_string(line_number_));
  const auto extracted = static_cast<size_t>(in_.gcount());
  if (in_.fail() && !in_.eof()) {
    throw Error(source_ + ":" + std::to_string(line_number_ + 1) + ": line longer than the " +
                describe_bytes(max_line_bytes_) + " limit");
  }
  if (extracted == 0 && in_.eof()) return false;
  line.assign(buffer_, 0, in_.eof() ? extracted : extracted - 1);  // gcount counts the '\n' it dropped
  in_.clear(in_.rdstate() & std::ios::eofbit);         // a final line without '\n' is still a line
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.size() > max_line_bytes_) {
    throw Error(source_ + ":" + std::to_string(line_number_ + 1) + ": line longer than the " +
                describe_bytes(max_line_bytes_) + " limit");
  }
  ++line_number_;
  return true;
}

TempFile::TempFile(const std::filesystem::path& directory, const std::string& prefix, const std::string& suffix) {
  std::string pattern = (directory / (prefix + "XXXXXX" + suffix)).string();
  fd_ = ::mkstemps(pattern.data(), static_cast<int>(suffix.size()));  // O_EXCL, 0600: never an existing file
  if (fd_ < 0) throw Error("cannot create a temporary file in " + directory.string() + ": " + system_error_text());
  ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
  path_ = pattern;
}

TempFile::~TempFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!keep_) {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
}

void TempFile::close() {
  const int fd = fd_;
  fd_ = -1;
  if (fd >= 0 && ::close(fd) != 0) throw Error(path_.string() + ": write failed: " + system_error_text());
}

}  // namespace sieve
