// Every release's manifest (delta/manifest.h), kept at
// ROOT/.cm/manifests/<release>.mf (docs/LAYOUT.md): the hash that names the
// tree a release holds, and the stat cache that lets cm-apply tell quickly
// whether the live tree is still that tree.
//
// A release's manifest is computed when its stage completes (the last part
// staged: the stat cache is the live release's manifest, whose files the
// stage hard-links, so only files the assignment wrote are read) and kept as
// long as the release. A root from an older cm-apply gets the manifest of a
// release computed from its tree on first need (every file read once).
//
// Before a delta assignment is staged, the live tree's manifest (stat cache:
// the recorded one; a file edited in place has another mtime or size and is
// read again) must equal the manifest the assignment names as its base
// (CheckBase); a staged tree's manifest must equal the assignment's result
// manifest when there is one.
#pragma once

#include <string>
#include <vector>

#include "apply/layout.h"
#include "apply/stager.h"
#include "apply/state.h"
#include "delta/delta_table.h"
#include "delta/manifest.h"
#include "util/status.h"

namespace cm::apply {

std::string ManifestPath(const Layout& l, const std::string& release);

// The recorded manifest of `release` ("" = the empty tree: no release). When
// none is recorded: computed from releases/<release> and saved if
// compute_if_missing (the caller holds the root's lock), else kNotFound.
Result<delta::Manifest> RecordedManifest(const Layout& l, const std::string& release, bool compute_if_missing);
// Hex of its hash; "" when it cannot be had.
std::string RecordedManifestHex(const Layout& l, const std::string& release, bool compute_if_missing);

// The live tree now against its release's recorded manifest.
struct LiveTree {
  std::string release;     // "" = no live release
  delta::Manifest recorded, now;
  Hash256 recorded_hash{}, now_hash{};
  delta::ManifestDiff diff;  // want = recorded, have = now
  bool ok() const { return recorded_hash == now_hash; }
};
// full: read every file (no stat cache).
Result<LiveTree> ExamineLive(const Layout& l, const std::string& release, bool full);

// kBaseMismatch (the one line of man cm-apply(1), BASE) unless the live tree
// `release` is the tree `base` names. A zero base manifest is no check.
Status CheckBase(const Layout& l, const std::string& release, const delta::TableBase& base);

// The staged tree's manifest (tree at `stage_dir`, directory modes from its
// dirmeta log as they will be at the commit); cache: the stat cache.
Result<delta::Manifest> StagedManifest(const Layout& l, const std::string& stage_name, const delta::Manifest* cache);

// A file TOUCH copied (Stager::touch_copies) holds the bytes of the inode it
// was copied from: when that inode is the one `cache` (the live release's
// manifest) records for the path (same inode, size and mtime: the stat cache
// the base check trusted), the copy's inode and mtime take over the recorded
// hash in `cache`, so StagedManifest does not read the copy again. Copies of
// anything else are left to be hashed.
void CarryTouchCopies(const std::vector<Stager::TouchCopy>& copies, delta::Manifest* cache);

// Removes the manifests of releases that are gone, except `keep_also` (the
// staged release's). Best effort.
void PruneManifests(const Layout& l, const std::string& keep_also);

// The release a complete stage becomes at its commit ("" when none).
std::string StagedRelease(const State& s);

}  // namespace cm::apply
