// A sorted, streaming, depth-first walk of one directory tree, as cm-delta
// needs it: within a directory names come in bytewise order, a directory
// comes right before its children, and only one sorted listing per level of
// the current path is held in memory (never the whole tree).
//
// The walk yields regular files, directories and symlinks (lstat, never
// following links). Fifos, sockets and devices are reported to the warning
// callback and skipped. Excluded paths (PathFilter) are skipped silently,
// a directory with its whole subtree.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "delta/delta_table.h"
#include "util/file_util.h"
#include "util/status.h"

namespace cm::delta {

struct WalkEntry {
  std::string path;  // relative to the root, '/'-separated
  Kind kind = Kind::kFile;
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime_ns = 0;
  uint64_t ino = 0;         // inode number (manifest stat cache)
  uint64_t size = 0;        // files: bytes; others: 0
  std::string link_target;  // symlinks
};

// Exclude patterns, fnmatch(3) globs. A pattern is matched (FNM_PATHNAME, so
// '*' does not cross '/') against the path relative to the root and against
// the base name; a leading '/' anchors it to the root (relative path only); a
// trailing '/' makes it match directories only.
class PathFilter {
 public:
  PathFilter() = default;
  explicit PathFilter(const std::vector<std::string>& patterns);
  bool Excluded(const std::string& rel_path, bool is_dir) const;
  bool empty() const { return pats_.empty(); }

 private:
  struct Pattern {
    std::string glob;
    bool anchored = false;
    bool dir_only = false;
  };
  std::vector<Pattern> pats_;
};

// Called for each skipped special file: (relative path, reason).
using WalkWarning = std::function<void(const std::string& path, const std::string& what)>;

// Orders relative paths the way the walk yields them: component by
// component, each compared bytewise ("a" < "a/b" < "a.txt" < "b").
int ComparePaths(const std::string& a, const std::string& b);

class TreeWalker {
 public:
  // filter may be null; both it and warn must outlive the walker.
  TreeWalker(std::string root, const PathFilter* filter, WalkWarning warn);

  // Checks the root. A missing root is kNotFound unless missing_ok, in which
  // case the walk is empty; a root that is not a directory is kUsage.
  Status Start(bool missing_ok = false);
  // True if Start found no root (missing_ok).
  bool root_missing() const { return root_missing_; }

  // The next entry in walk order: true with *e filled, false at the end.
  // After a directory, the next call descends into it unless SkipChildren()
  // was called. Errors: kIo (unreadable directory), kFailure (path too long).
  Result<bool> Next(WalkEntry* e);
  void SkipChildren() {
    descend_.clear();
    descend_pending_ = false;
  }

  // The open directory holding the entry the last Next() returned (for
  // openat/fstatat of its base name without resolving the whole path again),
  // valid until the next call of Next(); -1 before the first entry and below
  // the 64th level (use FullPath then).
  int ParentFd() const { return stack_.empty() ? -1 : stack_.back().dir.get(); }

  // Full filesystem path of a relative path.
  std::string FullPath(const std::string& rel) const { return root_ + "/" + rel; }
  // The root walked: after Start(), a root given as a symlink to a directory
  // is the directory it pointed at then (resolved once, so that a switch of
  // the link meanwhile does not mix two trees).
  const std::string& root() const { return root_; }

 private:
  struct Frame {
    std::vector<WalkEntry> entries;
    size_t next = 0;
    UniqueFd dir;  // the directory listed (ParentFd)
  };
  Status List(const std::string& rel, Frame* out);

  std::string root_;
  const PathFilter* filter_;
  WalkWarning warn_;
  bool root_missing_ = false;
  bool started_ = false;
  std::vector<Frame> stack_;
  std::string descend_;  // directory to list on the next call
  bool descend_pending_ = false;
};

}  // namespace cm::delta
