// A job's log as signed chunk records (push/job_chunk.h; docs/protocol/jobs.md,
// "The job log"): the records of every item of the job, in the order the base
// appended them. Item 0 is the job's own: its record 0 carries the job object
// (push::Encode(JobObject)) and its END record ends the log. Nothing counts
// before it is verified: bytes from a source are split into records, each
// checked against the base's public key and its item's chain, then appended
// whole; a log reopened after a crash is re-checked and cut after its last
// good record. Thread-safe: fetches racing after a switch are serialised,
// and one that is no longer at the log's end is told it is stale.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "jobrun/job_log.h"
#include "pack/keys.h"
#include "push/job_chunk.h"
#include "util/status.h"

namespace cm::jobrun {

class RecordLog {
 public:
  // Errors: kUsage (job id), the file's. `items_dir` ("" = none): every
  // item (>= 1) but a command is also written out there as it is verified, as
  // <item>-<name> (its record 0 names it: {"kind": K, "name": N});
  // a file grows as <item>-<name>.part and takes its name at its END record
  // (synced first), a stream grows under its own name (tail -f it). Reopening
  // writes the items again from the checked log.
  static Result<std::unique_ptr<RecordLog>> Open(const std::string& path, const std::string& job,
                                                 const pack::PublicKey& key, const std::string& items_dir = "");
  ~RecordLog();

  // Records from a source meant for position `at`. kBusy when `at` is not the
  // log's end (another fetch moved it on: stale, nobody's fault); otherwise
  // the first failing record's error (kCorrupt, kAuth, kOrder: the source's
  // fault), the records before it kept; a trailing partial record is kCorrupt.
  Status Accept(uint64_t at, std::string_view records);

  // Whole records from `from` (a record boundary), about `max` bytes and at
  // least one when any is there, waiting up to `wait` for one.
  Result<std::string> Read(uint64_t from, size_t max, std::chrono::milliseconds wait) const;

  // Raw bytes from `from` (any offset), at most `max`, waiting up to `wait`
  // for one: what a streamed answer sends (the reader splits records).
  Result<std::string> ReadRaw(uint64_t from, size_t max, std::chrono::milliseconds wait) const {
    return log_->Read(from, max, wait);
  }
  uint64_t size() const;
  bool complete() const;            // item 0's END record is in

  // The items (>= 1) whose first record is in, in log order: what their
  // record 0 says ({"kind", "name", "arg"}), where they are written out
  // ("" for a command, or with no items directory) and whether their END
  // record is in.
  struct ItemInfo {
    uint32_t id = 0;
    std::string kind, name, arg, path;
    bool ended = false;
  };
  std::vector<ItemInfo> Items() const;
  std::string object_json() const;  // item 0 record 0's payload ("" until it is in)
  void Wake() { log_->Wake(); }

 private:
  RecordLog(std::unique_ptr<JobLog> log, std::string job, pack::PublicKey key) :
      log_(std::move(log)), job_(std::move(job)), key_(key) {}
  Status CheckAndNote(std::string_view record, push::ChunkVerifier** v);
  Status Materialize(std::string_view record);

  struct ItemFile {
    int fd = -1;
    std::string part, final_path;
    uint64_t meta_len = 0;  // record 0's payload: not part of the file
  };
  std::string items_dir_;
  std::map<uint32_t, ItemFile> items_;
  std::vector<ItemInfo> info_;  // under mu_

  std::unique_ptr<JobLog> log_;
  std::string job_;
  pack::PublicKey key_;
  mutable std::mutex mu_;  // verifiers, object
  std::map<uint32_t, push::ChunkVerifier> verifiers_;
  std::string object_;
};

// The base's side: signs the records it appends (one signer per item).
class RecordWriter {
 public:
  RecordWriter(pack::SigningKey key, std::string job) : key_(std::move(key)), job_(std::move(job)) {}
  // Item 0's first record: the job object. Then for items >= 1 their
  // first record (what it is: kind "file", "assignment", "stream" or
  // "command", a name, and a command's argument), data in pieces of at
  // most `piece` bytes, their ends, and the job's end.
  Result<std::string> Object(const std::string& object_json);
  Result<std::string> Begin(uint32_t item, const std::string& kind, const std::string& name,
                            const std::string& arg = "");
  Result<std::string> Data(uint32_t item, std::string_view bytes, size_t piece = 256 << 10);
  Result<std::string> EndItem(uint32_t item);
  Result<std::string> EndJob();

 private:
  Result<push::ChunkSigner*> Signer(uint32_t item);
  pack::SigningKey key_;
  std::string job_;
  std::map<uint32_t, push::ChunkSigner> signers_;
};

}  // namespace cm::jobrun
