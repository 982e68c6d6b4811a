#include "util/hash.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "util/file_util.h"

namespace cm {

void InitCrypto() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) std::abort();
}

Hasher::Hasher() : st_(32) {}

void Hasher::Update(const void* data, size_t n) { st_.Update(data, n); }

Hash256 Hasher::Finish() {
  Hash256 h;
  st_.Final(h.data());
  return h;
}

Hash256 HashBytes(const void* data, size_t n) {
  Hasher h;
  h.Update(data, n);
  return h.Finish();
}

std::string ToHex(const uint8_t* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kDigits[data[i] >> 4];
    s[2 * i + 1] = kDigits[data[i] & 15];
  }
  return s;
}

bool FromHex(std::string_view hex, uint8_t* out, size_t n) {
  if (hex.size() != 2 * n) return false;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < n; ++i) {
    int hi = val(hex[2 * i]), lo = val(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

Result<Hash256> HashFile(int fd) {
  Hasher h;
  std::vector<uint8_t> buf(1 << 20);
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", errno);
    }
    if (n == 0) break;
    h.Update(buf.data(), static_cast<size_t>(n));
    off += n;
  }
  return h.Finish();
}

Result<Hash256> HashPath(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError(path, errno);
  auto r = HashFile(fd.get());
  if (!r.ok()) return Status(r.status().code(), path + ": " + r.status().message());
  return r;
}

}  // namespace cm
