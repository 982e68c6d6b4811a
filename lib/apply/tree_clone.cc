#include "apply/tree_clone.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "apply/fs_ops.h"
#include "util/file_util.h"
#include "util/log.h"

namespace cm::apply {
namespace {

Status CopyOne(int src_dir, int dst_dir, const std::string& name, const struct stat& st, const std::string& rel) {
  UniqueFd in(::openat(src_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!in) return ErrnoError(rel, errno);
  UniqueFd out(::openat(dst_dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return ErrnoError(rel, errno);
  CM_RETURN_IF_ERROR(CopyFileData(in.get(), out.get()));
  return ApplyMetaFd(out.get(), MetaFromStat(st), rel);
}

struct Entry {
  std::string name;
  unsigned char type;  // DT_*
};

class Cloner {
 public:
  Cloner(DirMetaLog* log, CloneStats* stats) : log_(log), stats_(stats), buf_(64 * 1024) {}

  // Clones the entries of src_fd into dst_fd (both directories).
  Status Dir(int src_fd, int dst_fd, const std::string& rel) {
    std::vector<Entry> entries;
    CM_RETURN_IF_ERROR(List(src_fd, rel, &entries));
    for (Entry& e : entries) {
      const std::string child = rel.empty() ? e.name : rel + "/" + e.name;
      unsigned char type = e.type;
      struct stat st;
      bool have_st = false;
      if (type == DT_UNKNOWN) {  // file systems without d_type
        if (::fstatat(src_fd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return ErrnoError(child, errno);
        have_st = true;
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_FIFO;
      }
      switch (type) {
        case DT_DIR: CM_RETURN_IF_ERROR(SubDir(src_fd, dst_fd, e.name, child)); break;
        case DT_REG: CM_RETURN_IF_ERROR(File(src_fd, dst_fd, e.name, child, have_st ? &st : nullptr)); break;
        case DT_LNK: CM_RETURN_IF_ERROR(Symlink(src_fd, dst_fd, e.name, child, have_st ? &st : nullptr)); break;
        default:
          log::Warn(child + ": special file not staged");
          ++stats_->skipped;
      }
    }
    return Status::Ok();
  }

 private:
  // All entries but "." and "..", read with getdents64 (d_type included).
  Status List(int fd, const std::string& rel, std::vector<Entry>* out) {
    for (;;) {
      ssize_t n = ::getdents64(fd, buf_.data(), buf_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(rel.empty() ? "." : rel, errno);
      }
      if (n == 0) return Status::Ok();
      for (ssize_t off = 0; off < n;) {
        const auto* d = reinterpret_cast<const struct dirent64*>(buf_.data() + off);
        off += d->d_reclen;
        const char* nm = d->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) continue;
        out->push_back(Entry{nm, d->d_type});
      }
    }
  }

  // The entry's lstat: `known` when List had to stat it already.
  static Result<struct stat> StatOf(int src_fd, const std::string& name, const std::string& child,
                                    const struct stat* known) {
    if (known) return *known;
    auto s = LstatAt(src_fd, name);
    if (!s.ok()) return Status(s.status().code(), child + ": " + s.status().message());
    return s;
  }

  Status SubDir(int src_fd, int dst_fd, const std::string& name, const std::string& child) {
    UniqueFd s(::openat(src_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!s) return ErrnoError(child, errno);
    struct stat st;
    if (::fstat(s.get(), &st) != 0) return ErrnoError(child, errno);
    const mode_t true_mode = st.st_mode & 07777;
    const mode_t staged_mode = StagingDirMode(true_mode);
    if (::mkdirat(dst_fd, name.c_str(), staged_mode & 01777) != 0) return ErrnoError(child, errno);
    UniqueFd t(::openat(dst_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!t) return ErrnoError(child, errno);
    ++stats_->dirs;
    CM_RETURN_IF_ERROR(Dir(s.get(), t.get(), child));
    // Final metadata now that the entries are in place: owner (as root), mode
    // (always: umask, default ACLs and a set-group-ID parent all bend what
    // mkdirat gave), mtime last.
    pack::Meta m = MetaFromStat(st);
    m.mode = staged_mode;
    CM_RETURN_IF_ERROR(ApplyMetaFd(t.get(), m, child));
    if (log_ && staged_mode != true_mode) CM_RETURN_IF_ERROR(log_->Set(child, MetaFromStat(st)));
    return Status::Ok();
  }

  Status File(int src_fd, int dst_fd, const std::string& name, const std::string& child, const struct stat* known) {
    if (::linkat(src_fd, name.c_str(), dst_fd, name.c_str(), 0) == 0) {
      ++stats_->linked;
      return Status::Ok();
    }
    if (errno != EPERM && errno != EMLINK) return ErrnoError(child, errno);
    CM_ASSIGN_OR_RETURN(struct stat st, StatOf(src_fd, name, child, known));
    if (!S_ISREG(st.st_mode)) return Error(Code::kFailure, child + ": changed type while being staged");
    CM_RETURN_IF_ERROR(CopyOne(src_fd, dst_fd, name, st, child));
    ++stats_->copied;
    return Status::Ok();
  }

  Status Symlink(int src_fd, int dst_fd, const std::string& name, const std::string& child, const struct stat* known) {
    CM_ASSIGN_OR_RETURN(struct stat st, StatOf(src_fd, name, child, known));
    std::vector<char> target(static_cast<size_t>(st.st_size) + 1);
    ssize_t n = ::readlinkat(src_fd, name.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoError(child, errno);
    std::string t(target.data(), static_cast<size_t>(n));
    if (::symlinkat(t.c_str(), dst_fd, name.c_str()) != 0) return ErrnoError(child, errno);
    CM_RETURN_IF_ERROR(ApplyMetaAt(dst_fd, name, MetaFromStat(st), /*is_symlink=*/true, child));
    ++stats_->symlinks;
    return Status::Ok();
  }

  DirMetaLog* log_;
  CloneStats* stats_;
  std::vector<char> buf_;  // getdents64 buffer; entries are copied out before recursing
};

}  // namespace

Status CloneTree(int src_fd, int dst_fd, DirMetaLog* log, CloneStats* stats) {
  if (log) {
    struct stat st;
    if (::fstat(src_fd, &st) != 0) return ErrnoError("clone source", errno);
    CM_RETURN_IF_ERROR(log->Set("", MetaFromStat(st)));
  }
  if (::lseek(src_fd, 0, SEEK_SET) != 0) return ErrnoError("clone source", errno);
  Cloner c(log, stats);
  return c.Dir(src_fd, dst_fd, "");
}

bool MarkTopDir(int dir_fd) {
  int flags = 0;
  if (::ioctl(dir_fd, FS_IOC_GETFLAGS, &flags) != 0) return false;
  if (flags & FS_TOPDIR_FL) return true;
  flags |= FS_TOPDIR_FL;
  return ::ioctl(dir_fd, FS_IOC_SETFLAGS, &flags) == 0;
}

}  // namespace cm::apply
