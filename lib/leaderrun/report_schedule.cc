#include "leaderrun/report_schedule.h"

#include <algorithm>
#include <cstdio>

#include "util/json_value.h"

namespace cm::leaderrun {
namespace {

// The CCM's reason: its JSON {"error": ...}, else the start of the body, on one line.
std::string Reason(const std::string& body) {
  std::string why;
  if (auto j = ParseJson(body); j.ok() && j->is_object()) why = j->Str("error");
  if (why.empty()) why = body.substr(0, 200);
  for (char& c : why)
    if (c == '\n' || c == '\r') c = ' ';
  while (!why.empty() && why.back() == ' ') why.pop_back();
  return why;
}

// "30 s", "0.2 s".
std::string Secs(ReportSchedule::Duration d) {
  char b[32];
  std::snprintf(b, sizeof b, "%g s", static_cast<double>(d.count()) / 1000);
  return b;
}

}  // namespace

ReportSchedule::Result ReportSchedule::Classify(int http_status, const std::string& body) {
  Result r;
  if (http_status / 100 == 2) return r;
  r.kind = http_status == 401 || http_status == 403 ? Result::Kind::kRefused : Result::Kind::kRejected;
  const std::string why = Reason(body);
  r.why = std::to_string(http_status) + (why.empty() ? "" : " " + why);
  return r;
}

void ReportSchedule::Post(Clock::time_point now, std::string body) {
  body_ = std::move(body);
  changed_ = true;
  if (backoff_.count() == 0) due_ = now;
}

void ReportSchedule::Withdraw() {
  body_.reset();
  changed_ = false;
}

std::optional<std::string> ReportSchedule::Take(Clock::time_point now) {
  if (!body_ || in_flight_ || now < due_) return std::nullopt;
  in_flight_ = true;
  changed_ = false;
  return *body_;
}

std::optional<std::string> ReportSchedule::OnResult(Clock::time_point now, const Result& r) {
  in_flight_ = false;
  std::string condition, line;
  const std::string max_s = Secs(t_.max_retry);
  switch (r.kind) {
    case Result::Kind::kTaken:
      acked_ = true;
      backoff_ = Duration{0};
      // A report posted while this one was on its way goes at once.
      due_ = changed_ ? now : now + t_.refresh;
      condition = "ok";
      line = "segment reports reach the CCM (refreshed every " + Secs(t_.refresh) + ")";
      break;
    case Result::Kind::kUnreachable:
    case Result::Kind::kRejected:
      acked_ = false;
      backoff_ = backoff_.count() == 0 ? t_.first_retry : std::min(backoff_ * 2, t_.max_retry);
      due_ = now + backoff_;
      condition = r.kind == Result::Kind::kUnreachable ? "unreachable" : r.why;
      line = "segment report not taken by the CCM: " + r.why + " (retrying, back-off up to " + max_s + ")";
      break;
    case Result::Kind::kRefused:
      acked_ = false;
      backoff_ = t_.max_retry;
      due_ = now + backoff_;
      condition = r.why;
      line = "segment report refused by the CCM: " + r.why + " (retrying every " + max_s +
             " s; check the group key and the node's name on the CCM)";
      break;
  }
  if (condition == logged_) return std::nullopt;
  logged_ = condition;
  return line;
}

}  // namespace cm::leaderrun
