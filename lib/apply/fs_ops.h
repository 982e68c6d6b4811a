// Small fd-relative file system helpers used by staging, switching and
// retention. Everything here works beneath a directory fd and never follows
// a symlink it did not create.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "pack/assignment_format.h"
#include "util/file_util.h"
#include "util/hash.h"
#include "util/status.h"

namespace cm::apply {

// True when running with effective uid 0 (owners are then preserved/applied).
bool RunningAsRoot();

// fstatat(AT_SYMLINK_NOFOLLOW); kNotFound when missing.
Result<struct stat> LstatAt(int dir_fd, const std::string& name);

// A fresh name for a temporary entry in a directory: ".cmtmp-<pid>-<n>".
// Short, so it fits beside any leaf of up to NAME_MAX bytes.
std::string TempLeaf();

// Unlinks dir_fd/name on destruction unless Release()d. Not thread-safe.
class TempEntry {
 public:
  TempEntry(int dir_fd, std::string name) : dir_fd_(dir_fd), name_(std::move(name)) {}
  ~TempEntry() {
    if (!name_.empty()) Unlink();
  }
  TempEntry(const TempEntry&) = delete;
  TempEntry& operator=(const TempEntry&) = delete;
  const std::string& name() const { return name_; }
  void Release() { name_.clear(); }

 private:
  void Unlink();
  int dir_fd_;
  std::string name_;
};

// Removes dir_fd/name whatever it is (file, symlink, or a directory with its
// whole subtree; directories are made writable first so read-only trees
// go too). Never follows symlinks. A missing entry is not an error.
Status RemoveTreeAt(int dir_fd, const std::string& name);
Status RemoveTree(const std::string& path);

// Copies the bytes of regular file src_fd into the empty file dst_fd
// (FICLONE when the file system can share extents, else copy_file_range,
// else read/write). Bounded memory. `reflink`, when given, says whether to
// try FICLONE and is cleared when the file system refuses it, so a caller
// copying many files into one file system asks once.
Status CopyFileData(int src_fd, int dst_fd, bool* reflink = nullptr);

// Applies owner (only as root and when meta.has_owner), permission bits and
// mtime (when meta.mtime_ns != 0) to an open file. `what` names it in errors.
Status ApplyMetaFd(int fd, const pack::Meta& meta, const std::string& what);

// A content-hash memo on the inode (extended attribute "user.cm.hash":
// size, mtime and BLAKE2b of the bytes), written by cm-apply on every file it
// creates once its final mtime is set. Inodes cm-apply made are never
// modified (they are only hard-linked or replaced), so a later patch of that
// file can skip re-hashing its base. The memo counts only while size and
// mtime still match, like rsync's quick check; anyone changing the file
// behind cm-apply's back changes its mtime (or makes a new inode) and the
// base is hashed in full again. Best effort: file systems without user
// xattrs simply never have a memo.
void RememberHash(int fd, const Hash256& hash);
bool RecallHash(int fd, const struct stat& st, Hash256* hash);

// The same for an entry by name without opening it (directories, symlinks:
// symlinks get owner and mtime only).
Status ApplyMetaAt(int dir_fd, const std::string& name, const pack::Meta& meta, bool is_symlink,
                   const std::string& what);

// Meta describing an existing entry (mode bits, mtime, owner).
pack::Meta MetaFromStat(const struct stat& st);

// syncfs() on the file system holding fd: makes every write so far durable.
Status SyncFs(int fd, const std::string& what);

// Opens a directory path (following symlinks in it; used only for paths we
// own such as ROOT and ROOT/.cm) with O_DIRECTORY.
Result<UniqueFd> OpenDir(const std::string& path);

}  // namespace cm::apply
