#include "push/fan_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace cm::push {
namespace {

std::vector<FanPeer> Sites(const std::vector<std::pair<int, double>>& sizes_rates) {
  std::vector<FanPeer> peers;
  for (size_t s = 0; s < sizes_rates.size(); ++s) {
    for (int k = 0; k < sizes_rates[s].first; ++k) {
      peers.push_back(FanPeer{"s" + std::to_string(s) + "-" + std::to_string(k), "site" + std::to_string(s),
                              sizes_rates[s].second});
    }
  }
  return peers;
}

std::vector<PeerIndex> All(const std::vector<FanPeer>& peers) {
  std::vector<PeerIndex> v;
  for (PeerIndex i = 0; i < peers.size(); ++i) v.push_back(i);
  return v;
}

// Every server of the share ends up exactly once: approached, in a share, or kept.
void ExpectPartition(const FanSplit& split, std::vector<PeerIndex> share) {
  std::multiset<PeerIndex> seen;
  for (const FanApproach& a : split.approaches) {
    seen.insert(a.target);
    seen.insert(a.share.begin(), a.share.end());
  }
  seen.insert(split.kept.begin(), split.kept.end());
  std::sort(share.begin(), share.end());
  share.erase(std::unique(share.begin(), share.end()), share.end());
  EXPECT_EQ(std::vector<PeerIndex>(seen.begin(), seen.end()), share);
}

TEST(FanPlan, TheBaseApproachesTheFastestSiteAndHandsItTheRestFastestFirst) {
  // site0 is slow (first in the file), sites 1-3 fast.
  auto peers = Sites({{4, 1e5}, {4, 6e5}, {4, 6e5}, {4, 6e5}});
  FanSplit split = SplitShare(peers, "", All(peers), 0, 1);
  ASSERT_EQ(split.approaches.size(), 1u);
  const FanApproach& a = split.approaches[0];
  EXPECT_EQ(peers[a.target].site, "site1");
  EXPECT_FALSE(a.lan);
  // Its site-mates first, then site2, site3, and the slow site last.
  ASSERT_EQ(a.share.size(), 15u);
  EXPECT_EQ(peers[a.share[0]].site, "site1");
  EXPECT_EQ(peers[a.share[3]].site, "site2");
  EXPECT_EQ(peers[a.share[14]].site, "site0");
  EXPECT_TRUE(split.kept.empty());
  ExpectPartition(split, All(peers));
}

TEST(FanPlan, UnmeasuredSitesKeepTheSitesFileOrder) {
  auto peers = Sites({{2, 0}, {2, 0}, {2, 0}});
  FanSplit split = SplitShare(peers, "", All(peers), 0, 1);
  ASSERT_EQ(split.approaches.size(), 1u);
  EXPECT_EQ(peers[split.approaches[0].target].site, "site0");
  EXPECT_EQ(peers[split.approaches[0].share.back()].site, "site2");
}

TEST(FanPlan, SiteMatesFirstOverTheLanEachTakingAnEqualPart) {
  auto peers = Sites({{7, 6e5}, {3, 6e5}});
  std::vector<PeerIndex> share;
  for (PeerIndex i = 1; i < peers.size(); ++i) share.push_back(i);  // we are peer 0 of site0
  FanSplit split = SplitShare(peers, "site0", share, 3, 1);
  ASSERT_EQ(split.approaches.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(split.approaches[i].lan);
    EXPECT_EQ(split.approaches[i].share.size(), 1u);  // 6 site-mates: 3 approached, 1 more each
  }
  EXPECT_FALSE(split.approaches[3].lan);
  EXPECT_EQ(peers[split.approaches[3].target].site, "site1");
  ExpectPartition(split, share);
}

TEST(FanPlan, ASlowChildStaysALeaf) {
  // Two slots: the fast site and the slow one; the slow one gets no other site.
  auto peers = Sites({{1, 6e5}, {1, 1e5}, {1, 5e5}, {1, 4e5}, {1, 3e5}});
  std::vector<PeerIndex> share = {0, 1, 2, 3, 4};
  FanSplit split = SplitShare(peers, "", share, 0, 5);
  ASSERT_EQ(split.approaches.size(), 5u);  // enough slots: everyone at once
  split = SplitShare(peers, "", share, 0, 2);
  ASSERT_EQ(split.approaches.size(), 2u);
  EXPECT_EQ(split.approaches[0].target, 0u);
  EXPECT_EQ(split.approaches[1].target, 2u);  // the second fastest, not the slow one
  // Add a very slow site within the two approached: it must take nothing.
  auto peers2 = Sites({{1, 6e5}, {1, 1e4}, {1, 1e3}, {1, 1e3}});
  split = SplitShare(peers2, "", {0, 1, 2, 3}, 0, 2);
  ASSERT_EQ(split.approaches.size(), 2u);
  EXPECT_EQ(split.approaches[1].target, 1u);
  EXPECT_TRUE(split.approaches[1].share.empty());
  EXPECT_EQ(split.approaches[0].share.size(), 2u);
}

TEST(FanPlan, NoSlotsKeepsEverythingAndBadEntriesAreDropped) {
  auto peers = Sites({{2, 1}, {2, 1}});
  FanSplit split = SplitShare(peers, "site0", {3, 2, 99, 3, 1}, 0, 0);
  EXPECT_TRUE(split.approaches.empty());
  EXPECT_EQ(split.kept, (std::vector<PeerIndex>{3, 2, 1}));
}

TEST(FanPlan, SharesArePartitionsForRandomInputs) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; ++round) {
    int sites = 1 + static_cast<int>(rng() % 12);
    std::vector<std::pair<int, double>> shape;
    for (int s = 0; s < sites; ++s) shape.push_back({1 + static_cast<int>(rng() % 5), static_cast<double>(rng() % 4) * 1e5});
    auto peers = Sites(shape);
    std::vector<PeerIndex> share;
    for (PeerIndex i = 0; i < peers.size(); ++i) {
      if (rng() % 3) share.push_back(i);
    }
    std::shuffle(share.begin(), share.end(), rng);
    std::string self = rng() % 2 ? "" : "site" + std::to_string(rng() % sites);
    FanSplit split = SplitShare(peers, self, share, rng() % 4, rng() % 4);
    ExpectPartition(split, share);
    std::set<std::string> wan_sites;
    for (const FanApproach& a : split.approaches) {
      EXPECT_EQ(a.lan, !self.empty() && peers[a.target].site == self);
      if (!a.lan) {
        EXPECT_TRUE(wan_sites.insert(peers[a.target].site).second) << "two entries for one site";
      }
    }
  }
}

TEST(FanPlan, WanFanoutIsWhatTheUplinkAllows) {
  EXPECT_EQ(WanFanout(0, 1e5, 4, 3), 1u);
  EXPECT_EQ(WanFanout(6e5, 6e5, 4, 3), 1u);
  EXPECT_EQ(WanFanout(6e5, 2.5e5, 4, 3), 2u);
  EXPECT_EQ(WanFanout(6e5, 1e4, 4, 3), 4u);
  EXPECT_EQ(WanFanout(6e5, 6e5, 4, 100), 2u);  // deep: at least two
}

}  // namespace
}  // namespace cm::push
