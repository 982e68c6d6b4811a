#include "pushrun/leader_reports.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cm::pushrun
