#include "leaderrun/reporter.h"

#include <sodium.h>

#include <chrono>

#include "http/client.h"
#include "util/cm_auth.h"
#include "util/hash.h"
#include "util/log.h"

namespace cm::leaderrun {
namespace {

constexpr int64_t kStampLifetime = 600;  // seconds, as every report's (pushrun/auth_edge.h)
constexpr std::chrono::milliseconds kCallTimeout{3000};
constexpr const char* kPath = "/v1/leader-report";

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string NewNonce() {
  uint8_t b[cm_auth::kNonceHexSize / 2];
  randombytes_buf(b, sizeof b);
  return ToHex(b, sizeof b);
}

}  // namespace

bool ParseCcmAddress(std::string_view s, proto::Address* out) {
  constexpr std::string_view kScheme = "http://";
  if (s.substr(0, kScheme.size()) == kScheme) {
    s.remove_prefix(kScheme.size());
    if (!s.empty() && s.back() == '/') s.remove_suffix(1);
  }
  return proto::ParseAddress(s, out) && out->port != 0;
}

std::string StampReport(const GroupKey& group_key, const std::string& from, const std::string& body, int64_t now_s,
                        const std::string& nonce) {
  cm_auth::Stamp s;
  s.alg = cm_auth::Alg::kMac;
  s.from = from;
  s.to = cm_auth::kCcmName;
  s.exp = now_s + kStampLifetime;
  s.nonce = nonce;
  cm_auth::Mac(&s, cm_auth::ReportKey(group_key), "POST", kPath, body);
  return cm_auth::Format(s);
}

Reporter::Reporter(proto::Address ccm, GroupKey group_key, std::string from, ReportSchedule::Timing timing)
    : ccm_(ccm), key_(group_key), from_(std::move(from)), schedule_(timing) {
  InitCrypto();
  thread_ = std::thread([this] { Loop(); });
}

Reporter::~Reporter() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Reporter::Post(std::string json) {
  {
    std::lock_guard<std::mutex> l(mu_);
    schedule_.Post(ReportSchedule::Clock::now(), std::move(json));
  }
  cv_.notify_all();
}

void Reporter::Withdraw() {
  std::lock_guard<std::mutex> l(mu_);
  schedule_.Withdraw();
}

bool Reporter::acknowledged() {
  std::lock_guard<std::mutex> l(mu_);
  return schedule_.acknowledged();
}

uint64_t Reporter::attempts() {
  std::lock_guard<std::mutex> l(mu_);
  return attempts_;
}

void Reporter::Loop() {
  using Clock = ReportSchedule::Clock;
  const std::string url = "http://" + ccm_.ToString() + kPath;
  bool last = false;    // the stop's one last attempt
  bool warned = false;  // the last line logged was a failure
  for (;;) {
    std::string body;
    {
      std::unique_lock<std::mutex> l(mu_);
      for (;;) {
        if (stop_) {
          // On stop: a report never sent since it changed gets one attempt
          // now (e.g. a leader's last state); nothing else waits.
          if (last || !schedule_.unsent()) return;
          last = true;
          auto b = schedule_.Take(Clock::time_point::max());
          if (!b) return;
          body = std::move(*b);
          break;
        }
        if (auto b = schedule_.Take(Clock::now())) {
          body = std::move(*b);
          break;
        }
        if (auto due = schedule_.due()) cv_.wait_until(l, *due);
        else cv_.wait(l);
      }
      ++attempts_;
    }
    const std::string stamp = StampReport(key_, from_, body, WallSeconds(), NewNonce());
    auto r = http::Call("POST", url, body, kCallTimeout, "application/json",
                        {{cm_auth::kHeader, stamp}, {"Connection", "close"}});
    ReportSchedule::Result res;
    if (!r.ok()) {
      res.kind = ReportSchedule::Result::Kind::kUnreachable;
      res.why = r.status().message();
    } else {
      res = ReportSchedule::Classify(r->status, r->body);
      if (!res.why.empty()) res.why = url + ": " + res.why;
    }
    std::optional<std::string> line;
    {
      std::lock_guard<std::mutex> l(mu_);
      line = schedule_.OnResult(Clock::now(), res);
    }
    if (line) {
      // Back after a warning: said at the warning's level, so whoever saw
      // the failure also sees it end.
      const bool taken = res.kind == ReportSchedule::Result::Kind::kTaken;
      if (taken && !warned) log::Info(*line + ": " + url);
      else log::Warn(taken ? "segment reports reach the CCM again: " + url : *line);
      warned = !taken;
    }
  }
}

}  // namespace cm::leaderrun
