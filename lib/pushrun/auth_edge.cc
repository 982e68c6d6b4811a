#include "pushrun/auth_edge.h"

#include <sodium.h>

#include <chrono>
#include <map>
#include <mutex>

#include "util/hash.h"
#include "util/log.h"

namespace cm::pushrun {

namespace auth = push::auth;

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string NewNonce() {
  InitCrypto();
  uint8_t b[auth::kNonceHexSize / 2];
  randombytes_buf(b, sizeof b);
  return ToHex(b, sizeof b);
}

std::string NewCcmId() { return "ccm-" + NewNonce().substr(0, 16); }

AuthEdge::AuthEdge(std::string self, std::optional<pack::SigningKey> sign, std::optional<pack::PublicKey> ccm_pub,
                   std::optional<GroupKey> group_key)
    : self_(std::move(self)), sign_(std::move(sign)), ccm_pub_(std::move(ccm_pub)) {
  if (group_key) report_key_ = auth::ReportKey(*group_key);
}

// The CCM's CM-Auth value for `to` over (method, path, body), valid for
// `lifetime_s` seconds; "" without a signing key.
std::string AuthEdge::SignFor(const std::string& to, std::string_view method, std::string_view path,
                              std::string_view body, int64_t lifetime_s) const {
  if (!sign_) return {};
  auth::Stamp s;
  s.alg = auth::Alg::kEd25519;
  s.from = auth::kCcmName;
  s.to = to;
  s.exp = WallSeconds() + lifetime_s;
  s.nonce = NewNonce();
  auth::Sign(&s, sign_->secret, method, path, body);
  return auth::Format(s);
}

push::Sealed AuthEdge::Seal(const std::string& to, push::Endpoint ep, std::string body, int64_t lifetime_s) const {
  push::Sealed out;
  out.auth = SignFor(to, push::EndpointMethod(ep), push::EndpointPath(ep), body, lifetime_s);
  out.body = std::move(body);
  return out;
}

std::string AuthEdge::SealAnswer(const std::string& to, const std::string& req_path, const std::string& body) const {
  return SignFor(to, "ANSWER", req_path, body, kReportLifetime);
}

http::HeaderList AuthEdge::Stamp(const push::Call& call) const {
  if (!call.auth.empty()) return {{auth::kHeader, call.auth}};
  if (call.to.empty() || std::string(push::EndpointMethod(call.endpoint)) != "POST" || !report_key_) return {};
  auth::Stamp s;
  s.alg = auth::Alg::kMac;
  s.from = self_;
  s.to = call.to;
  s.exp = WallSeconds() + kReportLifetime;
  s.nonce = NewNonce();
  auth::Mac(&s, *report_key_, "POST", push::EndpointPath(call.endpoint), call.body);
  return {{auth::kHeader, auth::Format(s)}};
}

std::string AuthEdge::StampAnswer(const std::string& to, const std::string& req_path, const std::string& body) const {
  if (!report_key_) return {};
  auth::Stamp s;
  s.alg = auth::Alg::kMac;
  s.from = self_;
  s.to = to;
  s.exp = WallSeconds() + kReportLifetime;
  s.nonce = NewNonce();
  auth::Mac(&s, *report_key_, "ANSWER", req_path, body);
  return auth::Format(s);
}

auth::Verdict AuthEdge::CheckStampedAnswer(const http::HeaderMap& headers, const std::string& from,
                                           const std::string& req_path, const std::string& body) const {
  auto it = headers.find(auth::kHeaderLower);
  auth::Expectation want;
  want.alg = auth::Alg::kMac;
  want.to = auth::kCcmName;
  want.from = from;
  want.report_key = report_key_ ? &*report_key_ : nullptr;
  return auth::Verify(it == headers.end() ? nullptr : &it->second, "ANSWER", req_path, body, want, WallSeconds(),
                      nullptr);
}

std::string AuthEdge::CheckAnswer(const push::Call& call, const http::HeaderMap& headers,
                                  const std::string& body) const {
  if (call.endpoint != push::Endpoint::kNext && call.endpoint != push::Endpoint::kSourceFailed) return {};
  auto it = headers.find(auth::kHeaderLower);
  auth::Expectation want;
  want.alg = auth::Alg::kEd25519;
  want.to = self_;
  want.from = auth::kCcmName;
  want.pub = ccm_pub_ ? &ccm_pub_->bytes : nullptr;
  auto v = auth::Verify(it == headers.end() ? nullptr : &it->second, "ANSWER", push::EndpointPath(call.endpoint), body,
                        want, WallSeconds(), nullptr);
  if (v == auth::Verdict::kOk) return {};
  return std::string("the CCM's answer to ") + push::EndpointPath(call.endpoint) + ": " + auth::VerdictText(v);
}

auth::Verdict AuthEdge::CheckOrder(const http::Request& req) {
  auth::Expectation want;
  want.alg = auth::Alg::kEd25519;
  want.to = self_;
  want.from = auth::kCcmName;
  want.pub = ccm_pub_ ? &ccm_pub_->bytes : nullptr;
  std::lock_guard<std::mutex> l(mu_);
  return auth::Verify(req.header(auth::kHeaderLower), req.method, req.path(), req.body, want, WallSeconds(), &cache_);
}

auth::Verdict AuthEdge::CheckReport(const http::Request& req, std::string* from, const std::string& to) {
  auth::Expectation want;
  want.alg = auth::Alg::kMac;
  want.to = to.empty() ? self_ : to;
  want.report_key = report_key_ ? &*report_key_ : nullptr;
  auth::Stamp s;
  std::lock_guard<std::mutex> l(mu_);
  auto v = auth::Verify(req.header(auth::kHeaderLower), req.method, req.path(), req.body, want, WallSeconds(), &cache_,
                        &s);
  if (v == auth::Verdict::kOk && from) *from = s.from;
  return v;
}

namespace {

// One log line per (peer, path, reason) per kRefusalLogEvery; the lines
// held back are counted into the next one. A retrying or hostile peer
// cannot flood the log. Bounded: at most kMaxRefusalKeys keys (the oldest
// dropped).
constexpr auto kRefusalLogEvery = std::chrono::seconds(30);
constexpr size_t kMaxRefusalKeys = 256;

bool ShouldLogRefusal(const std::string& key, uint64_t* held) {
  static std::mutex mu;
  static std::map<std::string, std::pair<std::chrono::steady_clock::time_point, uint64_t>> last;
  std::lock_guard<std::mutex> l(mu);
  const auto now = std::chrono::steady_clock::now();
  auto it = last.find(key);
  if (it != last.end() && now - it->second.first < kRefusalLogEvery) {
    ++it->second.second;
    return false;
  }
  if (it == last.end()) {
    if (last.size() >= kMaxRefusalKeys) {
      auto oldest = last.begin();
      for (auto i = last.begin(); i != last.end(); ++i)
        if (i->second.first < oldest->second.first) oldest = i;
      last.erase(oldest);
    }
    it = last.emplace(key, std::make_pair(now, uint64_t{0})).first;
  }
  *held = it->second.second;
  it->second = {now, 0};
  return true;
}

}  // namespace

http::Response AuthEdge::Refuse(auth::Verdict v, const http::Request& req) {
  std::string text = auth::VerdictText(v);
  uint64_t held = 0;
  if (ShouldLogRefusal(req.peer_ip + " " + req.path() + " " + text, &held))
    log::Warn("refused " + req.method + " " + req.path() + " from " + req.peer_ip + ": " + text +
              (held ? " (and " + std::to_string(held) + " more like it in the last 30 s)" : ""));
  http::Response r;
  r.status = auth::VerdictStatus(v);
  r.body = v == auth::Verdict::kReplayed ? push::EncodeDuplicate(text) : push::EncodeError(text);
  return r;
}

}  // namespace cm::pushrun
