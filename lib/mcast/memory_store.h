// In-memory ObjectSource / ObjectStore for tests and the simulator.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "mcast/store.h"

namespace cm::mcast {

// All bytes are in memory; by default every byte is available and the hash
// known. A test simulates a growing source (a relay's copy still arriving)
// with set_available() and set_hash().
class MemorySource : public ObjectSource {
 public:
  explicit MemorySource(std::string bytes);
  Status Read(uint64_t offset, size_t n, uint8_t* out) override;
  uint64_t Available() override { return available_; }
  std::optional<Hash256> Hash() override { return hash_; }
  const std::string& bytes() const { return bytes_; }

  void set_available(uint64_t n) { available_ = n; }
  void set_hash(std::optional<Hash256> h) { hash_ = h; }
  Hash256 full_hash() const { return full_hash_; }

 private:
  std::string bytes_;
  uint64_t available_;
  Hash256 full_hash_;
  std::optional<Hash256> hash_;
};

// Holds committed objects by name; Commit verifies the hash like the file store.
class MemoryStore : public ObjectStore {
 public:
  bool Has(const std::string& name, const Hash256& hash) override;
  Result<std::unique_ptr<ObjectSink>> Create(const std::string& name, uint32_t object_id, uint64_t size) override;
  uint64_t LastSession(const std::string& name, const std::string& sender) override {
    auto it = sessions_.find({name, sender});
    return it == sessions_.end() ? 0 : it->second;
  }
  Status RecordSession(const std::string& name, const std::string& sender, uint64_t started_ms) override {
    sessions_[{name, sender}] = started_ms;
    return Status::Ok();
  }
  // Committed objects, name -> bytes.
  std::map<std::string, std::string>& objects() { return objects_; }
  // Test hook: corrupt every byte written at this offset (0 = off).
  uint64_t corrupt_offset_plus1 = 0;
  // Sinks created (sessions that had to receive data), in all and by name.
  int creates = 0;
  std::map<std::string, int> created;

 private:
  std::map<std::string, std::string> objects_;
  std::map<std::pair<std::string, std::string>, uint64_t> sessions_;  // (name, sender) -> started_ms
};

}  // namespace cm::mcast
