// The CCM's checkpoint store (source 000's checkpoints): whole releases kept
// under STATE/checkpoints so that any of them can be rebuilt, pushed as a
// delta from a server's actual release, or synchronised to a damaged tree.
// Content-addressed: a file content is stored once across all releases, so N
// releases of a site that changes a little take about one site's bytes.
//
//   STORE/lock                      flock(2): writers exclusive, readers of objects shared
//   STORE/objects/<2 hex>/<62 hex>  one file content, named by its BLAKE2b-256 (0444)
//   STORE/releases/<release>.mf     the release's manifest (delta/manifest.h text)
//   STORE/releases/<release>.info   its record (release_info.h), written last
//   STORE/tmp/                      objects being written (emptied by the next writer)
//
// Crash safety: objects are written under tmp/ and renamed when whole, then
// synced (syncfs) before the manifest and the .info are written atomically;
// a release exists only once its .info does. A killed Add leaves only
// unreferenced objects (removed by the next Prune), tmp files and perhaps a
// .mf without .info (both removed by the next Open or writer).
//
// Concurrency: one Store object per thread. Any number of processes may use
// one store: Add and Prune take STORE/lock exclusively (waiting for it),
// Materialize and Verify take it shared; List, Info and LoadManifest read
// atomically written files and take no lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/objects.h"
#include "ckpt/release_info.h"
#include "delta/manifest.h"
#include "util/file_util.h"
#include "util/status.h"

namespace cm::ckpt {

struct AddOptions {
  // A manifest known to describe the tree (e.g. cm-apply's recorded manifest
  // of a shadow release): its stat cache is used before the store's own.
  const delta::Manifest* cache = nullptr;
  // Without `cache`, the stat cache is the newest stored release taken from
  // the same directory (real path and device). With this, the newest release
  // taken from the same file system also serves: right for trees whose
  // unchanged files are hard links of the previous tree's (cm-apply releases).
  bool cache_same_device = false;
};

struct AddResult {
  ReleaseInfo info;
  bool existed = false;       // already stored with this very content: nothing written
  uint64_t hashed_bytes = 0;  // bytes read to hash (files the stat cache did not cover)
  uint64_t new_objects = 0;   // contents stored for the first time
  uint64_t new_bytes = 0;
};

struct VerifyResult {
  uint64_t objects = 0;          // distinct contents re-hashed
  std::vector<std::string> bad;  // "PATH: object missing" / "PATH: object damaged"
  bool ok() const { return bad.empty(); }
};

struct PruneResult {
  std::vector<std::string> removed;  // releases removed, newest first
  Objects::GcStats gc;
};

class Store {
 public:
  // Opens (creating as needed) the store at `dir`. When no writer holds the
  // lock, removes what a killed writer left (tmp files, half releases).
  static Result<std::unique_ptr<Store>> Open(const std::string& dir);

  // Stores the tree at `tree_dir` (a symlink to a directory is resolved once)
  // as `release` (IsValidReleaseName). Adding a stored release again with the
  // same content is a no-op (existed); with other content it is kOrder.
  // kFailure when the tree has special files or changes while it is stored.
  Result<AddResult> Add(const std::string& release, uint64_t serial, const std::string& tree_dir,
                        const AddOptions& opts = {});

  // Every release, newest first (NewerThan).
  Result<std::vector<ReleaseInfo>> List() const;
  // kNotFound when there is no such release.
  Result<ReleaseInfo> Info(const std::string& release) const;
  Result<delta::Manifest> LoadManifest(const std::string& release) const;
  // The newest release whose manifest hash is `h`.
  std::optional<std::string> FindByManifest(const Hash256& h) const;

  // Builds the release's tree at `dir` (which must not exist, or be an empty
  // directory; its parent must exist): files (copies, reflinks where the file
  // system can), directories, symlinks, permission bits and mtimes (owners
  // are not kept). Built beside `dir` and renamed onto it when complete.
  Status Materialize(const std::string& release, const std::string& dir) const;

  // Re-hashes every object the release refers to. With `checked`, objects
  // it holds are not read again, and those read are added (good: true):
  // verifying many releases reads each shared content once.
  Result<VerifyResult> Verify(const std::string& release, std::map<Hash256, bool>* checked = nullptr) const;

  // Keeps the newest `keep` releases (by serial) and those named in `pinned`,
  // removes the others, then every object no remaining manifest refers to.
  Result<PruneResult> Prune(size_t keep, const std::vector<std::string>& pinned = {});

  // Apparent bytes of the store's files (objects, manifests, records): du -sb.
  Result<uint64_t> DiskBytes() const;

  const std::string& dir() const { return dir_; }

 private:
  explicit Store(std::string dir);
  std::string MfPath(const std::string& r) const { return dir_ + "/releases/" + r + ".mf"; }
  std::string InfoPath(const std::string& r) const { return dir_ + "/releases/" + r + ".info"; }
  // flock(STORE/lock, op); kBusy only with LOCK_NB.
  Result<UniqueFd> Lock(int op) const;
  // Under the exclusive lock: tmp files, .mf without .info, .info without .mf.
  Status Cleanup();
  const delta::Manifest* PickCache(const std::vector<ReleaseInfo>& all, const std::string& real, uint64_t dev,
                                   bool same_device, delta::Manifest* holder) const;

  std::string dir_;
  Objects objects_;
};

}  // namespace cm::ckpt
