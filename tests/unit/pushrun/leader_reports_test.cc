#include "pushrun/leader_reports.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cm::pushrun {
namespace {

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

TEST(LeaderReports, AnOlderTermNeverReplacesTheLatestAndNewOnesAreAnnounced) {
  LeaderReports store;
  std::vector<std::string> seen;
  store.SetOnReport([&](const LeaderReport& r) { seen.push_back(r.leader_ip); });
  LeaderReport a{"site1", "10.0.0.1", 5};
  LeaderReport b{"site1", "10.0.0.2", 4};
  LeaderReport c{"site1", "10.0.0.3", 5};
  EXPECT_TRUE(store.Add(a));
  EXPECT_FALSE(store.Add(b));
  EXPECT_EQ(store.Latest("site1")->leader_ip, "10.0.0.1");
  EXPECT_TRUE(store.Add(c));  // the same term: the later report wins
  EXPECT_EQ(store.Latest("site1")->leader_ip, "10.0.0.3");
  EXPECT_EQ(store.Latest("site1")->sequence, 3u);
  EXPECT_FALSE(store.Latest("site2").has_value());
  EXPECT_EQ(seen, (std::vector<std::string>{"10.0.0.1", "10.0.0.3"}));
}

}  // namespace
}  // namespace cm::pushrun
