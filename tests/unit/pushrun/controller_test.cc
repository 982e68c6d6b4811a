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
#include "push/messages.h"
#include "support/test_util.h"
#include "util/exit_codes.h"

namespace cm::pushrun {
namespace {

using std::chrono::milliseconds;

struct FakeRelay {
  std::unique_ptr<http::Server> server;
  std::atomic<int> orders{0};
  std::mutex mu;
  std::string ccm;  // from the first order
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }
};

std::unique_ptr<FakeRelay> StartRelay() {
  auto r = std::make_unique<FakeRelay>();
  FakeRelay* p = r.get();
  auto srv = http::Server::Start(http::ServerOptions{}, [p](const http::Request& req) {
    if (req.path() == "/v1/fetch") {
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
  auto a1 = StartRelay(), b1 = StartRelay();
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
  o.verbosity = 0;
  std::atomic<int> report_status{0}, status_status{0};
  std::string status_body;
  std::thread poker([&] {
    for (int i = 0; i < 100; ++i) {
      std::string ccm;
      {
        std::lock_guard<std::mutex> l(a1->mu);
        ccm = a1->ccm;
      }
      if (!ccm.empty()) {
        auto r = http::Call("POST", ccm + "/v1/leader-report",
                            R"({"type":"segment","segment":"a","leader_address":"127.0.0.2:7400","epoch":2})", milliseconds(1000));
        if (r.ok()) report_status = r->status;
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
  EXPECT_EQ(report_status.load(), 200);
  EXPECT_EQ(status_status.load(), 200);
  EXPECT_NE(status_body.find("\"serial\":7"), std::string::npos) << status_body;
}

}  // namespace
}  // namespace cm::pushrun
