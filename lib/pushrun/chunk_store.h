// A node's copy of one item of a cm-push job (issue 17), kept as the signed
// chunk records of lib/push/job_chunk.h (docs/FORMATS.md section 7), so the
// node can let readers `tail -f` the item while it grows, serve the exact
// records onward, and resume after a restart. Files, in `dir`:
//
//   <job>.<item>.part  the item's bytes: grows only by verified payloads, in
//                      order (tail -f this one while the item grows)
//   <job>.<item>.rec   the sidecar: record i's 256-byte signed header at
//                      offset 256 * i, nothing else
//   <job>.<item>       the finished item: .part renamed (atomically, by
//                      rename(2)) only once the END record is stored and
//                      both files are synced. The file stays the same, so a
//                      reader's tail -f keeps following it. An item whose
//                      final name does not exist is unfinished.
//
// Write order of Append: payload to .part, then the header to .rec (with
// ChunkSync::kEveryRecord, each followed by fdatasync). So a header in the
// sidecar always follows its payload, and a killed process leaves at most
// payload bytes without a header, or a partial header.
//
// Open re-verifies the whole sidecar against the data file (signature, chain,
// place and payload hash of every record; a full read of the item) and
// truncates both files to the last record that checks: nothing half-written,
// lost in a power cut or damaged is ever counted or served. A well-formed
// record of another key, job or item is not damage: Open refuses (kAuth /
// kCorrupt) and truncates nothing.
//
// Memory: Open and Append hold at most one record (<= 1 MiB + 256 bytes),
// Read what its caller's max_bytes allows (or one record); never a whole
// item. Crash tests may stop a process between a payload and its header
// with CM_CRASH_AT at the crash point "chunk_store.payload_written". Thread-safe: one appender at a time (Append calls are serialised),
// and any number of readers (Read, WaitForRecords) at once; a record is
// visible to readers once its header is stored.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "pack/keys.h"
#include "push/job_chunk.h"
#include "util/file_util.h"
#include "util/status.h"

namespace cm::pushrun {

enum class ChunkSync {
  // fdatasync after each payload and each header: a power cut loses at most
  // the record being written.
  kEveryRecord,
  // Synced only at the END record (before the final name appears): a power
  // cut may lose the records since the last sync; Open's re-check drops them.
  kAtEnd,
};

struct ChunkStoreOptions {
  ChunkSync sync = ChunkSync::kEveryRecord;
};

// What Open dropped as damage (for a log line).
struct ChunkRecovery {
  uint64_t dropped_records = 0;     // whole or partial sidecar entries
  uint64_t dropped_data_bytes = 0;  // data bytes past the last good record
};

// Whole records (header and payload, as the base signed them), concatenated.
struct ChunkRecords {
  std::string bytes;
  uint64_t first = 0;  // index of the first record in bytes
  uint64_t count = 0;  // records in bytes
  bool ended = false;  // the END record is stored: no record past it will come
};

class ChunkStore {
 public:
  // Opens or creates the item's files in `dir` (created if missing; its
  // parent must exist) and re-verifies what they hold. Errors: kUsage (job
  // id), kAuth / kCorrupt (the files hold another key's, job's or item's
  // records), kIo.
  static Result<std::unique_ptr<ChunkStore>> Open(const std::string& dir, const std::string& job, uint32_t item,
                                                  const pack::PublicKey& key, const ChunkStoreOptions& opts = {});
  ~ChunkStore() = default;
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  // The verifier's CheckHeader at the store's place: call it on a header
  // read from a source before reading its payload.
  Status CheckHeader(const push::ChunkHeader& h) const;
  // Verifies the record (push::ChunkVerifier's errors: kCorrupt, kAuth,
  // kOrder) and stores it; nothing unverified is ever written. After the
  // END record the item is completed (synced, renamed to its final name). kIo /
  // kNoSpace on a write failure: the record is not stored, and the same
  // record may be appended again.
  Status Append(const push::ChunkHeader& h, std::string_view payload);
  Status Append(std::string_view record);

  // Stored records from index `from`, whole, until adding the next would
  // pass max_bytes (at least one when any is there). Empty (count 0) when
  // record `from` is not stored yet: poll again or WaitForRecords. kNotFound
  // when the item ended before `from`. kIo on a read error, kCorrupt if the
  // files were altered under the store.
  Result<ChunkRecords> Read(uint64_t from, size_t max_bytes) const;
  // Blocks until more than `index` records are stored, the item ended, or
  // `timeout` passed; returns record_count() then.
  uint64_t WaitForRecords(uint64_t index, std::chrono::milliseconds timeout) const;

  push::ChunkCursor cursor() const;  // where the next record must start
  uint64_t record_count() const;
  bool complete() const;  // the END record is stored and the final name exists
  const ChunkRecovery& recovery() const { return recovery_; }

  std::string part_path() const;     // the growing data file
  std::string records_path() const;  // the sidecar
  std::string final_path() const;    // exists only when complete()

 private:
  ChunkStore(const std::string& dir, const std::string& job, uint32_t item, const pack::PublicKey& key,
             const ChunkStoreOptions& opts);
  Status OpenFiles();
  Status Recover();
  Status Finish();
  Status Unfinish();
  Status SyncBoth();

  const std::string dir_, job_, base_;
  const uint32_t item_;
  const ChunkStoreOptions opts_;
  const std::array<uint8_t, 8> key_id_;
  UniqueFd data_, rec_;
  ChunkRecovery recovery_;

  mutable std::mutex append_mu_;      // one Append at a time
  push::ChunkVerifier verifier_;      // guarded by append_mu_
  mutable std::mutex mu_;             // guards the three below
  mutable std::condition_variable cv_;
  push::ChunkCursor cursor_;
  uint64_t count_ = 0;
  bool complete_ = false;
};

}  // namespace cm::pushrun
