#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace sieve {

namespace {

// Closes a file descriptor on every exit path of open().
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

void MappedFile::Unmapper::operator()(const std::byte* mapping) const {
  if (length > 0) ::munmap(const_cast<std::byte*>(mapping), length);
}

MappedFile MappedFile::open(const std::filesystem::path& path, const std::string& kind, const std::string& extension) {
  const std::string file = path.string();
  std::error_code ignored;
  const std::filesystem::file_status status = std::filesystem::status(path, ignored);
  if (!std::filesystem::exists(status)) throw Error(file + ": " + kind + " not found");
  if (std::filesystem::is_directory(status)) throw Error(file + ": is a directory, expected a " + extension + " file");
  if (!std::filesystem::is_regular_file(status)) throw Error(file + ": is not a regular file");

  const FileDescriptor descriptor{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (descriptor.fd < 0) throw Error(file + ": cannot open: " + std::strerror(errno));
  struct stat stats {};
  if (::fstat(descriptor.fd, &stats) != 0) throw Error(file + ": cannot stat: " + std::strerror(errno));
  MappedFile mapped;
  mapped.path_ = path;
  mapped.size_ = static_cast<size_t>(stats.st_size);
  if (mapped.size_ == 0) return mapped;  // mmap refuses length 0; callers report "too short"
  void* mapping = ::mmap(nullptr, mapped.size_, PROT_READ, MAP_PRIVATE, descriptor.fd, 0);
  if (mapping == MAP_FAILED) throw Error(file + ": cannot mmap: " + std::strerror(errno));
  mapped.mapping_ = std::unique_ptr<const std::byte, Unmapper>(static_cast<const std::byte*>(mapping), Unmapper{mapped.size_});
  return mapped;
}

}  // namespace sieve
