// Builds a staged copy of a tree without copying file bytes: directories are
// recreated, regular files are hard-linked, symlinks are recreated. The
// result shares every file inode with the source; staging never writes into
// a shared inode (see stager.h), so the source (the live release) is never
// modified.
//
// Directory metadata. Every directory of the copy gets the source
// directory's owner, mode and mtime as soon as its entries are in place, so a
// staged tree is already final except for:
//   - the root directory: it keeps mode 0700 until the commit moved it into
//     releases/ (its true metadata is always logged as "");
//   - directories whose true mode lacks owner rwx (e.g. 0555): they are
//     staged with mode | 0700 so that entries can still be added, and their
//     true metadata is logged (dir_meta.h).
// Later changes keep it that way: the stager puts a directory's mtime back
// after every change of its entries (stager.h). The commit therefore only
// applies the few logged records, not one record per directory.
//
// Cost. One getdents64 pass per directory and d_type from it: a regular file
// costs one linkat (no stat), a directory openat + fstat + mkdirat + openat +
// fchmod + futimens (+ fchown as root).
#pragma once

#include <cstdint>

#include "apply/dir_meta.h"
#include "util/status.h"

namespace cm::apply {

struct CloneStats {
  uint64_t dirs = 0, linked = 0, copied = 0, symlinks = 0, skipped = 0;
};

// Clones the contents of src_fd into the empty directory dst_fd. When log is
// set, the root's true metadata (as "") and that of every directory staged
// with a different mode are recorded in it (see above); without a log (a
// clone of a previous part's stage, whose log is copied) nothing is recorded.
// Special files (devices, fifos, sockets) are skipped with a warning. Files
// that cannot be hard-linked (EPERM under protected_hardlinks, EMLINK) are
// copied.
Status CloneTree(int src_fd, int dst_fd, DirMetaLog* log, CloneStats* stats);

// Asks the file system to place each directory created directly in dir_fd as
// the top of an independent hierarchy (ext2/3/4 FS_TOPDIR_FL, the Orlov
// allocator's spreading). cm-apply sets it on ROOT/.cm/stage: each staged
// tree then starts in a lightly used block group instead of next to the
// trees that retention (or anything else) deleted moments ago, which on
// ext4 without a journal makes every inode allocation skip the recently
// freed inodes one by one. Best effort: false where the flag is unsupported.
bool MarkTopDir(int dir_fd);

}  // namespace cm::apply
