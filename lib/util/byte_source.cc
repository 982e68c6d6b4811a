#include "util/byte_source.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/file_util.h"

namespace cm {

Status ByteSource::ReadExact(void* buf, size_t n, const char* what) {
  auto* p = static_cast<char*>(buf);
  size_t got = 0;
  while (got < n) {
    auto r = Read(p + got, n - got);
    if (!r.ok()) return r.status();
    if (*r == 0) return Error(Code::kCorrupt, std::string("truncated ") + what);
    got += *r;
  }
  return Status::Ok();
}

Result<size_t> FdSource::Read(void* buf, size_t n) {
  for (;;) {
    ssize_t r = ::read(fd_, buf, n);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno != EINTR) return ErrnoError("read", errno);
  }
}

Result<size_t> FileRangeSource::Read(void* buf, size_t n) {
  n = static_cast<size_t>(std::min<uint64_t>(n, end_ - pos_));
  if (n == 0) return size_t{0};
  auto r = PreadFull(fd_, buf, n, pos_);
  if (!r.ok()) return r;
  pos_ += *r;
  return r;
}

Result<size_t> StringSource::Read(void* buf, size_t n) {
  n = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, n);
  pos_ += n;
  return n;
}

Status FdSink::Write(const void* buf, size_t n) { return WriteFull(fd_, buf, n); }

}  // namespace cm
