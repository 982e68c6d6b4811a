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
namespace {
constexpr size_t kMaxOpenLevels = 64;
}  // namespace

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
    CM_RETURN_IF_ERROR(List(descend_, &f));
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

Status TreeWalker::List(const std::string& rel, Frame* frame) {
  std::string dir_path = rel.empty() ? root_ : FullPath(rel);
  // Relative to the parent's open directory: one component to resolve, not
  // the whole path (the parent frame is still on the stack).
  const int parent = rel.empty() || stack_.empty() || !stack_.back().dir ? AT_FDCWD : stack_.back().dir.get();
  const size_t slash = rel.find_last_of('/');
  const std::string leaf = parent == AT_FDCWD ? dir_path : slash == std::string::npos ? rel : rel.substr(slash + 1);
  frame->dir.reset(::openat(parent, leaf.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!frame->dir) return ErrnoError(dir_path, errno);
  const int dfd = frame->dir.get();
  std::vector<std::string> names;
  // getdents64 on the directory itself (no dup/fdopendir); fstatat and
  // openat by name stay valid on the same descriptor afterwards.
  alignas(8) char dents[32768];
  for (;;) {
    const ssize_t n = ::getdents64(dfd, dents, sizeof dents);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(dir_path, errno);
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* de = reinterpret_cast<const struct dirent64*>(dents + off);
      off += de->d_reclen;
      const char* nm = de->d_name;
      if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) continue;
      names.emplace_back(nm);
    }
  }
  std::sort(names.begin(), names.end());

  // Levels deeper than kMaxOpenLevels do not keep theirs (a pathologically
  // deep tree must not run out of descriptors): ParentFd() is -1 there.
  struct CloseIfDeep {
    Frame* f;
    bool deep;
    ~CloseIfDeep() {
      if (deep) f->dir.reset();
    }
  } close_if_deep{frame, stack_.size() >= kMaxOpenLevels};
  std::vector<WalkEntry>* out = &frame->entries;
  out->clear();
  out->reserve(names.size());
  for (std::string& name : names) {
    WalkEntry w;
    w.path = rel.empty() ? name : rel + "/" + name;
    if (!IsSafeRelativePath(w.path)) return Error(Code::kFailure, FullPath(w.path) + ": path too long");
    struct stat st;
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
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
        ssize_t r = ::readlinkat(dfd, name.c_str(), buf.data(), buf.size());
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
