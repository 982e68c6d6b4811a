// The rate control core (mcast/rate_control.h) on hand-made feedback: random
// loss alone never cuts the rate, queueing delay does, a receiver congested
// alone is named slow instead of slowing the group, the cap holds.
#include <gtest/gtest.h>

#include <random>

#include "mcast/rate_control.h"

namespace cm::mcast {
namespace {

using proto::kMillis;

constexpr uint64_t kFrameBits = 1503 * 8;

// Feeds one epoch of reports: each receiver heard `frames` at `loss` with
// queueing delay `q`; returns the decision at the epoch's end.
RateDecision Epoch(RateControl& rc, Micros* now, const std::vector<std::string>& ids, uint32_t frames,
                   const std::vector<double>& loss, const std::vector<Micros>& q, std::mt19937_64& rng) {
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t lost = 0;
    for (uint32_t f = 0; f < frames; ++f) lost += std::uniform_real_distribution<double>(0, 1)(rng) < loss[i];
    rc.OnReport(*now + static_cast<Micros>(i), ids[i], frames - lost, lost, q[i]);
  }
  *now += 100 * kMillis;
  return rc.Tick(*now, kFrameBits, ids.size());
}

TEST(McastRateControl, RandomLossAloneNeverCutsTheRate) {
  std::mt19937_64 rng(1);
  RateControl rc(RateConfig{.cap_bps = 1'000'000'000, .start_bps = 100'000'000});
  Micros now = 0;
  uint64_t prev = rc.rate();
  for (int e = 0; e < 100; ++e) {
    Epoch(rc, &now, {"a", "b", "c"}, 800, {0.1, 0.2, 0.3}, {500, 800, 300}, rng);
    EXPECT_GE(rc.rate(), prev) << "epoch " << e;
    prev = rc.rate();
  }
  EXPECT_EQ(rc.rate(), 1'000'000'000u) << "never reached the cap";
  EXPECT_EQ(rc.congestion_epochs(), 0u);
}

TEST(McastRateControl, QueueingDelayCutsAndStartUpEnds) {
  std::mt19937_64 rng(2);
  RateControl rc(RateConfig{.cap_bps = 10'000'000'000, .start_bps = 50'000'000});
  Micros now = 0;
  Epoch(rc, &now, {"a", "b"}, 400, {0.1, 0.1}, {0, 0}, rng);
  Epoch(rc, &now, {"a", "b"}, 400, {0.1, 0.1}, {0, 0}, rng);
  EXPECT_TRUE(rc.starting());
  uint64_t before = rc.rate();
  EXPECT_GT(before, 50'000'000u);
  Epoch(rc, &now, {"a", "b"}, 400, {0.1, 0.1}, {30 * kMillis, 25 * kMillis}, rng);
  EXPECT_FALSE(rc.starting());
  EXPECT_LT(rc.rate(), before);
  EXPECT_EQ(rc.congestion_epochs(), 1u);
}

TEST(McastRateControl, StartUpStepsFromTheFirstClearEpochAndWaitsOnABuildingQueue) {
  // Every clear epoch steps x1.5, the first one too (no epoch is lost at the
  // start rate); reports of a queue over half the target but under it hold
  // the rate (neither a step nor a cut) until they clear or pass the target;
  // one receiver alone with such a queue (its own slow link) does not.
  std::mt19937_64 rng(6);
  RateControl rc(RateConfig{.cap_bps = 10'000'000'000, .start_bps = 50'000'000});
  Micros now = 0;
  Epoch(rc, &now, {"a", "b", "c"}, 400, {0.1, 0, 0}, {0, 1 * kMillis, 0}, rng);
  EXPECT_EQ(rc.rate(), 75'000'000u);
  Epoch(rc, &now, {"a", "b", "c"}, 400, {0.1, 0, 0}, {0, 0, 2 * kMillis}, rng);
  EXPECT_EQ(rc.rate(), 112'500'000u);
  for (int e = 0; e < 3; ++e) {
    Epoch(rc, &now, {"a", "b", "c"}, 400, {0.1, 0, 0}, {0, 6 * kMillis, 7 * kMillis}, rng);
    EXPECT_EQ(rc.rate(), 112'500'000u) << "epoch " << e;
    EXPECT_TRUE(rc.starting());
  }
  Epoch(rc, &now, {"a", "b", "c"}, 400, {0.1, 0, 0}, {0, 1 * kMillis, 8 * kMillis}, rng);
  EXPECT_EQ(rc.rate(), 168'750'000u);
  EXPECT_EQ(rc.congestion_epochs(), 0u);
}

TEST(McastRateControl, DelayOnOneOfThreeNamesItSlowAndKeepsTheRate) {
  std::mt19937_64 rng(3);
  RateControl rc(RateConfig{.cap_bps = 200'000'000});  // --rate: starts at the cap
  Micros now = 0;
  std::vector<std::string> slow;
  for (int e = 0; e < 5; ++e) {
    RateDecision d = Epoch(rc, &now, {"a", "b", "c"}, 800, {0.05, 0.05, 0.8}, {0, 0, 40 * kMillis}, rng);
    slow.insert(slow.end(), d.slow.begin(), d.slow.end());
  }
  EXPECT_EQ(slow, std::vector<std::string>{"c"});
  EXPECT_EQ(rc.rate(), 200'000'000u);
}

TEST(McastRateControl, FollowsABottleneckFromFarAbove) {
  // A 96 Mbit/s bottleneck: above it the receivers see a queue and get the
  // bottleneck's rate; at or under it, no queue and what was sent. 20 %
  // random loss on one of them. Started at 1 Gbit/s (--rate 1G), the rate
  // comes down to the bottleneck and stays within 75-110 % of it.
  std::mt19937_64 rng(4);
  RateControl rc(RateConfig{.cap_bps = 1'000'000'000});
  Micros now = 0;
  const double link = 96e6;
  for (int e = 0; e < 60; ++e) {
    double r = static_cast<double>(rc.rate());
    uint32_t frames = static_cast<uint32_t>(std::min(r, link) / kFrameBits / 10);
    Micros q = r > link ? 20 * kMillis : 0;
    Epoch(rc, &now, {"a", "b"}, frames, {0.0, 0.2}, {q, q}, rng);
    if (e >= 30) {
      EXPECT_LE(static_cast<double>(rc.rate()), 1.1 * link) << "epoch " << e;
      EXPECT_GE(static_cast<double>(rc.rate()), 0.75 * link) << "epoch " << e;
    }
  }
}

TEST(McastRateControl, OneCutDrainsTheQueueThenCruisesAtTheDeliveredRate) {
  // Started at 120 Mbit/s into a 96 Mbit/s bottleneck: the receivers get
  // the bottleneck's rate and report a queue. One cut, to 0.9x what they got,
  // held while the queue drains (reports still show it: no second cut);
  // once it is gone, what they got, then probing up by 1 % per clear epoch.
  std::mt19937_64 rng(5);
  RateControl rc(RateConfig{.cap_bps = 1'000'000'000, .start_bps = 120'000'000});
  Micros now = 0;
  const double link = 96e6;
  const uint32_t frames = static_cast<uint32_t>(link / kFrameBits / 10);
  const double got = frames * double(kFrameBits) * 10;  // what the receivers were delivered, per second
  // The first epoch: a queue building, not yet over the target: start-up waits.
  Epoch(rc, &now, {"a", "b", "c"}, frames, {0, 0, 0}, {6 * kMillis, 4 * kMillis, 7 * kMillis}, rng);
  EXPECT_EQ(rc.rate(), 120'000'000u);
  EXPECT_TRUE(rc.starting());
  Epoch(rc, &now, {"a", "b", "c"}, frames, {0, 0, 0}, {25 * kMillis, 30 * kMillis, 20 * kMillis}, rng);
  EXPECT_FALSE(rc.starting());
  EXPECT_NEAR(double(rc.rate()), 0.9 * got, 1e4);
  for (int e = 0; e < 2; ++e) {
    Epoch(rc, &now, {"a", "b", "c"}, frames, {0, 0, 0}, {15 * kMillis, 12 * kMillis, 14 * kMillis}, rng);
    EXPECT_NEAR(double(rc.rate()), 0.9 * got, 1e4) << "draining, epoch " << e;
  }
  Epoch(rc, &now, {"a", "b", "c"}, frames, {0, 0, 0}, {2 * kMillis, 1 * kMillis, 0}, rng);
  EXPECT_NEAR(double(rc.rate()), got, 1e4);
  uint64_t cruise = rc.rate();
  Epoch(rc, &now, {"a", "b", "c"}, frames, {0, 0, 0}, {0, 0, 0}, rng);
  EXPECT_NEAR(double(rc.rate()), 1.01 * double(cruise), 1e4);
  Epoch(rc, &now, {"a", "b", "c"}, frames, {0, 0, 0}, {0, 0, 0}, rng);
  EXPECT_NEAR(double(rc.rate()), 1.01 * 1.01 * double(cruise), 1e4);
  EXPECT_EQ(rc.congestion_epochs(), 1u);
}

}  // namespace
}  // namespace cm::mcast
