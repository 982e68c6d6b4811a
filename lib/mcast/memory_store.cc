#include "mcast/memory_store.h"

#include <cstring>

namespace cm::mcast {

MemorySource::MemorySource(std::string bytes)
    : bytes_(std::move(bytes)), available_(bytes_.size()), full_hash_(HashBytes(bytes_.data(), bytes_.size())),
      hash_(full_hash_) {}

Status MemorySource::Read(uint64_t offset, size_t n, uint8_t* out) {
  if (offset > bytes_.size() || n > bytes_.size() - offset) return Error(Code::kIo, "read past end");
  if (offset + n > available_) return Error(Code::kIo, "read past the available bytes");
  std::memcpy(out, bytes_.data() + offset, n);
  return Status::Ok();
}

namespace {

class MemorySink : public ObjectSink {
 public:
  MemorySink(MemoryStore* store, std::string name, uint64_t size, uint64_t corrupt)
      : store_(store), name_(std::move(name)), buf_(size, '\0'), corrupt_(corrupt) {}
  Status Write(uint64_t offset, const uint8_t* data, size_t n) override {
    if (offset > buf_.size() || n > buf_.size() - offset) return Error(Code::kIo, "write past end");
    std::memcpy(buf_.data() + offset, data, n);
    if (corrupt_ && corrupt_ - 1 >= offset && corrupt_ - 1 < offset + n) buf_[corrupt_ - 1] ^= 0x5a;
    return Status::Ok();
  }
  Status Commit(const Hash256& expected) override {
    if (HashBytes(buf_.data(), buf_.size()) != expected) return Error(Code::kCorrupt, "hash mismatch");
    store_->objects()[name_] = std::move(buf_);
    return Status::Ok();
  }

 private:
  MemoryStore* store_;
  std::string name_;
  std::string buf_;
  uint64_t corrupt_;
};

}  // namespace

bool MemoryStore::Has(const std::string& name, const Hash256& hash) {
  auto it = objects_.find(name);
  return it != objects_.end() && HashBytes(it->second.data(), it->second.size()) == hash;
}

Result<std::unique_ptr<ObjectSink>> MemoryStore::Create(const std::string& name, uint32_t, uint64_t size) {
  if (size > (1ull << 32)) return Error(Code::kNoSpace, "too big for memory");
  ++creates;
  ++created[name];
  return std::unique_ptr<ObjectSink>(new MemorySink(this, name, size, corrupt_offset_plus1));
}

}  // namespace cm::mcast
