// cm-delta's outputs besides the table: the --list and --json lines, the
// progress line, and the buffered sinks the table and the listing go to.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "delta/tree_diff.h"
#include "util/byte_source.h"
#include "util/status.h"

namespace cm::delta {

// A path for a one-line listing: control bytes and backslashes escaped.
std::string EscapeForListing(const std::string& s);

// Reads exclude globs from a file, one per line; blank lines and '#' comments skipped.
Status ReadGlobFile(const std::string& path, std::vector<std::string>* out);

// Buffers writes to a file descriptor (the table's records are small).
class BufferedFdSink : public ByteSink {
 public:
  explicit BufferedFdSink(int fd) : fd_(fd) {}
  Status Write(const void* buf, size_t n) override;
  Status Flush();

 private:
  static constexpr size_t kSize = 1 << 16;
  int fd_;
  std::string buf_;
};

// Counts what passes through to `next` (not owned).
class CountingSink : public ByteSink {
 public:
  explicit CountingSink(ByteSink* next) : next_(next) {}
  Status Write(const void* buf, size_t n) override {
    bytes_ += n;
    return next_->Write(buf, n);
  }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSink* next_;
  uint64_t bytes_ = 0;
};

// Turns entries into --list lines ("A path", "D", "M", "m"; directories end
// in '/') or --json lines on `out`, warnings into log lines, and progress
// into a terminal's progress line.
class ListingObserver : public DiffObserver {
 public:
  ListingObserver(bool list, bool json, ByteSink* out);
  Status OnEntry(const DeltaEntry& e, const EntryDetails& d) override;
  void OnWarning(const std::string& path, const std::string& what) override;
  void OnProgress(const DiffSummary& s) override;

 private:
  bool list_, json_;
  ByteSink* out_;
  bool progress_;
  std::chrono::steady_clock::time_point last_{};
};

// The --json summary line (without the newline).
std::string SummaryJson(const DiffSummary& s, bool checksum, const uint64_t* table_bytes_or_null);
// The one-line human summary.
std::string SummaryLine(const DiffSummary& s);

}  // namespace cm::delta
