// File-backed ObjectSource and ObjectStore for the tools. A received object
// is written under a temporary name in the directory, hashed as it is
// written (blocks that land out of order are read back from the file), and
// renamed into place only when the whole-object hash matches.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "mcast/store.h"
#include "util/file_util.h"

namespace cm::mcast {

// A file to send. Either complete (Open) or still being written by someone
// else (OpenGrowing: a relay multicasting a file while it still arrives from
// upstream). The sender never waits for the hash to start: StartHashing()
// computes it in a thread (following a growing file as it grows) and Hash()
// returns it when done; a writer that knows the hash can SetHash() instead.
//
// Thread safety: Read/Available/Hash on the sender's thread; Grow/SetHash
// from any thread; the hashing thread is internal and joined by the
// destructor.
//
// A relay multicasting a file while it still receives it:
//   auto src = FileSource::OpenGrowing(spool_path, final_size);  // the file exists (maybe empty)
//   (*src)->StartHashing();             // or, when the writer knows it: (*src)->SetHash(h)
//   SenderConfig c;                     // c.hash left empty: it comes from the source
//   c.name = "a.cma"; c.size = final_size; ...
//   Sender sender(c, src->get());       // run it under net::Driver as cm-mcast send does
//   // writer thread, after each write: (*src)->Grow(bytes_in_file) (optional: the size
//   // of the file is looked at anyway when the sender waits for bytes)
class FileSource : public ObjectSource {
 public:
  // A complete regular file; size() is its size now.
  static Result<std::unique_ptr<FileSource>> Open(const std::string& path);
  // A file that will hold final_size bytes once its writer is done. Bytes
  // become available as the file's size grows (looked at when the sender
  // asks past the last watermark) or as the writer calls Grow(). A file
  // larger than final_size is an error (Read fails).
  static Result<std::unique_ptr<FileSource>> OpenGrowing(const std::string& path, uint64_t final_size);
  ~FileSource() override;

  // Starts the background hash of the whole file (once). Hash() gives it
  // when the thread has read final size bytes.
  void StartHashing();
  // Writer side: n bytes from offset 0 are in the file (a watermark; lower
  // values are ignored), and the final hash when the writer knows it.
  void Grow(uint64_t n);
  void SetHash(const Hash256& h);

  Status Read(uint64_t offset, size_t n, uint8_t* out) override;
  uint64_t Available() override;
  std::optional<Hash256> Hash() override;
  uint64_t size() const { return size_; }
  // Set when the hashing thread failed (the file shrank, grew too long, or
  // could not be read); the hash then never comes.
  std::string hash_error() const;
  Status Fault() override;

 private:
  uint64_t Probe();  // fstat: the file's size now, capped at size_
  void HashLoop();

  UniqueFd fd_;
  uint64_t size_ = 0;
  bool growing_ = false;
  std::atomic<uint64_t> available_{0};
  std::atomic<bool> hash_known_{false}, stop_{false};
  mutable std::mutex mu_;
  Hash256 hash_{};
  std::string hash_error_;
  std::thread hasher_;
};

class FileStore : public ObjectStore {
 public:
  explicit FileStore(std::string dir) : dir_(std::move(dir)) {}
  // Hashes DIR/name, remembering the result by inode, size and times, so a
  // want list can be compared with the directory often and cheaply.
  bool Has(const std::string& name, const Hash256& hash) override;
  Result<std::unique_ptr<ObjectSink>> Create(const std::string& name, uint32_t object_id, uint64_t size) override;
  std::string PathOf(const std::string& name) const { return dir_ + "/" + name; }
  // The replay record (store.h), kept in DIR/.cm-mcast-sessions: a line
  // "STARTED_MS HEX(SENDER) HEX(NAME)" per (sender, name), at most
  // kMaxSessions (the oldest dropped), rewritten under a fresh temporary
  // name and renamed; a symlink there is never followed (read as empty).
  uint64_t LastSession(const std::string& name, const std::string& sender) override;
  Status RecordSession(const std::string& name, const std::string& sender, uint64_t started_ms) override;
  static constexpr size_t kMaxSessions = 4096;
  static constexpr const char* kSessionsFile = ".cm-mcast-sessions";

 private:
  void LoadSessions();
  struct Known {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    Hash256 hash{};
  };
  std::string dir_;
  std::map<std::string, Known> known_;
  bool sessions_loaded_ = false;
  std::map<std::pair<std::string, std::string>, uint64_t> sessions_;  // (name, sender) -> started_ms
};

}  // namespace cm::mcast
