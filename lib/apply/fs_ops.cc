#include "apply/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace cm::apply {

bool RunningAsRoot() {
  static const bool root = ::geteuid() == 0;
  return root;
}

Result<struct stat> LstatAt(int dir_fd, const std::string& name) {
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return ErrnoError(name, errno);
  return st;
}

namespace {
int g_temp_counter = 0;
constexpr char kTempPrefix[] = ".cmtmp-";
}  // namespace

std::string TempLeaf() {
  return std::string(kTempPrefix) + std::to_string(::getpid()) + "-" + std::to_string(g_temp_counter++);
}


void TempEntry::Unlink() {
  if (::unlinkat(dir_fd_, name_.c_str(), 0) != 0 && errno == EISDIR) RemoveTreeAt(dir_fd_, name_);
  name_.clear();
}

namespace {
Status RemoveChildren(int fd, const std::string& what) {
  // Collect names first: unlinking while iterating a DIR stream may skip entries.
  int dup_fd = ::dup(fd);
  if (dup_fd < 0) return ErrnoError(what, errno);
  DIR* d = ::fdopendir(dup_fd);
  if (!d) {
    ::close(dup_fd);
    return ErrnoError(what, errno);
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& n : names) CM_RETURN_IF_ERROR(RemoveTreeAt(fd, n));
  return Status::Ok();
}
}  // namespace

Status RemoveTreeAt(int dir_fd, const std::string& name) {
  auto st = LstatAt(dir_fd, name);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Status::Ok() : st.status();
  if (!S_ISDIR(st->st_mode)) {
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) return ErrnoError(name, errno);
    return Status::Ok();
  }
  if ((st->st_mode & 0700) != 0700 && ::fchmodat(dir_fd, name.c_str(), (st->st_mode & 07777) | 0700, 0) != 0)
    return ErrnoError(name, errno);
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoError(name, errno);
  CM_RETURN_IF_ERROR(RemoveChildren(fd.get(), name));
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) return ErrnoError(name, errno);
  return Status::Ok();
}

Status RemoveTree(const std::string& path) {
  auto parent = OpenDir(DirName(path));
  if (!parent.ok()) return parent.status().code() == Code::kNotFound ? Status::Ok() : parent.status();
  Status st = RemoveTreeAt(parent->get(), BaseName(path));
  if (!st.ok()) return Status(st.code(), path + ": " + st.message());
  return st;
}

Status CopyFileData(int src_fd, int dst_fd, bool* reflink) {
  if (reflink == nullptr || *reflink) {
    if (::ioctl(dst_fd, FICLONE, src_fd) == 0) return Status::Ok();
    if (reflink != nullptr && (errno == EOPNOTSUPP || errno == ENOTTY || errno == EXDEV))
      *reflink = false;
  }
  off_t in_off = 0, out_off = 0;
  bool use_cfr = true;
  for (;;) {
    if (use_cfr) {
      ssize_t n = ::copy_file_range(src_fd, &in_off, dst_fd, &out_off, 1 << 30, 0);
      if (n > 0) continue;
      if (n == 0) return Status::Ok();
      if (errno == EINTR) continue;
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return ErrnoError("copy", errno);
      use_cfr = false;
    }
    std::vector<char> buf(1 << 20);
    for (;;) {
      auto n = PreadFull(src_fd, buf.data(), buf.size(), static_cast<uint64_t>(in_off));
      if (!n.ok()) return n.status();
      if (*n == 0) return Status::Ok();
      CM_RETURN_IF_ERROR(PwriteFull(dst_fd, buf.data(), *n, static_cast<uint64_t>(out_off)));
      in_off += static_cast<off_t>(*n);
      out_off += static_cast<off_t>(*n);
    }
  }
}


Status ApplyMetaFd(int fd, const pack::Meta& meta, const std::string& what) {
  if (meta.has_owner && RunningAsRoot() && ::fchown(fd, meta.uid, meta.gid) != 0) return ErrnoError(what, errno);
  if (::fchmod(fd, meta.mode & 07777) != 0) return ErrnoError(what, errno);
  if (meta.mtime_ns != 0) {
    timespec ts[2] = {{0, UTIME_OMIT}, NsToTimespec(meta.mtime_ns)};
    if (::futimens(fd, ts) != 0) return ErrnoError(what, errno);
  }
  return Status::Ok();
}

Status ApplyMetaAt(int dir_fd, const std::string& name, const pack::Meta& meta, bool is_symlink,
                   const std::string& what) {
  if (meta.has_owner && RunningAsRoot() &&
      ::fchownat(dir_fd, name.c_str(), meta.uid, meta.gid, AT_SYMLINK_NOFOLLOW) != 0)
    return ErrnoError(what, errno);
  // fchmodat has no working AT_SYMLINK_NOFOLLOW for links; callers have
  // checked `name` is not a symlink when is_symlink is false.
  if (!is_symlink && ::fchmodat(dir_fd, name.c_str(), meta.mode & 07777, 0) != 0) return ErrnoError(what, errno);
  if (meta.mtime_ns != 0) {
    timespec ts[2] = {{0, UTIME_OMIT}, NsToTimespec(meta.mtime_ns)};
    if (::utimensat(dir_fd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) return ErrnoError(what, errno);
  }
  return Status::Ok();
}

pack::Meta MetaFromStat(const struct stat& st) {
  pack::Meta m;
  m.mode = st.st_mode & 07777;
  m.has_owner = true;
  m.uid = st.st_uid;
  m.gid = st.st_gid;
  m.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return m;
}

Status SyncFs(int fd, const std::string& what) {
  if (::syncfs(fd) != 0) return ErrnoError(what, errno);
  return Status::Ok();
}

Result<UniqueFd> OpenDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoError(path, errno);
  return fd;
}

}  // namespace cm::apply

namespace cm::apply {
namespace {
constexpr char kHashAttr[] = "user.cm.hash";
constexpr size_t kMemoSize = 8 + 8 + 32;
}  // namespace

void RememberHash(int fd, const Hash256& hash) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return;
  uint8_t memo[kMemoSize];
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  std::memcpy(memo, &size, 8);
  std::memcpy(memo + 8, &mtime, 8);
  std::memcpy(memo + 16, hash.data(), 32);
  (void)::fsetxattr(fd, kHashAttr, memo, sizeof memo, 0);
}

bool RecallHash(int fd, const struct stat& st, Hash256* hash) {
  uint8_t memo[kMemoSize];
  if (::fgetxattr(fd, kHashAttr, memo, sizeof memo) != static_cast<ssize_t>(sizeof memo)) return false;
  uint64_t size;
  int64_t mtime;
  std::memcpy(&size, memo, 8);
  std::memcpy(&mtime, memo + 8, 8);
  if (size != static_cast<uint64_t>(st.st_size) ||
      mtime != static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec)
    return false;
  std::memcpy(hash->data(), memo + 16, 32);
  return true;
}

}  // namespace cm::apply
