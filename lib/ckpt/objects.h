// The checkpoint store's content-addressed objects: each distinct file
// content once, STORE/objects/<2 hex>/<62 hex> named by its BLAKE2b-256,
// read-only (0444). An object is written under STORE/tmp/ and renamed into
// place only once its bytes are hashed and match the name, so an object
// that exists is whole (after the store's syncfs) and right. Not thread-safe;
// the store's lock serialises writers (store.h).
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "util/hash.h"
#include "util/status.h"

namespace cm::ckpt {

class Objects {
 public:
  // `objects_dir` and `tmp_dir` must exist and be on one file system.
  Objects(std::string objects_dir, std::string tmp_dir) : dir_(std::move(objects_dir)), tmp_(std::move(tmp_dir)) {}

  std::string PathOf(const Hash256& h) const;
  bool Has(const Hash256& h) const;

  // Stores the regular file at `src` (not following a symlink) as object
  // `want`: a reflink (FICLONE) where the file system can, else a copy. The
  // copy is hashed; kFailure when it is not `want` of `size` bytes (the file
  // changed since it was hashed). Not durable until the caller syncs.
  Status Put(const std::string& src, const Hash256& want, uint64_t size);

  // Copies object `h` into the open file `dst_fd` (reflink, copy_file_range
  // or read/write). kNotFound when there is no such object.
  Status CopyTo(const Hash256& h, int dst_fd) const;

  // Re-reads object `h`: its content hash (kNotFound when missing).
  Result<Hash256> Rehash(const Hash256& h) const;

  struct GcStats {
    uint64_t removed = 0, bytes_freed = 0, kept = 0;
  };
  // Removes every object not in `keep` (files whose names are not object
  // names are left alone).
  Result<GcStats> Collect(const std::set<Hash256>& keep);

  // Apparent bytes of all objects (as du -sb counts them).
  Result<uint64_t> Bytes() const;

 private:
  std::string dir_, tmp_;
  uint64_t seq_ = 0;
};

// Copies all of src_fd into dst_fd (both at offset 0): FICLONE, else
// copy_file_range, else read/write.
Status CopyData(int src_fd, int dst_fd);

}  // namespace cm::ckpt
