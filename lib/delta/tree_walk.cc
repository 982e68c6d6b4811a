#include "delta/tree_walk.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "util/file_util.h"

namespace cm::delta {

PathFilter::PathFilter(const std::vector<std::string>& patterns) {
  for (std::string g : patterns) {
    Pattern p;
    while (g.size() > 1 && g.back() == '/') {
      p.dir_only = true;
      g.pop_back();
    }
    while (!g.empty() && g.front() == '/') {
      p.anchored = true;
      g.erase(0, 1);
    }
    if (g.empty()) continue;
    p.glob = std::move(g);
    pats_.push_back(std::move(p));
  }
}

bool PathFilter::Excluded(const std::string& rel_path, bool is_dir) const {
  if (pats_.empty()) return false;
  size_t slash = rel_path.find_last_of('/');
  const char* base = rel_path.c_str() + (slash == std::string::npos ? 0 : slash + 1);
  for (const Pattern& p : pats_) {
    if (p.dir_only && !is_dir) continue;
    if (fnmatch(p.glob.c_str(), rel_path.c_str(), FNM_PATHNAME) == 0) return true;
    if (!p.anchored && fnmatch(p.glob.c_str(), base, FNM_PATHNAME) == 0) return true;
  }
  return false;
}

int ComparePaths(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] == b[i]) continue;
    // '/' ends a component, so it sorts before every other byte.
    unsigned ca = a[i] == '/' ? 0u : static_cast<unsigned char>(a[i]) + 1u;
    unsigned cb = b[i] == '/' ? 0u : static_cast<unsigned char>(b[i]) + 1u;
    return ca < cb ? -1 : 1;
  }
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

TreeWalker::TreeWalker(std::string root, const PathFilter* filter, WalkWarning warn)
    : root_(std::move(root)), filter_(filter), warn_(std::move(warn)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

Status TreeWalker::Start(bool missing_ok) {
  started_ = true;
  struct stat st;
  if (::stat(root_.c_str(), &st) != 0) {
    int e = errno;
    if (e == ENOENT && missing_ok) {
      root_missing_ = true;
      return Status::Ok();
    }
    if (e == ENOENT || e == ENOTDIR) return Error(Code::kNotFound, root_ + ": no such directory");
    return ErrnoError(root_, e);
  }
  if (!S_ISDIR(st.st_mode)) return Error(Code::kUsage, root_ + ": not a directory");
  // A root that is a symlink to a directory (a content root's `current`) is
  // followed once, here: the walk then stays in the tree it pointed at even
  // if the link is switched meanwhile, and below the root nothing is followed.
  struct stat lst;
  if (::lstat(root_.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    char* real = ::realpath(root_.c_str(), nullptr);
    if (real == nullptr) return ErrnoError(root_, errno);
    root_ = real;
    ::free(real);
  }
  descend_.clear();
  descend_pending_ = true;
  return Status::Ok();
}

Result<bool> TreeWalker::Next(WalkEntry* e) {
  if (!started_) return Error(Code::kFailure, "TreeWalker::Next before Start");
  if (descend_pending_) {
    descend_pending_ = false;
    Frame f;
    CM_RETURN_IF_ERROR(List(descend_, &f.entries));
    if (!f.entries.empty()) stack_.push_back(std::move(f));
  }
  while (!stack_.empty() && stack_.back().next == stack_.back().entries.size()) stack_.pop_back();
  if (stack_.empty()) return false;
  Frame& top = stack_.back();
  *e = std::move(top.entries[top.next++]);
  if (e->kind == Kind::kDir) {
    descend_ = e->path;
    descend_pending_ = true;
  }
  return true;
}

Status TreeWalker::List(const std::string& rel, std::vector<WalkEntry>* out) {
  std::string dir_path = rel.empty() ? root_ : FullPath(rel);
  UniqueFd dfd(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!dfd) return ErrnoError(dir_path, errno);
  int listing_fd = ::dup(dfd.get());
  if (listing_fd < 0) return ErrnoError(dir_path, errno);
  DIR* d = ::fdopendir(listing_fd);
  if (d == nullptr) {
    int err = errno;
    ::close(listing_fd);
    return ErrnoError(dir_path, err);
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    struct dirent* de = ::readdir(d);
    if (de == nullptr) {
      int err = errno;
      if (err != 0) {
        ::closedir(d);
        return ErrnoError(dir_path, err);
      }
      break;
    }
    const char* n = de->d_name;
    if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
    names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());

  out->clear();
  out->reserve(names.size());
  for (std::string& name : names) {
    WalkEntry w;
    w.path = rel.empty() ? name : rel + "/" + name;
    if (!IsSafeRelativePath(w.path)) return Error(Code::kFailure, FullPath(w.path) + ": path too long");
    struct stat st;
    if (::fstatat(dfd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {  // vanished since readdir: as if it never was
        if (warn_) warn_(w.path, "vanished during the walk");
        continue;
      }
      return ErrnoError(FullPath(w.path), errno);
    }
    if (S_ISREG(st.st_mode)) {
      w.kind = Kind::kFile;
      w.size = static_cast<uint64_t>(st.st_size);
    } else if (S_ISDIR(st.st_mode)) {
      w.kind = Kind::kDir;
    } else if (S_ISLNK(st.st_mode)) {
      w.kind = Kind::kSymlink;
    } else {
      if (filter_ != nullptr && filter_->Excluded(w.path, false)) continue;
      const char* what = S_ISFIFO(st.st_mode)   ? "skipping fifo"
                         : S_ISSOCK(st.st_mode) ? "skipping socket"
                                                : "skipping device file";
      if (warn_) warn_(w.path, what);
      continue;
    }
    if (filter_ != nullptr && filter_->Excluded(w.path, w.kind == Kind::kDir)) continue;
    if (w.kind == Kind::kSymlink) {
      std::string buf(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
      for (;;) {
        ssize_t r = ::readlinkat(dfd.get(), name.c_str(), buf.data(), buf.size());
        if (r < 0) return ErrnoError(FullPath(w.path), errno);
        if (static_cast<size_t>(r) < buf.size()) {
          buf.resize(static_cast<size_t>(r));
          break;
        }
        if (buf.size() > 65536) return Error(Code::kFailure, FullPath(w.path) + ": symlink target too long");
        buf.resize(buf.size() * 2);
      }
      if (buf.empty() || buf.size() > 4096)
        return Error(Code::kFailure, FullPath(w.path) + ": unsupported symlink target length");
      w.link_target = std::move(buf);
    }
    w.mode = static_cast<uint32_t>(st.st_mode & 07777);
    w.uid = st.st_uid;
    w.gid = st.st_gid;
    w.ino = static_cast<uint64_t>(st.st_ino);
    w.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    out->push_back(std::move(w));
  }
  return Status::Ok();
}

}  // namespace cm::delta
