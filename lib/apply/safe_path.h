// Paths named by an assignment, checked before anything touches the disk, and
// opened component by component so that no path can leave the tree it is
// resolved in.
//
// A valid relative path is non-empty, has no NUL byte, does not start with
// '/', and has no empty, "." or ".." component. Resolution walks from a
// directory fd with openat(O_NOFOLLOW|O_DIRECTORY) one component at a time,
// so a path that goes THROUGH a symlink is refused with kUnsafePath even when
// the symlink points inside the tree: cm-apply never follows a link.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/file_util.h"
#include "util/status.h"

namespace cm::apply {

// kUnsafePath with a message naming the problem, or Ok.
Status ValidateRelPath(std::string_view path);
// Splits a valid path into its components ("a/b/c" -> {"a","b","c"}).
std::vector<std::string> SplitPath(std::string_view path);

// Opens the directory `path` (relative, already valid, may be "" for `dir_fd`
// itself) under dir_fd without following any symlink. Errors: kUnsafePath if
// a component is a symlink or a special file, kBaseMismatch if a component is
// a regular file, kNotFound if one is missing.
Result<UniqueFd> OpenDirBeneath(int dir_fd, std::string_view path);

// A path resolved to (its parent directory fd, its last component).
struct ParentRef {
  UniqueFd dir;
  std::string leaf;
};
// Validates `path` and opens its parent beneath dir_fd (see OpenDirBeneath).
Result<ParentRef> OpenParentBeneath(int dir_fd, std::string_view path);

// OpenParentBeneath with a memory: the directories of the last path resolved
// stay open, so consecutive paths in one directory (an assignment's commands
// come in path order) resolve with no system call, and a neighbouring
// directory with one openat per component that differs. Same checks and
// errors as OpenDirBeneath. The fd returned is borrowed: valid until the next
// Parent() or Forget(). Call Forget() after anything that removes, renames or
// replaces a directory beneath the root.
class ParentWalker {
 public:
  explicit ParentWalker(int root_fd) : root_(root_fd) {}
  // Validates `path`, opens its parent and sets *leaf to its last component.
  Result<int> Parent(std::string_view path, std::string* leaf);
  void Forget() {
    chain_.clear();
    deep_.reset();
  }

 private:
  static constexpr size_t kMaxCached = 64;  // directories kept open at most
  int root_;
  std::vector<std::pair<std::string, UniqueFd>> chain_;  // component, its directory
  UniqueFd deep_;                                        // parent below kMaxCached levels
};

}  // namespace cm::apply
