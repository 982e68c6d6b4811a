// The bytes of one assignment file as a node holds them, for serving onward
// (GET /v1/content/<serial> with Range): all of them for a complete file (the
// CCM's original .cma: CompleteFile), or, while a transfer runs, the header,
// the tail and the verified prefix of the middle (ChunkedFile). A server
// streams a range with: WaitFor(pos) then ReadAt(pos, buf), pos += n.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/file_util.h"
#include "util/status.h"

namespace cm::push {

using Deadline = std::chrono::steady_clock::time_point;

// Thread-safe: any number of threads may call these at once (and, for a
// ChunkedFile, while its one writer thread appends).
class HeldContent {
 public:
  virtual ~HeldContent() = default;
  // Size of the whole file in bytes (held or not).
  virtual uint64_t size() const = 0;
  // True when the byte at `offset` is held: it may be read now and will not change.
  virtual bool held(uint64_t offset) const = 0;
  // Copies the held bytes from `offset` into `out`, stopping at the first byte
  // that is not held or at the end of `out`. Returns the count: 0 when the
  // byte at `offset` is not held (or offset >= size()). Errors: I/O (kIo...).
  virtual Result<size_t> ReadAt(uint64_t offset, std::span<char> out) const = 0;
  // Blocks until the byte at `offset` is held (true), or `deadline` passes
  // (false). Errors: kNotFound when offset >= size() (it never will be);
  // the content's failure status when it failed (see ChunkedFile::Fail).
  virtual Result<bool> WaitFor(uint64_t offset, Deadline deadline) const = 0;
};

// A complete file on disk, all of it held: the CCM serves the assignment it
// packed. It is not verified here (cm-pack wrote it; relays check every byte).
class CompleteFile : public HeldContent {
 public:
  // Opens `path` read-only (a regular file). Errors: from open/fstat
  // (kNotFound for a missing file), kFailure for a non-regular file.
  static Result<std::unique_ptr<CompleteFile>> Open(const std::string& path);

  uint64_t size() const override { return size_; }
  bool held(uint64_t offset) const override { return offset < size_; }
  Result<size_t> ReadAt(uint64_t offset, std::span<char> out) const override;
  Result<bool> WaitFor(uint64_t offset, Deadline deadline) const override;

 private:
  CompleteFile(UniqueFd fd, uint64_t size) : fd_(std::move(fd)), size_(size) {}
  UniqueFd fd_;
  uint64_t size_;
};

// Reads up to out.size() bytes at offset of fd, all of which the caller
// knows are there; kIo on a short read (the file shrank underneath).
Result<size_t> ReadHeldBytes(int fd, uint64_t offset, std::span<char> out);

}  // namespace cm::push
