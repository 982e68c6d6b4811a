// In-memory ObjectSource / ObjectStore for tests and the simulator.
#pragma once

#include <map>
#include <string>

#include "mcast/store.h"

namespace cm::mcast {

class MemorySource : public ObjectSource {
 public:
  explicit MemorySource(std::string bytes) : bytes_(std::move(bytes)) {}
  Status Read(uint64_t offset, size_t n, uint8_t* out) override;
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// Holds committed objects by name; Commit verifies the hash like the file store.
class MemoryStore : public ObjectStore {
 public:
  bool Has(const std::string& name, const Hash256& hash) override;
  Result<std::unique_ptr<ObjectSink>> Create(const std::string& name, const Hash256& hash, uint64_t size) override;
  // Committed objects, name -> bytes.
  std::map<std::string, std::string>& objects() { return objects_; }
  // Test hook: corrupt every byte written at this offset (0 = off).
  uint64_t corrupt_offset_plus1 = 0;

 private:
  std::map<std::string, std::string> objects_;
};

}  // namespace cm::mcast
