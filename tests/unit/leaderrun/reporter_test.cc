// Reporter on real sockets against a small HTTP stand-in for the CCM: a
// report posted while the CCM is down arrives once it comes up (stamped so
// that the CCM's check passes); a CCM that refuses (401) is retried at the
// slow rate, not in a tight loop; after the ack the report is refreshed.
#include "leaderrun/reporter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "http/server.h"
#include "util/cm_auth.h"

namespace cm::leaderrun {
namespace {

using namespace std::chrono_literals;

GroupKey TestKey() {
  GroupKey k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7 + 1);
  return k;
}

// A free loopback port: bound by a server that is stopped again.
uint16_t FreePort() {
  http::ServerOptions so;
  auto s = http::Server::Start(so, [](const http::Request&) { return http::Response::Json(200, "{}"); });
  EXPECT_TRUE(s.ok());
  return (*s)->port();
}

// The CCM's report endpoint: checks the stamp as the CCM does, records bodies.
struct FakeCcm {
  std::mutex mu;
  std::vector<std::string> bodies;
  std::atomic<int> requests{0};
  int status = 200;  // what it answers to a report whose stamp verifies
  cm_auth::NonceCache cache;
  GroupKey report_key = cm_auth::ReportKey(TestKey());
  std::unique_ptr<http::Server> server;

  void Start(uint16_t port) {
    http::ServerOptions so;
    so.listen = "127.0.0.1:" + std::to_string(port);
    auto s = http::Server::Start(so, [this](const http::Request& req) {
      ++requests;
      std::lock_guard<std::mutex> l(mu);
      cm_auth::Expectation want;
      want.alg = cm_auth::Alg::kMac;
      want.to = cm_auth::kCcmName;
      want.report_key = &report_key;
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
      const auto v = cm_auth::Verify(req.header(cm_auth::kHeaderLower), req.method, req.path(), req.body, want, now,
                                     &cache);
      if (req.path() != "/v1/leader-report" || v != cm_auth::Verdict::kOk)
        return http::Response::Json(400, R"({"error":"bad report"})");
      if (status != 200) return http::Response::Json(status, R"({"error":"unauthenticated: test refusal"})");
      bodies.push_back(req.body);
      return http::Response::Json(200, R"({"ok":true})");
    });
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server = std::move(*s);
  }
  size_t count() {
    std::lock_guard<std::mutex> l(mu);
    return bodies.size();
  }
};

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

proto::Address Loopback(uint16_t port) {
  proto::Address a;
  EXPECT_TRUE(proto::ParseAddress("127.0.0.1:" + std::to_string(port), &a));
  return a;
}

TEST(Reporter, ReportPostedWhileTheCcmIsDownArrivesWhenItComesUp) {
  const uint16_t port = FreePort();
  Reporter r(Loopback(port), TestKey(), "node-a", {.first_retry = 50ms, .max_retry = 200ms, .refresh = 600ms});
  r.Post(R"({"type":"segment-report","leader":3})");
  ASSERT_TRUE(WaitFor([&] { return r.attempts() >= 3; }, 2s)) << "not retried while the CCM was down";
  EXPECT_FALSE(r.acknowledged());
  FakeCcm ccm;
  ccm.Start(port);
  ASSERT_TRUE(WaitFor([&] { return ccm.count() >= 1; }, 2s)) << "the report never arrived";
  EXPECT_EQ(ccm.bodies[0], R"({"type":"segment-report","leader":3})");
  ASSERT_TRUE(WaitFor([&] { return r.acknowledged(); }, 1s));
  // Acknowledged: refreshed (not re-sent in a loop), and a change goes at once.
  const auto attempts = r.attempts();
  ASSERT_TRUE(WaitFor([&] { return ccm.count() >= 2; }, 2s)) << "no refresh";
  EXPECT_LE(r.attempts(), attempts + 2);
  r.Post(R"({"type":"segment-report","leader":4})");
  ASSERT_TRUE(WaitFor([&] { return ccm.count() >= 3; }, 300ms)) << "a change was not sent at once";
  std::lock_guard<std::mutex> l(ccm.mu);
  EXPECT_EQ(ccm.bodies.back(), R"({"type":"segment-report","leader":4})");
}

TEST(Reporter, RefusingCcmIsRetriedSlowlyNotInATightLoop) {
  const uint16_t port = FreePort();
  FakeCcm ccm;
  ccm.status = 401;
  ccm.Start(port);
  Reporter r(Loopback(port), TestKey(), "node-a", {.first_retry = 10ms, .max_retry = 300ms, .refresh = 10s});
  r.Post(R"({"type":"segment-report","leader":3})");
  std::this_thread::sleep_for(1100ms);
  // At once, then every 300 ms: 4 or 5 requests (a tight loop makes thousands;
  // the fast back-off alone would make more than 7).
  EXPECT_GE(ccm.requests.load(), 3);
  EXPECT_LE(ccm.requests.load(), 6);
  EXPECT_FALSE(r.acknowledged());
  EXPECT_EQ(ccm.count(), 0u);
}

TEST(Reporter, WithdrawnReportIsNoLongerSent) {
  const uint16_t port = FreePort();
  FakeCcm ccm;
  ccm.Start(port);
  Reporter r(Loopback(port), TestKey(), "node-a", {.first_retry = 10ms, .max_retry = 50ms, .refresh = 100ms});
  r.Post(R"({"leader":3})");
  ASSERT_TRUE(WaitFor([&] { return ccm.count() >= 2; }, 2s)) << "no refresh";
  r.Withdraw();
  std::this_thread::sleep_for(50ms);  // one already on its way may land
  const size_t n = ccm.count();
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(ccm.count(), n) << "a withdrawn report was refreshed";
}

}  // namespace
}  // namespace cm::leaderrun
