#include "apply/root_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

namespace cm::apply {

Result<std::unique_ptr<RootLock>> RootLock::Acquire(const std::string& lock_path) {
  // O_RDONLY: flock needs no write access, and an existing lock file can then
  // be opened on a read-only file system (the error comes later, naming the
  // write that failed).
  UniqueFd fd(::open(lock_path.c_str(), O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError(lock_path, errno);
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return Error(Code::kBusy, lock_path + ": another cm-apply holds the lock");
    return ErrnoError(lock_path, errno);
  }
  return std::unique_ptr<RootLock>(new RootLock(std::move(fd)));
}

}  // namespace cm::apply
