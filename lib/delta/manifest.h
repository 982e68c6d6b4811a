// A tree's manifest: every file, directory and symlink under a root with what
// makes it that content (kind, permission bits, size, content hash, link
// target), and the manifest hash that names the whole tree. Two trees with the
// same manifest hash serve the same bytes; a release is identified by it
// (docs/FORMATS.md, "Manifests").
//
// What the hash covers, per entry in walk order (tree_walk.h ComparePaths):
// the path, the kind, the permission bits (files and directories; 0 for
// symlinks), the size and BLAKE2b-256 of the content (files) and the target
// (symlinks). It does not cover owners or modification times: servers may map
// owners, and times are not content. The root directory itself is not an entry.
//
// A saved manifest also keeps each file's inode, size and mtime as a stat
// cache: building a manifest with a cache reuses the content hash of a file
// whose (inode, size, mtime) are unchanged, so only new or touched files are
// read (a file hard-linked from the live tree into a staged one keeps its
// inode and mtime). An in-place edit that also restores the mtime is caught
// only by a build without the cache (cm-apply verify-live --full).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "delta/delta_table.h"
#include "delta/tree_walk.h"
#include "util/hash.h"
#include "util/status.h"

namespace cm::delta {

struct ManifestEntry {
  std::string path;  // relative, '/'-separated
  Kind kind = Kind::kFile;
  uint32_t mode = 0;  // 07777; 0 for symlinks
  uint64_t size = 0;  // files
  Hash256 hash{};     // files: content hash; zero otherwise
  std::string link_target;
  // stat cache (not hashed)
  uint64_t ino = 0;
  int64_t mtime_ns = 0;
  // Equal content (ignores the stat cache).
  bool SameContent(const ManifestEntry& o) const {
    return path == o.path && kind == o.kind && mode == o.mode && size == o.size && hash == o.hash &&
           link_target == o.link_target;
  }
};

struct Manifest {
  std::vector<ManifestEntry> entries;  // walk order
  // The entry for a path, or nullptr (binary search).
  const ManifestEntry* Find(std::string_view path) const;
  uint64_t FileBytes() const;
};

// The hash naming the tree (see above).
Hash256 ManifestHash(const Manifest& m);
// Short printable form of a manifest hash: the first 16 hex digits.
std::string ShortHash(const Hash256& h);

struct ManifestOptions {
  const Manifest* cache = nullptr;   // reuse content hashes of unchanged files
  const PathFilter* filter = nullptr;
  bool missing_ok = false;           // a missing root is the empty tree
};
// Walks `root` (a symlink to a directory is followed once) and hashes what the
// cache does not cover. Special files are errors (kFailure): a tree with a
// fifo has no manifest. `hashed_bytes`, when given, counts bytes read.
Result<Manifest> BuildManifest(const std::string& root, const ManifestOptions& opt,
                               uint64_t* hashed_bytes = nullptr);

// BLAKE2b-256 of an open file's bytes from offset 0 to its end (as
// HashFile), read through `buf`, which the caller keeps across files;
// size_hint (the size the walk saw) sizes its first use.
Result<Hash256> HashToEnd(int fd, uint64_t size_hint, std::vector<uint8_t>* buf);

// Text form, one entry a line after the line "cm-manifest 1":
//   <f|d|l> <mode octal> <size> <hash hex|-> <ino> <mtime_ns> <path> [<target>]
// path and target percent-escaped (bytes <= 0x20, '%' and 0x7f).
std::string EncodeManifest(const Manifest& m);
Result<Manifest> DecodeManifest(std::string_view text);
Status SaveManifest(const std::string& path, const Manifest& m);  // atomic
Result<Manifest> LoadManifest(const std::string& path);

// How `have` differs from `want`: paths whose content differs, paths `want`
// has and `have` lacks, and paths only `have` has. Each list in walk order.
struct ManifestDiff {
  std::vector<std::string> changed, missing, extra;
  bool empty() const { return changed.empty() && missing.empty() && extra.empty(); }
  size_t size() const { return changed.size() + missing.size() + extra.size(); }
};
ManifestDiff DiffManifests(const Manifest& want, const Manifest& have);

}  // namespace cm::delta
