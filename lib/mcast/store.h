// What the cores read from and write to, as interfaces (ninja's
// DiskInterface): the tools pass file-backed ones (file_store.h), the tests
// in-memory ones (memory_store.h). Cores stay free of file I/O of their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/hash.h"
#include "util/status.h"

namespace cm::mcast {

// The object a sender multicasts. It may still be arriving (a relay sends a
// file to its LAN while the file still comes in from upstream): the sender
// knows the final size up front, sends bytes as Available() reaches them, and
// announces the whole-object hash once Hash() gives it. Receivers never
// report complete before they have that hash and it matches.
//
// Called only from the sender's thread; an implementation fed by another
// thread (file_store.h's FileSource) synchronises inside.
class ObjectSource {
 public:
  virtual ~ObjectSource() = default;
  // Fills exactly n bytes at offset (offset + n <= Available() and <= size).
  virtual Status Read(uint64_t offset, size_t n, uint8_t* out) = 0;
  // Bytes readable now, from offset 0: a watermark that only rises. A
  // complete source (the default) returns at least its size. Called for
  // every block the sender is about to send: keep it cheap.
  virtual uint64_t Available() { return UINT64_MAX; }
  // The whole-object hash once known; nullopt while it is being computed or
  // the object is still arriving. Once given it never changes. (A sender
  // whose SenderConfig carries the hash does not ask.)
  virtual std::optional<Hash256> Hash() { return std::nullopt; }
  // Not OK once the object can never be complete (a growing file that
  // shrank or outgrew its size, a failed read while hashing): the sender
  // then fails the session instead of waiting for a hash that will not come.
  virtual Status Fault() { return Status::Ok(); }
};

// An object being received. Commit() checks the whole-object hash and only
// then makes it visible under its final name; kCorrupt on a mismatch.
class ObjectSink {
 public:
  virtual ~ObjectSink() = default;
  virtual Status Write(uint64_t offset, const uint8_t* data, size_t n) = 0;
  virtual Status Commit(const Hash256& expected) = 0;
  // The object turned out to be held already (or is not wanted): drop what
  // was written, partial files included.
  virtual void Discard() {}
  // Byte ranges (offset, length) already written by an earlier, interrupted
  // session for the same object (same name, object id and size): the receiver
  // skips those blocks. Whole-object hash at Commit still decides.
  virtual std::vector<std::pair<uint64_t, uint64_t>> Resumed() const { return {}; }
};

// Where a receiver keeps objects.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // True when an object with this name and hash is already held. Asked
  // again periodically by a receiver with a want list: keep it cheap (the
  // file store caches hashes by inode, size and times).
  virtual bool Has(const std::string& name, const Hash256& hash) = 0;
  // A sink for `size` bytes to be stored as `name`. object_id is the
  // session id (wire.h SessionId: name, size and first bytes), which keys a
  // partial object an interrupted session left behind, so the next session
  // for the same object resumes it; the whole-object hash at Commit decides.
  virtual Result<std::unique_ptr<ObjectSink>> Create(const std::string& name, uint32_t object_id, uint64_t size) = 0;

  // Replay defence for keyed sessions (docs/protocol/mcast.md, "Replay"):
  // the start (the sender's wall clock, Unix ms) of the newest session from
  // `sender` that stored `name` here, 0 when none is recorded. A receiver
  // refuses a session of the same sender and name that started earlier, so
  // a replayed old session never replaces a newer object. The file store
  // keeps the record in its directory, so it survives a restart.
  virtual uint64_t LastSession(const std::string& name, const std::string& sender) {
    (void)name, (void)sender;
    return 0;
  }
  virtual Status RecordSession(const std::string& name, const std::string& sender, uint64_t started_ms) {
    (void)name, (void)sender, (void)started_ms;
    return Status::Ok();
  }
};

// Frame/block geometry shared by sender and receiver.
struct Geometry {
  uint64_t size = 0;
  uint32_t frame_size = 1;
  uint32_t k = 1;
  uint64_t frames() const { return (size + frame_size - 1) / frame_size; }
  uint32_t blocks() const { return static_cast<uint32_t>((frames() + k - 1) / k); }
  // Data frames in block b (the last block may be short).
  uint32_t BlockK(uint32_t b) const {
    uint64_t first = static_cast<uint64_t>(b) * k;
    uint64_t left = frames() - first;
    return static_cast<uint32_t>(left < k ? left : k);
  }
  uint64_t FrameOffset(uint32_t b, uint32_t esi) const { return (static_cast<uint64_t>(b) * k + esi) * frame_size; }
};

}  // namespace cm::mcast
