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

Reporter::Reporter(proto::Address ccm, GroupKey group_key, std::string from)
    : ccm_(ccm), key_(group_key), from_(std::move(from)) {
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
    if (queue_.size() >= kMaxQueued) queue_.pop_front();
    queue_.push_back(std::move(json));
  }
  cv_.notify_all();
}

void Reporter::Loop() {
  const std::string url = "http://" + ccm_.ToString() + kPath;
  const auto give_up = std::chrono::seconds(3);
  std::chrono::steady_clock::time_point stop_at{};
  for (;;) {
    std::string body;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
      if (stop_ && stop_at == std::chrono::steady_clock::time_point{}) stop_at = std::chrono::steady_clock::now() + give_up;
      if (queue_.empty() || (stop_ && std::chrono::steady_clock::now() >= stop_at)) return;
      body = std::move(queue_.front());
      queue_.pop_front();
    }
    const std::string stamp = StampReport(key_, from_, body, WallSeconds(), NewNonce());
    auto r = http::Call("POST", url, body, kCallTimeout, "application/json",
                        {{cm_auth::kHeader, stamp}, {"Connection", "close"}});
    std::string why;
    if (!r.ok()) {
      why = r.status().message();
    } else if (r->status / 100 != 2) {
      why = url + ": " + std::to_string(r->status) + " " + r->body.substr(0, 200);
    }
    if (!why.empty() && !failing_) log::Warn("segment report not taken by the CCM: " + why);
    if (why.empty() && failing_) log::Info("segment reports reach the CCM again (" + url + ")");
    failing_ = !why.empty();
  }
}

}  // namespace cm::leaderrun
