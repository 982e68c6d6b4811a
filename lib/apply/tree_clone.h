// Builds a staged copy of a tree without copying file bytes: directories are
// recreated (owner-writable, see dir_meta.h), regular files are hard-linked,
// symlinks are recreated. The result shares every file inode with the source;
// staging never writes into a shared inode (see stager.h), so the source
// (the live release) is never modified.
#pragma once

#include <cstdint>

#include "apply/dir_meta.h"
#include "util/status.h"

namespace cm::apply {

struct CloneStats {
  uint64_t dirs = 0, linked = 0, copied = 0, symlinks = 0, skipped = 0;
};

// Clones the contents of src_fd into the empty directory dst_fd. When log is
// set, every source directory's true metadata (the root as "") is recorded in
// it. Special files (devices, fifos, sockets) are skipped with a warning.
// Files that cannot be hard-linked (EPERM under protected_hardlinks, EMLINK)
// are copied.
Status CloneTree(int src_fd, int dst_fd, DirMetaLog* log, CloneStats* stats);

}  // namespace cm::apply
