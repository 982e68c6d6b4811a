// The relay's doors (issue: "only the CCM can change a server"): a relay on
// loopback, in this process, refuses every order that is not the CCM's
// sealed order for it — unsigned, signed by another key, stamped with the
// group key, for another relay, expired, altered (another source: SSRF),
// replayed — and every member report without a valid stamp; it changes
// nothing for any of them (no transfer, nothing in its spool).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "http/client.h"
#include "pack/keys.h"
#include "push/auth.h"
#include "push/messages.h"
#include "pushrun/auth_edge.h"
#include "pushrun/relay.h"
#include "support/test_util.h"

namespace cm::pushrun {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

class RelayAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pack::GenerateSigningKey(dir_ / "ccm.key").ok());
    ASSERT_TRUE(pack::GenerateSigningKey(dir_ / "other.key").ok());
    ASSERT_TRUE(pack::GenerateGroupKey(dir_ / "group.key").ok());
    ASSERT_TRUE(pack::GenerateGroupKey(dir_ / "other-group.key").ok());
    RelayOptions o;
    o.name = "a1";
    o.listen = "127.0.0.1:0";
    o.spool = dir_ / "spool";
    o.root = dir_ / "root";
    o.pub_key = dir_ / "ccm.key.pub";
    o.group_key = dir_ / "group.key";
    o.cm_apply = "/bin/false";
    o.cm_mcast = "/bin/false";
    o.idle_timeout_s = 1;
    auto r = Relay::Start(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    relay_ = std::move(*r);
    ccm_ = std::make_unique<AuthEdge>("ccm-test", *pack::LoadSigningKey(dir_ / "ccm.key"), std::nullopt,
                                      *LoadGroupKey(dir_ / "group.key"));
  }
  void TearDown() override {
    if (relay_) relay_->Stop();
  }

  push::FetchOrder Order(const std::string& relay = "a1") const {
    push::FetchOrder o;
    o.serial = 42;
    o.job = "j";
    o.size = 1000;
    o.source = "http://127.0.0.1:1";
    o.ccm = "http://127.0.0.1:1";
    o.ccm_id = "ccm-test";
    o.relay = relay;
    o.site = "a";
    return o;
  }

  int Post(const std::string& path, const std::string& body, const http::HeaderList& headers = {}) {
    auto r = http::Call("POST", relay_->url() + path, body, milliseconds(3000), "application/json", headers);
    EXPECT_TRUE(r.ok());
    last_body_ = r.ok() ? r->body : "";
    return r.ok() ? r->status : 0;
  }

  // Nothing was started for serial 42 and nothing is in the spool.
  void ExpectUntouched() {
    auto s = http::Call("GET", relay_->url() + "/v1/status", "", milliseconds(3000));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->body.find("\"serial\":42"), std::string::npos) << s->body;
    size_t files = 0;
    if (fs::exists(dir_ / "spool"))
      for (auto it = fs::recursive_directory_iterator(dir_ / "spool"); it != fs::recursive_directory_iterator(); ++it)
        ++files;
    EXPECT_EQ(files, 0u);
  }

  http::HeaderList Sealed(const push::Sealed& s) { return {{"CM-Auth", s.auth}}; }

  test::TempDir dir_;
  std::unique_ptr<Relay> relay_;
  std::unique_ptr<AuthEdge> ccm_;
  std::string last_body_;
};

TEST_F(RelayAuth, AnUnsignedFetchOrExpectIsRefusedAndChangesNothing) {
  EXPECT_EQ(Post("/v1/fetch", push::Encode(Order())), 401);
  EXPECT_NE(last_body_.find("unauthenticated"), std::string::npos) << last_body_;
  push::Expect e;
  e.serial = 42;
  e.name = "a1";
  e.leader = "evil";
  e.leader_url = "http://127.0.0.1:1";
  EXPECT_EQ(Post("/v1/expect", push::Encode(e)), 401);  // no spool plant through /v1/expect
  EXPECT_EQ(Post("/v1/fetch", push::Encode(Order()), {{"CM-Auth", "v=1 alg=ed25519 garbage"}}), 401);
  ExpectUntouched();
}

