#include "apply/tree_clone.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "apply/fs_ops.h"
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

Status CloneDir(int src_fd, int dst_fd, const std::string& rel, DirMetaLog* log, CloneStats* stats) {
  int dup_fd = ::dup(src_fd);
  if (dup_fd < 0) return ErrnoError(rel, errno);
  DIR* d = ::fdopendir(dup_fd);
  if (!d) {
    ::close(dup_fd);
    return ErrnoError(rel, errno);
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& name : names) {
    std::string child = rel.empty() ? name : rel + "/" + name;
    auto st = LstatAt(src_fd, name);
    if (!st.ok()) return Status(st.status().code(), child + ": " + st.status().message());
    if (S_ISDIR(st->st_mode)) {
      if (::mkdirat(dst_fd, name.c_str(), 0700) != 0) return ErrnoError(child, errno);
      if (::fchmodat(dst_fd, name.c_str(), StagingDirMode(st->st_mode), 0) != 0) return ErrnoError(child, errno);
      if (log) CM_RETURN_IF_ERROR(log->Set(child, MetaFromStat(*st)));
      UniqueFd s(::openat(src_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!s) return ErrnoError(child, errno);
      UniqueFd t(::openat(dst_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!t) return ErrnoError(child, errno);
      ++stats->dirs;
      CM_RETURN_IF_ERROR(CloneDir(s.get(), t.get(), child, log, stats));
    } else if (S_ISREG(st->st_mode)) {
      if (::linkat(src_fd, name.c_str(), dst_fd, name.c_str(), 0) == 0) {
        ++stats->linked;
      } else if (errno == EPERM || errno == EMLINK) {
        CM_RETURN_IF_ERROR(CopyOne(src_fd, dst_fd, name, *st, child));
        ++stats->copied;
      } else {
        return ErrnoError(child, errno);
      }
    } else if (S_ISLNK(st->st_mode)) {
      std::vector<char> target(static_cast<size_t>(st->st_size) + 1);
      ssize_t n = ::readlinkat(src_fd, name.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoError(child, errno);
      std::string t(target.data(), static_cast<size_t>(n));
      if (::symlinkat(t.c_str(), dst_fd, name.c_str()) != 0) return ErrnoError(child, errno);
      pack::Meta m = MetaFromStat(*st);
      CM_RETURN_IF_ERROR(ApplyMetaAt(dst_fd, name, m, /*is_symlink=*/true, child));
      ++stats->symlinks;
    } else {
      log::Warn(child + ": special file not staged");
      ++stats->skipped;
    }
  }
  return Status::Ok();
}

}  // namespace

Status CloneTree(int src_fd, int dst_fd, DirMetaLog* log, CloneStats* stats) {
  if (log) {
    struct stat st;
    if (::fstat(src_fd, &st) != 0) return ErrnoError("clone source", errno);
    CM_RETURN_IF_ERROR(log->Set("", MetaFromStat(st)));
  }
  return CloneDir(src_fd, dst_fd, "", log, stats);
}

}  // namespace cm::apply
