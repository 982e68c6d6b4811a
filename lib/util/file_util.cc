#include "util/file_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace cm {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<size_t> ReadFull(int fd, void* buf, size_t n) {
  size_t got = 0;
  auto* p = static_cast<char*>(buf);
  while (got < n) {
    ssize_t r = ::read(fd, p + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", errno);
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

Result<size_t> PreadFull(int fd, void* buf, size_t n, uint64_t offset) {
  size_t got = 0;
  auto* p = static_cast<char*>(buf);
  while (got < n) {
    ssize_t r = ::pread(fd, p + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", errno);
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

Status WriteFull(int fd, const void* buf, size_t n) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = ::write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", errno);
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::Ok();
}

Status PwriteFull(int fd, const void* buf, size_t n, uint64_t offset) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", errno);
    }
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

Result<std::string> ReadFileToString(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError(path, errno);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd.get(), buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(path, errno);
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string BaseName(const std::string& path) {
  auto pos = path.find_last_of('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoError(dir, errno);
  if (::fsync(fd.get()) != 0 && errno != EINVAL) return ErrnoError(dir, errno);
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  AtomicFile f;
  CM_RETURN_IF_ERROR(f.Open(path, mode));
  Status st = WriteFull(f.fd(), data.data(), data.size());
  if (!st.ok()) return Status(st.code(), path + ": " + st.message());
  return f.Commit();
}

// ---- temporary-file registry for signal cleanup --------------------------
// A fixed array of C strings so the signal handler needs no allocation.
namespace {
constexpr int kMaxTemps = 64;
constexpr int kMaxPath = 4096;
char g_temps[kMaxTemps][kMaxPath];
volatile sig_atomic_t g_temp_used[kMaxTemps];

int RegisterTemp(const std::string& p) {
  if (p.size() >= kMaxPath) return -1;
  for (int i = 0; i < kMaxTemps; ++i) {
    if (!g_temp_used[i]) {
      std::memcpy(g_temps[i], p.c_str(), p.size() + 1);
      g_temp_used[i] = 1;
      return i;
    }
  }
  return -1;
}
void UnregisterTemp(const std::string& p) {
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i] && p == g_temps[i]) g_temp_used[i] = 0;
}
void CleanupHandler(int sig) {
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i]) ::unlink(g_temps[i]);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}
int g_temp_counter = 0;
}  // namespace

void InstallTempCleanup() {
  struct sigaction sa {};
  sa.sa_handler = CleanupHandler;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::sigaction(s, &sa, nullptr);
}

bool IsTerminal(int fd) { return ::isatty(fd) == 1; }

AtomicFile::~AtomicFile() { Abandon(); }

Status AtomicFile::Open(const std::string& final_path, mode_t mode) {
  Abandon();
  final_ = final_path;
  // O_EXCL|O_NOFOLLOW: never a file or symlink someone else put there; a
  // name taken already (planted) is skipped for another.
  for (int tries = 0; tries < 16; ++tries) {
    temp_ = DirName(final_path) + "/." + BaseName(final_path) + ".tmp-" + std::to_string(::getpid()) + "-" +
            std::to_string(g_temp_counter++) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000007);
    fd_.reset(::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (fd_ || errno != EEXIST) break;
  }
  if (!fd_) return ErrnoError(final_path, errno);
  registered_ = RegisterTemp(temp_) >= 0;
  return Status::Ok();
}

Status AtomicFile::Commit() {
  if (!fd_) return Error(Code::kFailure, "AtomicFile::Commit without Open");
  if (::fsync(fd_.get()) != 0) return ErrnoError(final_, errno);
  fd_.reset();
  if (::rename(temp_.c_str(), final_.c_str()) != 0) {
    int e = errno;
    ::unlink(temp_.c_str());
    return ErrnoError(final_, e);
  }
  if (registered_) UnregisterTemp(temp_);
  registered_ = false;
  temp_.clear();
  return FsyncDir(DirName(final_));
}

void AtomicFile::Abandon() {
  if (!temp_.empty()) {
    fd_.reset();
    ::unlink(temp_.c_str());
    if (registered_) UnregisterTemp(temp_);
    registered_ = false;
    temp_.clear();
  }
}

timespec NsToTimespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
}

}  // namespace cm
