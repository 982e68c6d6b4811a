#include "push/held_content.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

namespace cm::push {

Result<size_t> ReadHeldBytes(int fd, uint64_t offset, std::span<char> out) {
  auto got = PreadFull(fd, out.data(), out.size(), offset);
  if (!got.ok()) return got.status();
  if (*got != out.size())
    return Error(Code::kIo, "short read at offset " + std::to_string(offset) + " (file shrank?)");
  return *got;
}

Result<std::unique_ptr<CompleteFile>> CompleteFile::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError(path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(path, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kFailure, path + ": not a regular file");
  return std::unique_ptr<CompleteFile>(new CompleteFile(std::move(fd), static_cast<uint64_t>(st.st_size)));
}

Result<size_t> CompleteFile::ReadAt(uint64_t offset, std::span<char> out) const {
  if (offset >= size_) return size_t{0};
  size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), size_ - offset));
  return ReadHeldBytes(fd_.get(), offset, out.first(n));
}

Result<bool> CompleteFile::WaitFor(uint64_t offset, Deadline) const {
  if (offset >= size_)
    return Error(Code::kNotFound, "offset " + std::to_string(offset) + " is past the end (" +
                                      std::to_string(size_) + " bytes)");
  return true;
}

}  // namespace cm::push
