#include "util/status.h"

#include <cerrno>
#include <cstring>

namespace cm {

const char* CodeName(Code c) {
  switch (c) {
    case Code::kOk: return "ok";
    case Code::kFailure: return "failure";
    case Code::kUsage: return "usage";
    case Code::kNotFound: return "not-found";
    case Code::kCorrupt: return "corrupt";
    case Code::kAuth: return "auth";
    case Code::kOrder: return "order";
    case Code::kBusy: return "busy";
    case Code::kBaseMismatch: return "base-mismatch";
    case Code::kNoSpace: return "no-space";
    case Code::kIo: return "io";
    case Code::kPartial: return "partial";
    case Code::kUnsafePath: return "unsafe-path";
    case Code::kHookRefused: return "hook-refused";
    case Code::kHookFailed: return "hook-failed";
    case Code::kNoChanges: return "no-changes";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return message_;
}

Status ErrnoError(const std::string& what, int err) {
  Code c = Code::kIo;
  if (err == ENOSPC || err == EDQUOT) c = Code::kNoSpace;
  // A path through a regular file names no directory: missing, as ENOENT.
  if (err == ENOENT || err == ENOTDIR) c = Code::kNotFound;
  return Status(c, what + ": " + std::strerror(err));
}

}  // namespace cm
