// The controller edge on loopback against fake relays that take orders and
// answer probes but never report: the job must end at --timeout with every
// server failed "timed out", while the CCM keeps answering (leader reports by
// POST /v1/leader-report, GET /v1/status) without blocking.
#include "pushrun/controller.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "http/client.h"
#include "http/server.h"
#include "pack/keys.h"
#include "push/auth.h"
#include "push/messages.h"
#include "pushrun/auth_edge.h"
#include "support/test_util.h"
#include "util/exit_codes.h"

namespace cm::pushrun {
namespace {

using std::chrono::milliseconds;

struct FakeRelay {
  std::unique_ptr<http::Server> server;
  std::atomic<int> orders{0};
  std::atomic<int> sealed{0};  // orders whose CM-Auth verified with the CCM's public key, for this relay
  std::string name;
  pack::PublicKey pub;
  std::mutex mu;
  std::string ccm;  // from the first order
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }
};

std::unique_ptr<FakeRelay> StartRelay(const std::string& name, const pack::PublicKey& pub) {
  auto r = std::make_unique<FakeRelay>();
  r->name = name;
  r->pub = pub;
  FakeRelay* p = r.get();
  auto srv = http::Server::Start(http::ServerOptions{}, [p](const http::Request& req) {
    if (req.path() == "/v1/fetch") {
      push::auth::Expectation want;
      want.alg = push::auth::Alg::kEd25519;
      want.to = p->name;
      want.from = push::auth::kCcmName;
      want.pub = &p->pub.bytes;
      if (push::auth::Verify(req.header("cm-auth"), req.method, req.path(), req.body, want, WallSeconds(), nullptr) ==
          push::auth::Verdict::kOk)
        ++p->sealed;
      auto o = push::ParseFetchOrder(req.body);
      if (o.ok()) {
        std::lock_guard<std::mutex> l(p->mu);
        p->ccm = o->ccm;
      }
      ++p->orders;
    }
    return http::Response::Json(200, push::EncodeAck());
  });
  EXPECT_TRUE(srv.ok());
  r->server = std::move(*srv);
  return r;
}

TEST(Controller, TimeoutEndsAPushWhoseRelaysNeverReportAndTheCcmKeepsAnswering) {
  std::string bin = test::BinDir();
  if (bin.empty() || access((bin + "/cm-pack").c_str(), X_OK) != 0) GTEST_SKIP() << "needs $CM_BIN/cm-pack";
  test::TempDir dir;
  ASSERT_EQ(test::Run(bin + "/cm-pack commit --job t --serial 7 -o " + (dir / "c.cma")), 0);
  ASSERT_EQ(test::Run(bin + "/cm-pack keygen -o " + (dir / "ccm.key")), 0);
  ASSERT_EQ(test::Run(bin + "/cm-pack keygen --group -o " + (dir / "group.key")), 0);
  auto pub = pack::LoadPublicKey(dir / "ccm.key.pub");
  auto group = LoadGroupKey(dir / "group.key");
  ASSERT_TRUE(pub.ok() && group.ok());
  auto a1 = StartRelay("a1", *pub), b1 = StartRelay("b1", *pub);
  test::WriteFile(dir / "sites.toml", "[ccm]\nlisten = \"127.0.0.1:1\"\n\n"
                                "[[site]]\nname = \"a\"\ngroup = \"239.255.77.1:7800\"\n  [[site.server]]\n  name = \"a1\"\n  address = \"127.0.0.2\"\n"
                                "  url = \"" + a1->url() + "\"\n"
                                "[[site]]\nname = \"b\"\ngroup = \"239.255.77.2:7800\"\n  [[site.server]]\n  name = \"b1\"\n  address = \"127.0.0.3\"\n"
                                "  url = \"" + b1->url() + "\"\n");
  PushOptions o;
  o.assignments = {dir / "c.cma"};
  o.sites_file = dir / "sites.toml";
  o.listen = "127.0.0.1:0";
  o.commit = false;
  o.timeout_s = 2;
  o.star_max = 2;  // both sites straight from the CCM (the default is a chain)
  o.verbosity = 0;
  o.sign_key = dir / "ccm.key";
  o.group_key = dir / "group.key";
  std::atomic<int> report_status{0}, unstamped_status{0}, wrong_key_status{0}, older_status{0}, replay_status{0},
      status_status{0}, forged_site{0}, other_run_site{0};
  std::string status_body, report_body, older_body;
  std::thread poker([&] {
    for (int i = 0; i < 100; ++i) {
      std::string ccm;
      {
        std::lock_guard<std::mutex> l(a1->mu);
        ccm = a1->ccm;
      }
      if (!ccm.empty()) {
        // cm-leader's segment report, as lib/leaderrun/reporter.cc stamps it.
        const std::string body =
            R"({"type":"segment-report","segment":"a","leader":2,"leader_address":"127.0.0.2:7400","epoch":2})";
        auto stamp = [&](const GroupKey& key, const std::string& b) {
          push::auth::Stamp st;
          st.from = "a1";
          st.to = push::auth::kCcmName;
          st.exp = WallSeconds() + 60;
          st.nonce = NewNonce();
          push::auth::Mac(&st, push::auth::ReportKey(key), "POST", "/v1/leader-report", b);
          return http::HeaderList{{"CM-Auth", push::auth::Format(st)}};
        };
        auto bare = http::Call("POST", ccm + "/v1/leader-report", body, milliseconds(1000));
        if (bare.ok()) unstamped_status = bare->status;
        auto wrong = http::Call("POST", ccm + "/v1/leader-report", body, milliseconds(1000), "application/json",
                                stamp(GroupKey{9, 9, 9}, body));
        if (wrong.ok()) wrong_key_status = wrong->status;
        const http::HeaderList good = stamp(*group, body);
        auto r = http::Call("POST", ccm + "/v1/leader-report", body, milliseconds(1000), "application/json", good);
        if (r.ok()) {
          report_status = r->status;
          report_body = r->body;
        }
        auto again = http::Call("POST", ccm + "/v1/leader-report", body, milliseconds(1000), "application/json", good);
        if (again.ok()) replay_status = again->status;
        // An older term, stamped: taken, but the store keeps the epoch-2 report.
        std::string older = body;
        older.replace(older.find("\"epoch\":2"), 9, "\"epoch\":1");
        auto o1 = http::Call("POST", ccm + "/v1/leader-report", older, milliseconds(1000), "application/json",
                             stamp(*group, older));
        if (o1.ok()) {
          older_status = o1->status;
          older_body = o1->body;
        }
        // A forged final report ("every server committed") is refused: no
        // stamp, and a genuine stamp for another CCM run.
        const std::string site =
            R"({"serial":7,"site":"a","leader":"a1","servers":[{"name":"a1","state":"committed"}]})";
        auto f = http::Call("POST", ccm + "/v1/site-report", site, milliseconds(1000));
        if (f.ok()) forged_site = f->status;
        push::auth::Stamp rs;
        rs.from = "a1";
        rs.to = "ccm-someotherrun";
        rs.exp = WallSeconds() + 60;
        rs.nonce = NewNonce();
        push::auth::Mac(&rs, push::auth::ReportKey(*group), "POST", "/v1/site-report", site);
        auto g = http::Call("POST", ccm + "/v1/site-report", site, milliseconds(1000), "application/json",
                            {{"CM-Auth", push::auth::Format(rs)}});
        if (g.ok()) other_run_site = g->status;
        auto s = http::Call("GET", ccm + "/v1/status", "", milliseconds(1000));
        if (s.ok()) {
          status_status = s->status;
          status_body = s->body;
        }
        return;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  auto out = RunPush(o);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  poker.join();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->exit_code, kExitFailure);
  EXPECT_EQ(out->servers, 2u);
  EXPECT_EQ(out->failed, 2u);
  EXPECT_GE(secs, 1.9);
  EXPECT_LT(secs, 8.0);
  EXPECT_GE(a1->orders.load(), 1);
  EXPECT_GE(b1->orders.load(), 1);
  EXPECT_EQ(a1->sealed.load(), a1->orders.load()) << "every order is sealed for its relay";
  EXPECT_EQ(b1->sealed.load(), b1->orders.load());
  EXPECT_EQ(unstamped_status.load(), 401);
  EXPECT_EQ(forged_site.load(), 401);
  EXPECT_EQ(other_run_site.load(), 403);
  EXPECT_EQ(wrong_key_status.load(), 401) << "a report stamped with another group key";
  EXPECT_EQ(report_status.load(), 200);
  EXPECT_EQ(report_body, R"({"ok":true,"latest":true})") << "the stamped report reached the store";
  EXPECT_EQ(replay_status.load(), 409) << "the same stamp again";
  EXPECT_EQ(older_status.load(), 200);
  EXPECT_EQ(older_body, R"({"ok":true,"latest":false})") << "the store holds the epoch-2 report";
  EXPECT_EQ(status_status.load(), 200);
  EXPECT_NE(status_body.find("\"serial\":7"), std::string::npos) << status_body;
}

}  // namespace
}  // namespace cm::pushrun
