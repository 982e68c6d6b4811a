// Leader ordering: admin override first, then the documented score.
#include "push/ordering.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace cm::push {
namespace {

LeaderFacts F(std::string name, std::string site, double rate = 0, double rel = 1, uint32_t idle = 1000,
              int tz = 0) {
  return LeaderFacts{std::move(name), std::move(site), idle, rate, rel, tz};
}

using Names = std::vector<std::string>;

TEST(Ordering, FasterLeadersComeFirst) {
  auto o = OrderLeaders({F("a", "s1", 10e6), F("b", "s2", 100e6), F("c", "s3", 50e6)});
  EXPECT_EQ(o.names, (Names{"b", "c", "a"}));
}

TEST(Ordering, UnreliableAndBusyLeadersSink) {
  // Same measured rate: reliability 0.5 halves it; a saturated CPU takes half.
  auto o = OrderLeaders({F("flaky", "s1", 100e6, 0.5), F("busy", "s2", 100e6, 1, 0), F("good", "s3", 100e6),
                         F("dead", "s4", 100e6, 0)});
  EXPECT_EQ(o.names[0], "good");
  EXPECT_EQ(o.names[3], "dead");
  // flaky and busy score the same: the name decides.
  EXPECT_EQ((Names{o.names[1], o.names[2]}), (Names{"busy", "flaky"}));
}

TEST(Ordering, UnknownRateCountsAsTheMedian) {
  auto o = OrderLeaders({F("slow", "s1", 10e6), F("new", "s2", 0), F("fast", "s3", 100e6), F("mid", "s4", 50e6)});
  // Median of known rates = 50e6: "new" ties with "mid" and the name decides.
  EXPECT_EQ(o.names, (Names{"fast", "mid", "new", "slow"}));
}

TEST(Ordering, NearlyEqualRatesTieAndTheNearerTimeZoneWins) {
  OrderingOptions opt;
  opt.ccm_tz_offset_minutes = 60;
  auto o = OrderLeaders({F("far", "s1", 100e6, 1, 1000, -300), F("near", "s2", 99e6, 1, 1000, 120),
                         F("wrap", "s3", 100.5e6, 1, 1000, 60 + 1440)},
                        opt);
  EXPECT_EQ(o.names, (Names{"wrap", "near", "far"}));
}

TEST(Ordering, AdminOverrideByNameOrSiteComesFirstInItsOrder) {
  OrderingOptions opt;
  opt.admin_order = {"paris", "b", "nowhere"};
  auto o = OrderLeaders({F("a", "london", 100e6), F("b", "berlin", 1e6), F("c", "paris", 2e6), F("d", "rome", 50e6)},
                        opt);
  EXPECT_EQ(o.names, (Names{"c", "b", "a", "d"}));
  EXPECT_EQ(o.unmatched_admin, (Names{"nowhere"}));
}

TEST(Ordering, DuplicateNamesCountOnce) {
  auto o = OrderLeaders({F("a", "s1", 1e6), F("a", "s2", 100e6), F("b", "s3", 2e6)});
  EXPECT_EQ(o.names, (Names{"b", "a"}));
}

TEST(Ordering, CpuAboveFullIdleIsClampedAndNanIsHarmless) {
  LeaderFacts over = F("x", "s", 10e6, 1, 5000);
  LeaderFacts full = F("x", "s", 10e6, 1, 1000);
  EXPECT_EQ(ScoreStep(over, 1), ScoreStep(full, 1));
  LeaderFacts nan = F("n", "s", std::nan(""), std::nan(""));
  EXPECT_EQ(ScoreStep(nan, 10e6), ScoreStep(F("m", "s", 10e6), 10e6));
}

TEST(Ordering, InputOrderDoesNotMatter) {
  std::vector<LeaderFacts> v;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 60; ++i)
    v.push_back(F("l" + std::to_string(i), "s" + std::to_string(i % 7), static_cast<double>(rng() % 5) * 1e7,
                  (rng() % 4) / 3.0, static_cast<uint32_t>(rng() % 1001), static_cast<int>(rng() % 5) * 60));
  OrderingOptions opt;
  opt.admin_order = {"s3", "l5"};
  Names first = OrderLeaders(v, opt).names;
  for (int round = 0; round < 20; ++round) {
    std::shuffle(v.begin(), v.end(), rng);
    ASSERT_EQ(OrderLeaders(v, opt).names, first);
  }
  EXPECT_EQ(first.size(), 60u);
}

}  // namespace
}  // namespace cm::push
