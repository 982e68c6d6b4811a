// Small POSIX file helpers: an owning fd, full reads/writes that retry on
// EINTR and short counts, and AtomicFile, which writes under a temporary name
// and renames into place so a killed process never leaves a half-written file.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace cm {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Reads up to n bytes; returns the count (less than n only at end of file).
Result<size_t> ReadFull(int fd, void* buf, size_t n);
Result<size_t> PreadFull(int fd, void* buf, size_t n, uint64_t offset);
Status WriteFull(int fd, const void* buf, size_t n);
Status PwriteFull(int fd, const void* buf, size_t n, uint64_t offset);

// Nanoseconds since the epoch as a timespec (tv_nsec always in [0, 1e9)).
timespec NsToTimespec(int64_t ns);

Result<std::string> ReadFileToString(const std::string& path);
// Writes via AtomicFile (temporary name, fsync, rename, fsync of the directory).
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0644);
Status FsyncDir(const std::string& dir);
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);

// A file written under "<dir>/.<name>.tmp-<pid>-<n>" and renamed to its final
// name by Commit(). Destroying it uncommitted removes the temporary file; so
// does SIGINT/SIGTERM (see InstallTempCleanup). Not thread-safe.
class AtomicFile {
 public:
  AtomicFile() = default;
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  Status Open(const std::string& final_path, mode_t mode = 0644);
  int fd() const { return fd_.get(); }
  const std::string& temp_path() const { return temp_; }
  // fsync, rename over the final path, fsync the directory.
  Status Commit();
  void Abandon();

 private:
  UniqueFd fd_;
  std::string final_, temp_;
  bool registered_ = false;
};

// Installs SIGINT/SIGTERM/SIGHUP handlers that unlink every open AtomicFile's
// temporary file, then re-raise the signal. Call once from main().
void InstallTempCleanup();

// True when fd refers to a terminal.
bool IsTerminal(int fd);

}  // namespace cm
