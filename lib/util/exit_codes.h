// The one table of process exit codes, shared by every cm-* tool and listed
// in every man page. Scripts may rely on these numbers; they never change.
#pragma once

#include "util/status.h"

namespace cm {

enum ExitCode : int {
  kExitOk = 0,            // success (also: nothing to do)
  kExitFailure = 1,       // failure not covered below
  kExitUsage = 2,         // bad arguments or configuration
  kExitNotFound = 3,      // nothing found (no such job, no leader, no staged tree)
  kExitCorrupt = 4,       // input malformed, truncated, or fails a hash check
  kExitAuth = 5,          // signature missing, invalid, or made with another key
  kExitOrder = 6,         // serial number out of order or replayed with other content
  kExitBusy = 7,          // another process holds the lock
  kExitBaseMismatch = 8,  // patch base or live tree is not the expected version
  kExitNoSpace = 9,       // not enough disk space
  kExitIo = 10,           // I/O error, e.g. read-only file system
  kExitPartial = 11,      // completed for some targets only (quorum)
  kExitUnsafePath = 12,   // path escapes the content root, or is a device/fifo
  kExitHookRefused = 13,  // a pre_commit hook failed: the switch was not made (cm-apply)
  kExitHookFailed = 14,   // a post_commit hook failed: the switch was made (cm-apply)
  kExitNoChanges = 15,    // nothing changed (cm-delta --exit-code only)
};

inline int ExitCodeFor(Code c) { return static_cast<int>(c); }
inline int ExitCodeFor(const Status& s) { return ExitCodeFor(s.code()); }

}  // namespace cm
