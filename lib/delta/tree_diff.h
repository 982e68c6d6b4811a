// cm-delta's library entry point: compares an old tree (the shadow copy) with
// a new tree (staging) and writes the delta table: the merge of two sorted
// walks (tree_walk.h), with a byte-level delta (binary_delta.h) for each
// changed file that is worth one.
//
// What counts as a change:
//   - a path only in the new tree: ADD (a directory's children follow it);
//   - a path only in the old tree: REMOVE (a directory's children are not listed);
//   - a path whose kind changed: REMOVE of the old, then ADD of the new;
//   - a file whose size or mtime differ (default), or whose content hash
//     differs (checksum): MODIFY, encoded DELTA or WHOLE. If the content is in
//     fact identical, only its metadata changed: META;
//   - a file or directory with the same content but another mode, uid, gid
//     or mtime: META (carrying the new metadata; with times off, mtime
//     differences alone are ignored);
//   - a symlink with another target: MODIFY.
// An added file may be a DELTA against an old file holding its bytes under
// another name (one COPY: a rename or a copy) or against a removed file of
// the same name (TreeDiffOptions::moves); such removals are held back to the
// end.
// Mtime-only changes inside runs of equal new mtimes are TIMES entries at
// the very end (TreeDiffOptions::time_runs).
// Output is deterministic: the same trees give byte-identical tables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "delta/binary_delta.h"
#include "delta/delta_table.h"
#include "util/status.h"

namespace cm::delta {

struct TreeDiffOptions {
  bool checksum = false;            // detect changes by content hash, not size+mtime
  bool old_may_be_missing = false;  // a missing old tree is an empty one (--empty-old)
  // Carry modification times (default). Without (--no-times, like rsync
  // without -t): entries carry mtime 0 ("leave as is"), a file or directory
  // whose mtime alone changed is no change, and a file whose mtime changed is
  // still compared byte by byte (its mtime says nothing then).
  bool times = true;
  // Send an added file as a reference to an old file that holds its bytes
  // under another name (a rename, or a copy of a file the table has not
  // changed before it; files of at least 256 bytes), else as a delta against
  // a removed file of the same name (a move) when that is at most half its
  // size; removals of possible bases then come at the end of the table.
  // Needs table version 2.
  bool moves = true;
  // A run of at least 4 files and directories whose mtime alone changed,
  // consecutive in walk order among the new tree's files and directories
  // and sharing one new mtime (a release tarball's), is one TIMES entry
  // (first path, last path, count, mtime) at the end of the table instead of
  // a META entry each. Only with times, without excludes (the server's tree
  // holds the excluded paths, which a run would count) and for a table.
  bool time_runs = true;
  // A changed file of at most 8 MiB (base at most 8 MiB) may be one zstd
  // frame with its old version as prefix (delta instruction ZSTD) when that
  // beats COPY/INSERT. Off for servers whose cm-apply predates it.
  bool zstd_deltas = true;
  // Listing only (no table): no byte-level deltas and no content hashes are
  // computed (entries keep encoding WHOLE and a zero hash); which entries
  // come out is unchanged (same-size files are still compared byte by byte).
  bool listing_only = false;
  std::vector<std::string> excludes;  // PathFilter globs (tree_walk.h)
  DeltaOptions delta;
};

// Facts about one entry that the table does not hold, for listings.
struct EntryDetails {
  uint64_t delta_bytes = 0;  // instruction stream size of a DELTA entry
  uint64_t copied = 0;       // bytes of the new file reproduced by COPY
  uint64_t inserted = 0;     // literal bytes
};

struct DiffSummary {
  uint64_t entries = 0;
  uint64_t added = 0, removed = 0, modified = 0, meta = 0;
  uint64_t delta_files = 0, whole_files = 0;  // MODIFY files by encoding
  uint64_t moved_files = 0;                   // ADD files sent as deltas against another old file
  uint64_t time_runs = 0;                     // TIMES entries
  uint64_t time_run_entries = 0;              // files and directories they cover
  uint64_t delta_bytes = 0;                   // all instruction streams
  uint64_t scanned = 0;                       // entries walked in the new tree
  uint64_t bytes_read = 0;                    // file content bytes read (both trees)
};

// Receives entries and diagnostics as the diff runs. All calls come from the
// thread that called DiffTrees.
class DiffObserver {
 public:
  virtual ~DiffObserver() = default;
  // After the entry is written to the table. A non-ok status stops the diff.
  virtual Status OnEntry(const DeltaEntry& e, const EntryDetails& d) {
    (void)e, (void)d;
    return Status::Ok();
  }
  // A skipped special file or a vanished entry; path is "<root>/<rel>".
  virtual void OnWarning(const std::string& path, const std::string& what) { (void)path, (void)what; }
  // Called often (per entry); cheap implementations only.
  virtual void OnProgress(const DiffSummary& so_far) { (void)so_far; }
};

// Diffs old_root against new_root. table may be null (nothing written);
// otherwise DiffTrees calls Begin (flags: kTableFlagChecksum with checksum),
// AddEntry/AddDeltaBytes and End on it. observer may be null.
// Errors: kNotFound (a missing root), kUsage (a root is not a directory),
// kIo (unreadable file or directory), kNoSpace, or whatever the table's sink
// or the observer returns. On error the table is incomplete.
Result<DiffSummary> DiffTrees(const std::string& old_root, const std::string& new_root,
                              const TreeDiffOptions& opts, DeltaTableWriter* table,
                              DiffObserver* observer);

}  // namespace cm::delta
