// Fetching one assignment over HTTP into a checked holding file: the header
// and the tail (trailer + chunk table) first, then the middle from the
// verified watermark on, every chunk checked before it counts. Shared by
// relays (from a source leader or the CCM) and members (from their leader).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "push/chunked_file.h"
#include "push/held_content.h"
#include "util/status.h"

namespace cm::push {
enum class FetchFault : uint8_t;  // relay_core.h
}

namespace cm::pushrun {

struct FetchTarget {
  uint64_t serial = 0;
  std::string path;      // final file name (<spool>/<serial>.cma)
  std::string pub_key;   // "" = no signature check here (cm-apply checks later)
  bool allow_unsigned = false;  // with pub_key: an unsigned file is taken too (a signed one is still checked)
  double idle_timeout_s = 10;
  // What a source's header may declare before anything more is fetched.
  push::PlanLimits limits;
  // Free space in the spool (null: statvfs), checked before the fetch writes.
  push::FreeSpaceFn free_space;
};

// The content URL of `serial` at a node's base URL.
std::string ContentUrl(const std::string& base, uint64_t serial);

class Fetcher {
 public:
  explicit Fetcher(FetchTarget t) : t_(std::move(t)) {}
  // What is held so far (null before the chunk table is known, or when the
  // file is already complete on disk: then after Open()).
  std::shared_ptr<push::HeldContent> held() const;
  // Checked bytes of the chunked range (after the header, through the
  // trailer): what the scheduler counts; equals covered() when complete.
  uint64_t verified() const;
  uint64_t size() const;       // the whole file's size (0 until known)
  bool complete() const;
  // Uses a complete file already on disk at the target path, if there is one
  // and it checks as a fetch would (header and declared sizes, the signature
  // with pub_key, the chunk table, the serial, every chunk's hash): a file
  // that did not arrive through a checked fetch (planted, truncated, swapped)
  // is never held, served or reported complete. False (with a warning when
  // a file is there) otherwise. Reads the whole file once per Fetcher.
  bool OpenExisting();
  // One attempt from `source_base`: fetches until complete, an error, or
  // `cancel`. The header comes first and its declared sizes are checked
  // against t.limits and the spool's free space; with a key, the trailer
  // and the signature next; the chunk table only then (LoadChunkPlan).
  // Progress callbacks come from this thread: once the chunk table is
  // known, whenever the verified bytes grow, and at completion. On an error,
  // *fault (when given) says whose it is: kLocal (no space, a spool I/O
  // error, our key unreadable), kAuth (the signature or key verdict), else
  // kSource.
  Status FetchFrom(const std::string& source_base, const std::atomic<bool>* cancel,
                   const std::function<void()>& on_progress = nullptr, push::FetchFault* fault = nullptr);

 private:
  Status Begin(const std::string& url, const std::atomic<bool>* cancel, push::FetchFault* fault);
  // The complete file at t_.path (open as fd), checked; *covered as covered_.
  Result<std::shared_ptr<push::ChunkedFile>> OpenChecked(int fd, uint64_t* covered) const;
  FetchTarget t_;
  mutable std::mutex mu_;
  std::shared_ptr<push::HeldContent> held_;
  std::shared_ptr<push::ChunkedFile> file_;
  uint64_t covered_ = 0;
};

}  // namespace cm::pushrun
