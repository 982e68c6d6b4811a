#include "jobrun/job_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace cm::jobrun {

Result<std::unique_ptr<JobLog>> JobLog::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoError(path, e);
  }
  return std::unique_ptr<JobLog>(new JobLog(fd, static_cast<uint64_t>(st.st_size)));
}

JobLog::~JobLog() {
  Wake();
  ::close(fd_);
}

Status JobLog::Append(std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (total_) return Error(Code::kUsage, "the job log is complete");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(size_ + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("job log", errno);
    }
    done += static_cast<size_t>(n);
  }
  size_ += bytes.size();
  grew_.notify_all();
  return Status::Ok();
}

void JobLog::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!total_) total_ = size_;
  grew_.notify_all();
}

uint64_t JobLog::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

std::optional<uint64_t> JobLog::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

bool JobLog::complete() const { return total().has_value(); }

void JobLog::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  woken_ = true;
  grew_.notify_all();
}

Result<std::string> JobLog::Read(uint64_t from, size_t max, std::chrono::milliseconds wait) const {
  uint64_t have = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (from > size_) return Error(Code::kUsage, "position " + std::to_string(from) + " is past the log's end");
    grew_.wait_for(lock, wait, [&] { return size_ > from || total_.has_value() || woken_; });
    have = size_;
  }
  uint64_t n = std::min<uint64_t>(have - from, max);
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd_, out.data() + done, n - done, static_cast<off_t>(from + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("job log", errno);
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  out.resize(done);
  return out;
}

}  // namespace cm::jobrun
