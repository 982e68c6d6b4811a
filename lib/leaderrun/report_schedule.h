// When cm-leader (re)sends its segment report to the CCM: a pure schedule,
// with the time passed in, that the Reporter's thread follows.
//
// Only the newest report is kept (each carries the whole segment state).
// Until the CCM acknowledges (2xx) it is re-sent with back-off, kFirstRetry
// doubling to kMaxRetry; a refusal by authentication (401/403) is retried
// only every kMaxRetry. After an acknowledgement the report is sent again
// at once when it changes, and refreshed every kRefresh, so a CCM started
// later (or restarted) learns the leader within kRefresh. Withdraw() drops
// the report (this node no longer leads: its report would be stale).
//
// Log lines: OnResult returns one line when the delivery's condition
// changes (taken / CCM unreachable / refused with a new reason), never one
// per retry. Not thread-safe: the Reporter holds it under its mutex.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace cm::leaderrun {

class ReportSchedule {
 public:
  using Clock = std::chrono::steady_clock;
  using Duration = std::chrono::milliseconds;

  struct Timing {
    Duration first_retry{1'000};
    Duration max_retry{30'000};
    Duration refresh{60'000};
  };

  // What became of one attempt.
  struct Result {
    enum class Kind { kTaken, kUnreachable, kRefused, kRejected };
    Kind kind = Kind::kTaken;
    std::string why;  // one line: the connection error, or the CCM's status and reason
  };
  // 2xx: kTaken; 401/403: kRefused (authentication: retried slowly); any
  // other status: kRejected (retried with back-off). `why` names the status
  // and the CCM's reason (its JSON "error", else the start of the body).
  static Result Classify(int http_status, const std::string& body);

  ReportSchedule() : ReportSchedule(Timing{}) {}
  explicit ReportSchedule(Timing t) : t_(t) {}

  // A new report replaces any pending one. It is due at once, unless the
  // last attempt failed: then at the retry already planned (the CCM is down
  // or refuses us; sending sooner would only fail sooner).
  void Post(Clock::time_point now, std::string body);
  // Forget the report: nothing more is sent until the next Post.
  void Withdraw();

  // The report to send now, or nothing (then wait until due(), or a Post).
  // Marks it in flight: call OnResult with the outcome before anything else.
  std::optional<std::string> Take(Clock::time_point now);
  // When the next send is due; nullopt: nothing to send until a Post.
  std::optional<Clock::time_point> due() const { return body_ && !in_flight_ ? std::optional(due_) : std::nullopt; }

  // The outcome of the report Take gave. Returns a log line when the
  // condition changed (first success, first failure, a new refusal reason);
  // a warning unless r.kind is kTaken.
  std::optional<std::string> OnResult(Clock::time_point now, const Result& r);

  // A report posted and not handed out by Take since.
  bool unsent() const { return body_ && changed_ && !in_flight_; }
  // For tests and diagnostics.
  bool acknowledged() const { return acked_; }
  Duration backoff() const { return backoff_; }

 private:
  Timing t_;
  std::optional<std::string> body_;
  bool changed_ = false;    // a Post since the last Take
  bool in_flight_ = false;
  bool acked_ = false;      // the last attempt was taken
  Clock::time_point due_{};
  Duration backoff_{0};     // 0 until a failure
  // The condition last logged: "" none yet, "ok", "unreachable", else the refusal.
  std::string logged_;
};

}  // namespace cm::leaderrun
