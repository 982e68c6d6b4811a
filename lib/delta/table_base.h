// The base record cm-delta writes (delta_table.h TableBase): which tree a
// delta applies to and which tree it makes, by manifest hash (manifest.h).
//
// The base manifest is the old tree's, whole (no exclude filter). When the old
// tree is a cm-apply content root's release (ROOT/current or
// ROOT/releases/<id>), the release's recorded manifest
// (ROOT/.cm/manifests/<id>.mf, docs/LAYOUT.md) is the stat cache, so only
// files touched since it was recorded are read, and the release name and
// serial come from the root. The result manifest is the base manifest with
// the table's entries applied (ApplyEntries): the tree a server holds after
// staging the table on the base, read from nothing but the table. It equals
// the new tree's manifest whenever the diff saw every change (always with
// --checksum; by size and mtime otherwise).
#pragma once

#include <string>
#include <vector>

#include "delta/delta_table.h"
#include "delta/manifest.h"
#include "delta/tree_diff.h"
#include "util/status.h"

namespace cm::delta {

struct OldTreeBase {
  TableBase base;    // release, serial, manifest (result_manifest left zero)
  Manifest manifest;  // the old tree's manifest
};

// Builds the old tree's manifest (see above). missing_ok: a missing tree is
// the empty tree. Errors as BuildManifest (a tree holding special files has no
// manifest: kFailure).
Result<OldTreeBase> DescribeOldTree(const std::string& old_root, bool missing_ok);

// The manifest `base` becomes when the entries (in table order) are applied.
// DELTA entries carry the new content hash like WHOLE ones. Errors: kCorrupt
// when an entry does not fit the base (a META or MODIFY of a path the base
// lacks).
Result<Manifest> ApplyEntries(const Manifest& base, const std::vector<DeltaEntry>& entries);

// Copies a table (any version) to `out` as a version 3 table naming `base`:
// the same entries and instruction bytes, new hashes. Errors: the input's
// (kCorrupt) or the sink's.
Status RewriteWithBase(ByteSource* in, const TableBase& base, ByteSink* out);

// DiffTrees writing a version 3 table to `sink`: the diff goes to an unlinked
// temporary file first (TMPDIR), then is copied behind the base record, whose
// result manifest needs every entry. `base_out`, when set, receives the base.
// When the old tree has no manifest (special files in it) the base record is
// all zero ("do not check") and a warning goes to the observer.
Result<DiffSummary> DiffTreesWithBase(const std::string& old_root, const std::string& new_root,
                                      const TreeDiffOptions& opts, ByteSink* sink, DiffObserver* observer,
                                      TableBase* base_out = nullptr);

}  // namespace cm::delta
