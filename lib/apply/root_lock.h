// The exclusive lock of a content root: flock(LOCK_EX|LOCK_NB) on
// ROOT/.cm/lock, held for the life of the object. The kernel releases it when
// the process dies, so a crash never leaves a stale lock.
#pragma once

#include <memory>
#include <string>

#include "util/file_util.h"
#include "util/status.h"

namespace cm::apply {

class RootLock {
 public:
  // kBusy "another cm-apply holds the lock" when held by another process.
  static Result<std::unique_ptr<RootLock>> Acquire(const std::string& lock_path);

 private:
  explicit RootLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace cm::apply
