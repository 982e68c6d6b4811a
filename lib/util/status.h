// Errors as values. A Status is either ok or carries a code and a one-line
// message; Result<T> is a value or a Status. Library code never throws for
// expected failures (bad input, I/O errors); exceptions are for bugs.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace cm {

// Codes map one-to-one onto process exit codes (see exit_codes.h).
enum class Code {
  kOk = 0,
  kFailure,        // anything else
  kUsage,          // bad command line or configuration
  kNotFound,       // the thing asked for does not exist
  kCorrupt,        // malformed, truncated, or a hash mismatch
  kAuth,           // bad, missing or unexpected signature; wrong key
  kOrder,          // serial out of order, or a replay of different content
  kBusy,           // locked by another process
  kBaseMismatch,   // a patch base or live tree differs from what was expected
  kNoSpace,        // not enough free space
  kIo,             // an I/O error (including a read-only file system)
  kPartial,        // done for some targets only
  kUnsafePath,     // a path escapes the root, or names a device/fifo
  kHookRefused,    // a pre_commit hook failed: the switch was not made
  kHookFailed,     // a post_commit hook failed: the switch was made
  kNoChanges,      // nothing changed (cm-delta --exit-code)
};

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: header hash mismatch"
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status Error(Code c, std::string m) { return Status(c, std::move(m)); }
// errno-based I/O error: "<what>: <strerror(err)>"; ENOSPC maps to kNoSpace.
Status ErrnoError(const std::string& what, int err);

const char* CodeName(Code c);

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status s) : v_(std::move(s)) {}     // NOLINT
  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cm

#define CM_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::cm::Status cm_st_ = (expr);         \
    if (!cm_st_.ok()) return cm_st_;      \
  } while (0)

#define CM_CONCAT_INNER(a, b) a##b
#define CM_CONCAT(a, b) CM_CONCAT_INNER(a, b)
#define CM_ASSIGN_OR_RETURN(lhs, expr) CM_ASSIGN_OR_RETURN_I(CM_CONCAT(cm_res_, __LINE__), lhs, expr)
#define CM_ASSIGN_OR_RETURN_I(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
