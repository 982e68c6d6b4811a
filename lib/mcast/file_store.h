// File-backed ObjectSource and ObjectStore for the tools. A received object
// is written under a temporary name in the directory (AtomicFile), hashed
// as it is written (blocks that land out of order are read back from the
// file), and renamed into place only when the whole-object hash matches.
#pragma once

#include <memory>
#include <string>

#include "mcast/store.h"
#include "util/file_util.h"

namespace cm::mcast {

class FileSource : public ObjectSource {
 public:
  static Result<std::unique_ptr<FileSource>> Open(const std::string& path);
  Status Read(uint64_t offset, size_t n, uint8_t* out) override;
  uint64_t size() const { return size_; }

 private:
  UniqueFd fd_;
  uint64_t size_ = 0;
};

class FileStore : public ObjectStore {
 public:
  explicit FileStore(std::string dir) : dir_(std::move(dir)) {}
  bool Has(const std::string& name, const Hash256& hash) override;
  Result<std::unique_ptr<ObjectSink>> Create(const std::string& name, const Hash256& hash, uint64_t size) override;
  std::string PathOf(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

}  // namespace cm::mcast
