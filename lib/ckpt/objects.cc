#include "ckpt/objects.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "util/crash_point.h"
#include "util/file_util.h"

namespace cm::ckpt {

namespace {

constexpr size_t kBuf = 1 << 20;

// Hashes the first `size` bytes of fd through pread; the byte count read.
Result<uint64_t> HashFd(int fd, Hasher* h) {
  std::vector<char> buf(kBuf);
  uint64_t off = 0;
  for (;;) {
    CM_ASSIGN_OR_RETURN(size_t n, PreadFull(fd, buf.data(), buf.size(), off));
    if (n == 0) return off;
    h->Update(buf.data(), n);
    off += n;
  }
}

bool ParseObjectName(const std::string& sub, const char* name, Hash256* h) {
  std::string hex = sub + name;
  return sub.size() == 2 && hex.size() == 64 && FromHex(hex, h->data(), 32);
}

// Calls f(hash, full path, stat) for every object file.
template <typename F>
Status ForEachObject(const std::string& dir, F f) {
  DIR* top = ::opendir(dir.c_str());
  if (!top) return ErrnoError(dir, errno);
  Status result;
  while (struct dirent* d = ::readdir(top)) {
    std::string sub = d->d_name;
    if (sub.size() != 2 || sub[0] == '.') continue;
    std::string subdir = dir + "/" + sub;
    DIR* s = ::opendir(subdir.c_str());
    if (!s) continue;  // not a directory
    while (struct dirent* e = ::readdir(s)) {
      Hash256 h;
      if (!ParseObjectName(sub, e->d_name, &h)) continue;
      std::string p = subdir + "/" + e->d_name;
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      result = f(h, p, st);
      if (!result.ok()) break;
    }
    ::closedir(s);
    if (!result.ok()) break;
  }
  ::closedir(top);
  return result;
}

}  // namespace

Status CopyData(int src_fd, int dst_fd) {
  if (::ioctl(dst_fd, FICLONE, src_fd) == 0) return Status::Ok();
  off_t in_off = 0, out_off = 0;
  for (;;) {
    ssize_t n = ::copy_file_range(src_fd, &in_off, dst_fd, &out_off, 1 << 30, 0);
    if (n > 0) continue;
    if (n == 0) return Status::Ok();
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return ErrnoError("copy", errno);
    break;
  }
  std::vector<char> buf(kBuf);
  for (;;) {
    CM_ASSIGN_OR_RETURN(size_t n, PreadFull(src_fd, buf.data(), buf.size(), static_cast<uint64_t>(in_off)));
    if (n == 0) return Status::Ok();
    CM_RETURN_IF_ERROR(PwriteFull(dst_fd, buf.data(), n, static_cast<uint64_t>(out_off)));
    in_off += static_cast<off_t>(n);
    out_off += static_cast<off_t>(n);
  }
}

std::string Objects::PathOf(const Hash256& h) const {
  std::string hex = ToHex(h);
  return dir_ + "/" + hex.substr(0, 2) + "/" + hex.substr(2);
}

bool Objects::Has(const Hash256& h) const {
  struct stat st;
  return ::lstat(PathOf(h).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Status Objects::Put(const std::string& src, const Hash256& want, uint64_t size) {
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return ErrnoError(src, errno);
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return ErrnoError(src, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kFailure, src + ": no longer a regular file (checkpoint again)");
  const std::string tmp =
      tmp_ + "/" + ToHex(want.data(), 8) + "." + std::to_string(::getpid()) + "." + std::to_string(++seq_);
  UniqueFd out(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) return ErrnoError(tmp, errno);
  auto drop = [&](Status s) {
    ::unlink(tmp.c_str());
    return s;
  };
  // A reflink shares the extents (no bytes written): hash what it shares.
  // Else one pass reads, hashes and writes, so the hash covers the bytes stored.
  Hasher h;
  uint64_t n = 0;
  if (::ioctl(out.get(), FICLONE, in.get()) == 0) {
    auto r = HashFd(out.get(), &h);
    if (!r.ok()) return drop(r.status());
    n = *r;
  } else {
    std::vector<char> buf(kBuf);
    for (;;) {
      auto r = ReadFull(in.get(), buf.data(), buf.size());
      if (!r.ok()) return drop(Status(r.status().code(), src + ": " + r.status().message()));
      if (*r == 0) break;
      h.Update(buf.data(), *r);
      Status w = WriteFull(out.get(), buf.data(), *r);
      if (!w.ok()) return drop(Status(w.code(), tmp + ": " + w.message()));
      n += *r;
    }
  }
  if (n != size || h.Finish() != want)
    return drop(Error(Code::kFailure, src + ": changed while being stored (checkpoint again)"));
  if (::fchmod(out.get(), 0444) != 0) return drop(ErrnoError(tmp, errno));
  const std::string final_path = PathOf(want);
  const std::string sub = DirName(final_path);
  if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) return drop(ErrnoError(sub, errno));
  CrashPoint("ckpt-object-tmp");
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) return drop(ErrnoError(final_path, errno));
  return Status::Ok();
}

Status Objects::CopyTo(const Hash256& h, int dst_fd) const {
  const std::string p = PathOf(h);
  UniqueFd in(::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) {
    if (errno == ENOENT) return Error(Code::kNotFound, "object " + ToHex(h) + " is missing from the store");
    return ErrnoError(p, errno);
  }
  return CopyData(in.get(), dst_fd);
}

Result<Hash256> Objects::Rehash(const Hash256& h) const {
  const std::string p = PathOf(h);
  UniqueFd in(::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) {
    if (errno == ENOENT) return Error(Code::kNotFound, "object " + ToHex(h) + " is missing from the store");
    return ErrnoError(p, errno);
  }
  Hasher hs;
  CM_RETURN_IF_ERROR(HashFd(in.get(), &hs).status());
  return hs.Finish();
}

Result<Objects::GcStats> Objects::Collect(const std::set<Hash256>& keep) {
  GcStats g;
  Status s = ForEachObject(dir_, [&](const Hash256& h, const std::string& p, const struct stat& st) {
    if (keep.count(h)) {
      ++g.kept;
      return Status::Ok();
    }
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return ErrnoError(p, errno);
    ++g.removed;
    g.bytes_freed += static_cast<uint64_t>(st.st_size);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return g;
}

Result<uint64_t> Objects::Bytes() const {
  uint64_t n = 0;
  Status s = ForEachObject(dir_, [&](const Hash256&, const std::string&, const struct stat& st) {
    n += static_cast<uint64_t>(st.st_size);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

}  // namespace cm::ckpt
