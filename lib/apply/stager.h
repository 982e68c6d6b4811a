// Carries out one assignment command on a staged tree.
//
// Contract (the staging invariant): an inode that already exists in the
// stage may be shared with the live tree or a kept release (see
// tree_clone.h), so it is NEVER opened for writing. Every change makes a new
// inode under a temporary name in the same directory and renames it over the
// path; a SET_META on a shared file copies it first. Paths are validated and
// resolved with safe_path.h (no '..', no symlink followed, no special file
// read). Directories keep their final metadata while staged wherever that
// leaves them owner-rwx (tree_clone.h): MKDIR and SET_META on a directory
// apply it at once and log it (dir_meta.h; a mode without owner rwx is only
// logged and waits for the commit), and a command that changes a directory's
// entries puts that directory's mtime back.
//
// Errors: kUnsafePath (path escapes, goes through a symlink, or names a
// device/fifo), kBaseMismatch (a patch base or an expected entry differs),
// kCorrupt (data does not match its size/hash, bad patch instructions),
// kIo/kNoSpace (the file system). After an error the stage is inconsistent
// and must be discarded. Not thread-safe.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "apply/dir_meta.h"
#include "apply/safe_path.h"
#include "pack/assignment_format.h"
#include "util/byte_source.h"
#include "util/status.h"

namespace cm::apply {

struct StageStats {
  uint64_t dirs = 0, created = 0, patched = 0, removed = 0, renamed = 0, copied = 0, meta = 0, symlinks = 0;
  uint64_t touched = 0;  // files and directories given a run's mtime (TOUCH)
  uint64_t bytes_written = 0;
};

class Stager {
 public:
  // tree_fd: the stage's root directory (not owned). log: its dirmeta log.
  Stager(int tree_fd, DirMetaLog* log) : tree_fd_(tree_fd), log_(log), walker_(tree_fd) {}

  // data: the command's data (CREATE: file bytes, PATCH: instructions);
  // nullptr for commands without data.
  Status Apply(const pack::Command& c, ByteSource* data);
  const StageStats& stats() const { return stats_; }
  // Bytes of file content the commands may still write (create, patch,
  // copy, copy-on-meta); a command that would exceed it is refused with
  // kNoSpace before it writes. Unlimited by default.
  void set_write_budget(uint64_t bytes) { budget_ = bytes; }

  // Files TOUCH gave their new mtime by copying a shared inode (the bytes
  // of `src_*` into the new inode `ino`): the copy holds the source's bytes,
  // so the staged manifest may take the hash recorded for the source (the
  // live release's stat cache) for it instead of reading it again
  // (applier.cc RecordStagedManifest). Any command other than TOUCH drops
  // the list (it could replace a copied path).
  struct TouchCopy {
    std::string path;
    uint64_t size = 0;
    uint64_t src_ino = 0, ino = 0;
    int64_t src_mtime_ns = 0, mtime_ns = 0;
  };
  const std::vector<TouchCopy>& touch_copies() const { return touch_copies_; }

 private:
  Status Mkdir(const pack::Command& c);
  // A command's parent directory (borrowed from walker_: valid until the
  // next Locate) and last component. A missing parent is kBaseMismatch.
  struct Place {
    int dir = -1;
    std::string leaf;
  };
  Result<Place> Locate(const std::string& path);
  Status DirMeta(const Place& p, const pack::Command& c);
  Status Create(const pack::Command& c, ByteSource* data);
  Status Patch(const pack::Command& c, ByteSource* data);
  Status Remove(const pack::Command& c);
  Status Rename(const pack::Command& c);
  Status Copy(const pack::Command& c);
  Status SetMeta(const pack::Command& c);
  Status Symlink(const pack::Command& c);
  Status Touch(const pack::Command& c);
  struct TouchWalk;
  Status TouchDir(TouchWalk* t, const std::string& dir);
  Status TouchOne(TouchWalk* t, const std::string& path, const struct stat& st);
  Status TouchFile(TouchWalk* t, int dir_fd, const std::string& name, const std::string& path, const struct stat& st,
                   bool* dir_changed);

  std::vector<char>& IoBuffer();
  Status Spend(uint64_t bytes, const std::string& path);

  int tree_fd_;
  DirMetaLog* log_;
  ParentWalker walker_;
  StageStats stats_;
  std::vector<char> io_buf_;
  // TOUCH: the directories' logged metadata (their true modes), read once.
  std::optional<DirMetaMap> logged_dirs_;
  uint64_t budget_ = UINT64_MAX;
  bool reflink_ = true;  // FICLONE not yet refused by the stage's file system
  std::vector<TouchCopy> touch_copies_;
};

}  // namespace cm::apply