TEST_F(RelayAuth, ForgedOrdersAreRefused) {
  // Signed by another key.
  AuthEdge other("x", *pack::LoadSigningKey(dir_ / "other.key"), std::nullopt, std::nullopt);
  auto s = other.Seal("a1", push::Endpoint::kFetch, push::Encode(Order()), 60);
  EXPECT_EQ(Post("/v1/fetch", s.body, Sealed(s)), 401);
  // Stamped with the group key, as any server could: a report stamp is not an order.
  AuthEdge server("ccm", std::nullopt, std::nullopt, *LoadGroupKey(dir_ / "group.key"));
  push::Call c;
  c.endpoint = push::Endpoint::kFetch;
  c.body = push::Encode(Order());
  c.to = "a1";
  EXPECT_EQ(Post("/v1/fetch", c.body, server.Stamp(c)), 401);
  // The CCM's order for another relay, replayed here.
  auto b1 = ccm_->Seal("b1", push::Endpoint::kFetch, push::Encode(Order("b1")), 60);
  EXPECT_EQ(Post("/v1/fetch", b1.body, Sealed(b1)), 403);
  // The CCM's order with its source changed to another URL (SSRF).
  auto good = ccm_->Seal("a1", push::Endpoint::kFetch, push::Encode(Order()), 60);
  push::FetchOrder evil = Order();
  evil.source = "http://169.254.169.254/latest";
  EXPECT_EQ(Post("/v1/fetch", push::Encode(evil), Sealed(good)), 401);
  // Expired.
  auto old = ccm_->Seal("a1", push::Endpoint::kFetch, push::Encode(Order()), -push::auth::kClockSkew - 5);
  EXPECT_EQ(Post("/v1/fetch", old.body, Sealed(old)), 403);
  // An expect sealed as a fetch order.
  EXPECT_EQ(Post("/v1/expect", good.body, Sealed(good)), 401);
  ExpectUntouched();
}

TEST_F(RelayAuth, TheCcmsOrderIsTakenOnceAndAReplayChangesNothing) {
  auto good = ccm_->Seal("a1", push::Endpoint::kFetch, push::Encode(Order()), 60);
  EXPECT_EQ(Post("/v1/fetch", good.body, Sealed(good)), 200) << last_body_;
  EXPECT_EQ(Post("/v1/fetch", good.body, Sealed(good)), 409);
  EXPECT_TRUE(push::IsDuplicateAnswer(409, last_body_)) << last_body_;
  // A second order to take over the transfer (another source) without the CCM's seal.
  push::FetchOrder take = Order();
  take.source = "http://127.0.0.1:2";
  EXPECT_EQ(Post("/v1/fetch", push::Encode(take)), 401);
  auto s = http::Call("GET", relay_->url() + "/v1/status", "", milliseconds(3000));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->body.find("127.0.0.1:2"), std::string::npos) << s->body;
}

TEST_F(RelayAuth, MemberReportsNeedAValidStampForTheirOwnServer) {
  push::MemberReport r;
  r.serial = 42;
  r.result.name = "a2";
  r.result.state = push::ServerState::kStaged;
  const std::string body = push::Encode(r);
  EXPECT_EQ(Post("/v1/member-report", body), 401);
  push::Call c;
  c.endpoint = push::Endpoint::kMemberReport;
  c.body = body;
  c.to = "a1";
  AuthEdge wrong_key("a2", std::nullopt, std::nullopt, *LoadGroupKey(dir_ / "other-group.key"));
  EXPECT_EQ(Post("/v1/member-report", body, wrong_key.Stamp(c)), 401);
  AuthEdge a3("a3", std::nullopt, std::nullopt, *LoadGroupKey(dir_ / "group.key"));
  EXPECT_EQ(Post("/v1/member-report", body, a3.Stamp(c)), 403) << "a3 may not report for a2";
  c.to = "b1";
  AuthEdge a2("a2", std::nullopt, std::nullopt, *LoadGroupKey(dir_ / "group.key"));
  EXPECT_EQ(Post("/v1/member-report", body, a2.Stamp(c)), 403) << "meant for another leader";
  ExpectUntouched();
}

TEST(AuthEdge, TheCcmsAnswersAreCheckedByTheRelay) {
  test::TempDir dir;
  ASSERT_TRUE(pack::GenerateSigningKey(dir / "ccm.key").ok());
  ASSERT_TRUE(pack::GenerateSigningKey(dir / "other.key").ok());
  AuthEdge ccm("ccm-1", *pack::LoadSigningKey(dir / "ccm.key"), std::nullopt, std::nullopt);
  AuthEdge other("ccm-1", *pack::LoadSigningKey(dir / "other.key"), std::nullopt, std::nullopt);
  AuthEdge relay("a1", std::nullopt, *pack::LoadPublicKey(dir / "ccm.key.pub"), std::nullopt);
  push::Call c;
  c.endpoint = push::Endpoint::kSourceFailed;
  const std::string body = R"({"source_url":"http://127.0.0.1:9","source_name":"b1"})";
  http::HeaderMap h{{"cm-auth", ccm.SealAnswer("a1", "/v1/source-failed", body)}};
  EXPECT_EQ(relay.CheckAnswer(c, h, body), "");
  EXPECT_NE(relay.CheckAnswer(c, h, R"({"source_url":"http://10.1.1.1:80","source_name":""})"), "");
  EXPECT_NE(relay.CheckAnswer(c, {}, body), "");
  http::HeaderMap forged{{"cm-auth", other.SealAnswer("a1", "/v1/source-failed", body)}};
  EXPECT_NE(relay.CheckAnswer(c, forged, body), "");
  http::HeaderMap for_b{{"cm-auth", ccm.SealAnswer("b1", "/v1/source-failed", body)}};
  EXPECT_NE(relay.CheckAnswer(c, for_b, body), "");
}

}  // namespace
}  // namespace cm::pushrun
