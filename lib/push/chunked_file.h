// The receiving side's holding file for one assignment (format v2): written
// under "<final>.part", the header and tail (trailer and chunk table) at their
// offsets at once, the middle in order, each chunk checked against the chunk
// table before it counts as held; when the last chunk checks, fsync, rename
// to the final name, fsync the directory. A restarted receiver reopens the
// .part, re-checks the chunks it holds and resumes after the last good one.
//
// Held bytes (HeldContent): header and tail always, and the middle up to the
// watermark, [covered_begin, watermark). Bytes past the watermark are never
// served, so a relay forwards only what it has checked.
//
// Threads: one writer thread calls Append and Fail; any number of reader
// threads call the const methods (ReadAt, WaitFor, held, verified, ...) at
// the same time. The object must outlive its readers (hold it in a
// shared_ptr when threads serve from it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "push/chunk_plan.h"
#include "push/held_content.h"
#include "util/file_util.h"
#include "util/hash.h"
#include "util/status.h"

namespace cm::push {

// Bytes the running user may still write under `dir`; injectable so tests
// can pretend a disk is full.
using FreeSpaceFn = std::function<Result<uint64_t>(const std::string& dir)>;
// statvfs(dir): f_bavail * f_frsize. Errors: kIo (from statvfs).
Result<uint64_t> FreeSpace(const std::string& dir);
// Whether the directory of final_path has room for a holding file of
// file_size bytes, counting what its ".part" already occupies. kNoSpace
// "<dir>: no space: need N, have M" (bytes) otherwise. free_space: null for
// FreeSpace.
Status CheckSpaceFor(const std::string& final_path, uint64_t file_size, const FreeSpaceFn& free_space);

class ChunkedFile : public HeldContent {
 public:
  // header and tail: the bytes `plan` was parsed from (ParseChunkPlan);
  // kFailure if they are not. Then:
  //  - final_path exists: it must be this assignment complete (size, header,
  //    tail, every chunk), and the result is complete at once; otherwise
  //    kFailure and the file is left alone;
  //  - "<final>.part" exists with this header: its chunks are re-checked in
  //    order and the watermark continues after the last good one; with
  //    another header it is started afresh;
  //  - a plan with no chunks (an empty middle) completes at once.
  // Before the .part is created or grown, CheckSpaceFor (with free_space).
  // The final file is never trusted for being there: it counts only when
  // every chunk checks against `plan` (so a planted, truncated or swapped
  // file is refused, and a plan parsed with a key makes it a signed one).
  // Errors: kFailure as above, kNoSpace, I/O errors.
  static Result<std::unique_ptr<ChunkedFile>> Open(const std::string& final_path, ChunkPlan plan,
                                                   std::string_view header, std::string_view tail,
                                                   const FreeSpaceFn& free_space = nullptr);
  ~ChunkedFile() override;

  // ---- writer thread ----
  // Offers `bytes` found at file offset `offset`. Bytes before the watermark
  // and from covered_end on (the tail, held already) are ignored. The rest
  // continues the bytes received so far; an append at the watermark while a
  // chunk is half received restarts that chunk (a new source resumes at the
  // watermark). Each completed chunk is hashed: a match moves the watermark
  // past it (waking waiting readers); a mismatch discards the chunk, drops the
  // rest of `bytes` and returns kCorrupt (fetch again from watermark()). When
  // the last chunk checks, the file is synced and renamed into place.
  // Errors: kFailure for a gap (offset past the bytes received so far) or
  // after Fail(); kCorrupt as above; I/O errors (the half chunk is dropped).
  Status Append(uint64_t offset, std::string_view bytes);
  // Gives up: waiting readers wake with `why`, later Appends return it. Held
  // bytes stay readable. No effect once complete.
  void Fail(Status why);

  // ---- any thread ----
  // Bytes of the middle checked so far: [covered_begin, covered_begin + verified()).
  uint64_t verified() const { return watermark() - plan_.covered_begin(); }
  // File offset where the middle continues (covered_end when all is checked):
  // a transfer resumes with "Range: bytes=<watermark>-".
  uint64_t watermark() const { return watermark_.load(std::memory_order_acquire); }
  // Every chunk checked and the file renamed to its final name.
  bool complete() const;
  // Ok, or the status given to Fail (or of a failed rename at completion).
  Status failure() const;
  // Chunks that did not match their hash since Open.
  uint64_t bad_chunks() const { return bad_chunks_.load(std::memory_order_relaxed); }
  const ChunkPlan& plan() const { return plan_; }
  const std::string& final_path() const { return final_path_; }
  std::string part_path() const { return final_path_ + ".part"; }

  // HeldContent
  uint64_t size() const override { return plan_.file_size(); }
  bool held(uint64_t offset) const override;
  Result<size_t> ReadAt(uint64_t offset, std::span<char> out) const override;
  Result<bool> WaitFor(uint64_t offset, Deadline deadline) const override;

 private:
  ChunkedFile(std::string final_path, ChunkPlan plan);
  // End of the run of held bytes that starts at offset (offset itself if not held).
  uint64_t HeldEnd(uint64_t offset, uint64_t watermark) const;
  Status OpenPart(std::string_view header, std::string_view tail, const FreeSpaceFn& free_space);
  Status Finalize();
  void SetWatermark(uint64_t w);
  void ResetPending();

  const std::string final_path_;
  const ChunkPlan plan_;
  UniqueFd fd_;
  std::atomic<uint64_t> watermark_;
  std::atomic<uint64_t> bad_chunks_{0};
  // Writer thread only: bytes received past the watermark (< one chunk).
  uint64_t received_ = 0;
  Hasher pending_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool complete_ = false;  // guarded by mu_
  Status failure_;         // guarded by mu_
};

}  // namespace cm::push
