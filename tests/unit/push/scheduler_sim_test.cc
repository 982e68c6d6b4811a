// The tree scheduler driven by a simulated data plane (scheduler_sim.h) over
// thousands of seeded runs: 2..60 relays, pipeline or store-and-forward,
// random uplinks, notification delays and losses, unreachable relays, crashes
// (children notice late; the CCM hears of it or finds the stall), and leader
// replacement. After every step: one source per relay, no cycles, fan-out
// limits, only eligible relays serve, the scheduler never believes in bytes a
// relay does not hold, NoneLeft only when nobody waits. At the end every live
// relay is complete (or, where notifications can be lost, failed
// "unreachable" by policy) and every unreachable relay is failed.
// Then two simulated-time checks of the design: pipelining reaches every relay
// close to S/B, store-and-forward takes several times longer.
//
// CM_SIM_SEEDS=n runs n seeds; CM_SIM_SEED=s replays one (printed on failure);
// with CM_SIM_VERBOSE=1 the replay traces every event on stderr.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "scheduler_sim.h"
#include "sim/simulator.h"

namespace cm::push::testing {
namespace {

SimParams RandomParams(uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + 17);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  SimParams p;
  p.relays = static_cast<int>(chance(0.75) ? pick(2, 16) : pick(17, 60));
  const uint64_t chunks[] = {64 << 10, 256 << 10, 1 << 20};
  p.chunk = chunks[pick(0, 2)];
  p.size = static_cast<uint64_t>(pick(1, 16)) * p.chunk - static_cast<uint64_t>(pick(0, static_cast<int64_t>(p.chunk) - 1));
  p.opt.pipeline = chance(0.75);
  p.opt.star_max = static_cast<size_t>(pick(0, 4));
  p.opt.ccm_children = static_cast<int>(pick(1, 3));
  p.opt.relay_children = chance(0.6) ? 1 : static_cast<int>(pick(2, 3));
  p.opt.notify_retries = static_cast<int>(pick(1, 4));
  // Uplinks keep a chunk well inside the stall timeout even when shared.
  p.ccm_mbps = static_cast<double>(pick(100, 1000));
  p.relay_mbps_min = static_cast<double>(pick(20, 200));
  p.relay_mbps_max = static_cast<double>(pick(200, 1000));
  p.notify_min = 1 * kMillis;
  p.notify_max = pick(2, 2000) * kMillis;
  p.notify_loss = chance(0.5) ? 0 : static_cast<double>(pick(1, 20)) / 100;
  p.unreachable = chance(0.1) ? static_cast<int>(pick(1, 2)) : 0;
  if (chance(0.5)) {
    p.crashes = static_cast<int>(pick(1, std::max(1, p.relays / 4)));
    p.crash_window = pick(1, 20) * kSeconds;
    p.learn = static_cast<double>(pick(0, 100)) / 100;
    p.replace = static_cast<double>(pick(0, 100)) / 100;
  }
  return p;
}

TEST(SchedulerSim, InvariantsHoldAndEveryLiveRelayCompletes) {
  uint64_t replay = 0;
  const bool one = sim::ReplaySeed(&replay);
  const uint64_t seeds = one ? 1 : sim::SeedCount(3000);
  const char* verbose = std::getenv("CM_SIM_VERBOSE");
  uint64_t steps = 0, crashed = 0, replaced = 0, unreachable_live = 0;
  for (uint64_t k = 0; k < seeds; ++k) {
    const uint64_t seed = one ? replay : k + 1;
    SimParams p = RandomParams(seed);
    p.verbose = one && verbose && *verbose == '1';
    SimOutcome o = PushSim(seed, p).Run();
    steps += o.steps;
    crashed += static_cast<uint64_t>(o.crashed);
    replaced += static_cast<uint64_t>(o.replaced);
    unreachable_live += static_cast<uint64_t>(o.unreachable_live);
    if (!o.ok) {
      ADD_FAILURE() << "seed " << seed << " (replay: CM_SIM_SEED=" << seed << " CM_SIM_VERBOSE=1) relays=" << p.relays
                    << " pipeline=" << p.opt.pipeline << ": " << o.why;
      return;
    }
  }
  std::printf("%llu seeds, %llu data steps, %llu crashes, %llu leaders replaced, %llu live relays unreachable\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(steps),
              static_cast<unsigned long long>(crashed), static_cast<unsigned long long>(replaced),
              static_cast<unsigned long long>(unreachable_live));
}

TEST(SchedulerSim, WithoutFaultsNoRelayFails) {
  const uint64_t seeds = sim::SeedCount(3000) / 3;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    SimParams p = RandomParams(seed);
    p.notify_loss = 0;
    p.unreachable = 0;
    p.crashes = 0;
    SimOutcome o = PushSim(seed, p).Run();
    ASSERT_TRUE(o.ok) << "seed " << seed << ": " << o.why;
    ASSERT_EQ(o.unreachable_live, 0) << "seed " << seed;
  }
}

// Simulated seconds until every relay holds everything.
double Finish(SimParams p) {
  SimOutcome o = PushSim(1, p).Run();
  EXPECT_TRUE(o.ok) << o.why;
  return static_cast<double>(o.finish) / kSeconds;
}

SimParams Uniform(int relays, uint64_t size, double mbps) {
  SimParams p;
  p.relays = relays;
  p.size = size;
  p.chunk = 1 << 20;
  p.ccm_mbps = p.relay_mbps_min = p.relay_mbps_max = mbps;
  p.notify_min = 1 * kMillis;
  p.notify_max = 10 * kMillis;
  return p;
}

TEST(SchedulerSim, PipeliningFiftyRelaysTakesAboutOneUplinkTime) {
  SimParams p = Uniform(50, 1ull << 30, 1000);
  const double sb = static_cast<double>(p.size) / MbitToBytesPerMicro(1000) / kSeconds;
  const double piped = Finish(p);
  p.opt.pipeline = false;
  const double stored = Finish(p);
  std::printf("50 relays, 1 GiB, 1 Gbit/s, 1 MiB chunks: S/B %.2f s, pipelined %.2f s (%.2f x), "
              "store-and-forward %.2f s (%.2f x)\n",
              sb, piped, piped / sb, stored, stored / sb);
  EXPECT_LT(piped, 1.3 * sb);
  EXPECT_GT(stored, 4 * sb);
}

TEST(SchedulerSim, PipeliningFourRelaysAtFortyMbitMeetsTheTarget) {
  SimParams p = Uniform(4, 50ull << 20, 40);
  const double sb = static_cast<double>(p.size) / MbitToBytesPerMicro(40) / kSeconds;
  const double piped = Finish(p);
  p.opt.pipeline = false;
  const double stored = Finish(p);
  p.opt.star_max = 4;
  const double star = Finish(p);
  std::printf("4 relays, 50 MiB, 40 Mbit/s: S/B %.2f s, pipelined %.2f s, store-and-forward %.2f s, star %.2f s\n", sb,
              piped, stored, star);
  EXPECT_LT(piped, 1.3 * sb + 1);
  EXPECT_GT(stored, 2 * sb);
}

}  // namespace
}  // namespace cm::push::testing
