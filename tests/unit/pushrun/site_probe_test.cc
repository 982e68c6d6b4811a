// The CCM's start probe (lib/pushrun/site_probe.h): which answers it trusts
// for "whom did cm-leader elect", and how it picks each site's leader.
#include "pushrun/site_probe.h"

#include <gtest/gtest.h>

#include "pushrun/auth_edge.h"
#include "util/cm_auth.h"

namespace cm::pushrun {
namespace {

GroupKey Key(uint8_t b) {
  GroupKey k;
  k.fill(b);
  return k;
}

// A relay's stamped answer, as the relay makes it (AuthEdge::StampAnswer).
http::HeaderMap Stamped(const GroupKey& group, const std::string& from, const std::string& body) {
  AuthEdge relay(from, std::nullopt, std::nullopt, group);
  return {{cm_auth::kHeaderLower, relay.StampAnswer(cm_auth::kCcmName, "/v1/status", body)}};
}

TEST(SiteProbe, OnlyAStampedAnswerThatEchoesOurNonceNamesALeader) {
  const GroupKey group = Key(7);
  const AuthEdge ccm("ccm-test", std::nullopt, std::nullopt, group);
  const std::string n1(32, '1'), n2(32, '2');
  const std::string body =
      R"({"name":"a2","transfers":[],"site_leader":{"address":"127.0.0.3","epoch":4},"nonce":")" + n1 + R"("})";
  ProbeAnswer a;
  const http::HeaderMap stamp = Stamped(group, "a2", body);
  EXPECT_TRUE(CheckStatusAnswer(ccm, "a2", n1, stamp, body, &a));
  EXPECT_EQ(a.leader_address, "127.0.0.3");
  EXPECT_EQ(a.epoch, 4u);
  ProbeAnswer b;  // a replayed answer (another nonce), another sender, another key, no stamp
  EXPECT_FALSE(CheckStatusAnswer(ccm, "a2", n2, stamp, body, &b));
  EXPECT_FALSE(CheckStatusAnswer(ccm, "a1", n1, stamp, body, &b));
  EXPECT_FALSE(CheckStatusAnswer(ccm, "a2", n1, Stamped(Key(8), "a2", body), body, &b));
  EXPECT_FALSE(CheckStatusAnswer(ccm, "a2", n1, {}, body, &b));
  EXPECT_TRUE(b.leader_address.empty());
}

TEST(SiteProbe, TheNewestEpochAmongAnsweringServersLeadsItsSite) {
  auto sites = push::ParseSites(R"(
[ccm]
listen = "127.0.0.1:7700"
[[site]]
name = "a"
group = "239.1.1.1:7800"
[[site.server]]
name = "a1"
address = "127.0.0.2"
[[site.server]]
name = "a2"
address = "127.0.0.3"
[[site.server]]
name = "a3"
address = "127.0.0.4"
[[site]]
name = "b"
group = "239.1.1.2:7800"
[[site.server]]
name = "b1"
address = "127.0.0.5"
)",
                                "sites.toml");
  ASSERT_TRUE(sites.ok()) << sites.status().ToString();
  std::map<std::string, ProbeAnswer> ans;
  ans["a1"] = {true, "", "127.0.0.3", 3};  // says a2 (older term)
  ans["a2"] = {true, "", "127.0.0.4", 5};  // says a3 (newer term)
  ans["a3"] = {true, "", "", 0};
  ans["b1"] = {true, "", "127.0.0.2", 9};  // names a server of another site: ignored
  auto e = ElectedLeaders(*sites, ans);
  EXPECT_EQ(e["a"], "a3");
  EXPECT_EQ(e.count("b"), 0u);
  ans["a3"].up = false;  // elected but not answering: the older term's choice
  e = ElectedLeaders(*sites, ans);
  EXPECT_EQ(e["a"], "a2");
}

}  // namespace
}  // namespace cm::pushrun
