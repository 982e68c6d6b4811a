// The delta table of a synchronize: what turns a tree whose manifest is
// `have` into the tree whose manifest is `want`, by content, whole files
// only (no byte-level deltas: the server's copy is not trusted as a base).
// Pack it with `cm-pack TABLE --source <a tree with manifest want> --type
// synchronize` (e.g. the checkpoint store's Materialize(want)).
//
//   - a path only in want: ADD (a directory before its children);
//   - a path only in have: REMOVE (a directory's children not listed);
//   - a file whose content differs, or a symlink whose target differs:
//     MODIFY (whole file / new target);
//   - the same content with other permission bits: META;
//   - a path whose kind differs: REMOVE right before ADD (and, for a new
//     directory, ADD of everything under it);
//   - a path in `unknown` (the server's copy is not known, e.g. verify-live
//     reported it): REMOVE then ADD when want has it (a directory: with its
//     whole subtree), REMOVE when want lacks it. REMOVE is a no-op on a
//     server without the path, so either state of the server ends as want.
// Entries carry want's mode and mtime (owners 0: cm-pack --owners is not for
// these tables) and come in walk order (delta_table.h). The table's flags:
// kTableFlagChecksum. Pure: writes to the sink only.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "delta/manifest.h"
#include "util/byte_source.h"
#include "util/status.h"

namespace cm::ckpt {

struct SyncStats {
  uint64_t entries = 0;
  uint64_t files = 0;  // whole files the table asks for
  uint64_t bytes = 0;  // their bytes
};

Result<SyncStats> WriteSyncTable(const delta::Manifest& want, const delta::Manifest& have,
                                 const std::set<std::string>& unknown_paths, ByteSink* sink);

}  // namespace cm::ckpt
