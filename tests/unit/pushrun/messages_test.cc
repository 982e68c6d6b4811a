#include "pushrun/messages.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "pushrun/leader_reports.h"

namespace cm::pushrun {
namespace {

TEST(Messages, FetchOrderRoundTrips) {
  FetchOrder o;
  o.serial = 123456789012345ull;
  o.job = "rel-7";
  o.kind = "commit";
  o.size = 52428800;
  o.source = "http://198.18.1.10:7710";
  o.source_name = "s1a";
  o.ccm = "http://198.18.0.10:7700";
  o.relay = "s2a";
  o.site = "site2";
  o.group = "239.192.0.2:7800";
  o.members = {{"s2b", "http://198.18.2.11:7710"}, {"s2c", "http://198.18.2.12:7710"}};
  o.serve = false;
  auto p = ParseFetchOrder(Encode(o));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->serial, o.serial);
  EXPECT_EQ(p->kind, "commit");
  EXPECT_EQ(p->members.size(), 2u);
  EXPECT_EQ(p->members[1].url, "http://198.18.2.12:7710");
  EXPECT_FALSE(p->serve);
  EXPECT_EQ(Encode(*p), Encode(o));
}

TEST(Messages, FetchOrderWithoutSerialOrSourceIsRejected) {
  EXPECT_FALSE(ParseFetchOrder(R"({"source":"http://x:1"})").ok());
  EXPECT_FALSE(ParseFetchOrder(R"({"serial":5})").ok());
  EXPECT_FALSE(ParseFetchOrder(R"({"serial":5,"source":"http://x:1","kind":"explode"})").ok());
  EXPECT_FALSE(ParseFetchOrder(R"([1,2])").ok());
  EXPECT_FALSE(ParseFetchOrder("not json").ok());
}

TEST(Messages, SiteReportCarriesEveryServer) {
  SiteReport r;
  r.serial = 9;
  r.site = "ams";
  r.leader = "ams-1";
  r.servers = {{"ams-1", "staged", "", "leader"}, {"ams-2", "failed", "cm-apply: error: no space", "multicast"}};
  auto p = ParseSiteReport(Encode(r));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->servers.size(), 2u);
  EXPECT_EQ(p->servers[1].error, "cm-apply: error: no space");
  EXPECT_FALSE(ParseSiteReport(R"({"serial":9,"servers":[{"name":"x","state":"weird"}]})").ok());
}

TEST(Messages, MemberReportAndExpectRoundTrip) {
  MemberReport m{7, {"b", "committed", "", "unicast"}};
  auto pm = ParseMemberReport(Encode(m));
  ASSERT_TRUE(pm.ok());
  EXPECT_EQ(pm->result.state, "committed");
  Expect e;
  e.serial = 7;
  e.leader_url = "http://a:1";
  e.group = "239.1.1.1:5000";
  auto pe = ParseExpect(Encode(e));
  ASSERT_TRUE(pe.ok());
  EXPECT_EQ(pe->group, e.group);
  EXPECT_FALSE(ParseExpect(R"({"serial":7})").ok());
}

RC_GTEST_PROP(Messages, ParsersNeverCrashOnArbitraryText, (std::string s)) {
  (void)ParseFetchOrder(s);
  (void)ParseExpect(s);
  (void)ParseMemberReport(s);
  (void)ParseSiteReport(s);
  (void)LeaderReports::Parse(s);
}

TEST(LeaderReports, ParsesCmLeaderSegmentReports) {
  auto r = LeaderReports::Parse(
      R"({"type":"segment","segment":"site2","leader":3256877578,"leader_address":"198.18.2.11:7400","epoch":4,"location":"","free_disk_mb":100,"cpu_permille":250,"priority":150,"members":[1,2]})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->segment, "site2");
  EXPECT_EQ(r->leader_ip, "198.18.2.11");
  EXPECT_EQ(r->epoch, 4u);
  EXPECT_EQ(r->cpu_permille, 250u);
  EXPECT_FALSE(LeaderReports::Parse(R"({"segment":"x"})").has_value());
}

}  // namespace
}  // namespace cm::pushrun
