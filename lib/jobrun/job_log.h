// A job's log on one node (docs/protocol/jobs.md, "The job log"): an
// append-only file whose bytes are served while it grows. Readers wait for
// growth with a deadline (long polling), so a node serves onward what it
// has the moment it has it. The total is set once the end is known.
//
// Draft edge: the bytes are taken as they come; the signed record layer
// (push/job_chunk.h, pushrun/chunk_store.h) is to check them before they
// count (docs/protocol/jobs.md, "Planned"). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "util/status.h"

namespace cm::jobrun {

class JobLog {
 public:
  // Opens (creating) `path`; an existing file's bytes count as held.
  static Result<std::unique_ptr<JobLog>> Open(const std::string& path);
  ~JobLog();

  // Appends at the end; the end must not be known yet.
  Status Append(std::string_view bytes);
  // The log is whole at its current size.
  void Finish();
  uint64_t size() const;
  std::optional<uint64_t> total() const;  // set by Finish
  bool complete() const;

  // Up to `max` bytes from `from`, waiting up to `wait` for at least one
  // when there are none yet (empty: none arrived, or `from` is the end of a
  // complete log). kUsage when `from` is past what is held.
  Result<std::string> Read(uint64_t from, size_t max, std::chrono::milliseconds wait) const;
  // Wakes every waiting reader (shutting down).
  void Wake();

 private:
  JobLog(int fd, uint64_t size) : fd_(fd), size_(size) {}
  int fd_;
  mutable std::mutex mu_;
  mutable std::condition_variable grew_;
  uint64_t size_;
  std::optional<uint64_t> total_;
  bool woken_ = false;
};

}  // namespace cm::jobrun
