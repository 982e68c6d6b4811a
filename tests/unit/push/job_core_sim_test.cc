// The CCM's JobCore with simulated relays (job_sim.h) over many seeds: up to
// 8 sites x 6 servers, one or two parts, star or tree, pipeline or
// store-and-forward or sequential, commit or not, lost requests and calls, dead relays.
// After every step: one verdict per server per serial, no order to a server
// outside the job, no site closed by a replaced leader; at the end every
// server has a verdict, a committed server staged every part, and the job
// ended within a bound after the faults stopped.
//
// CM_SIM_SEEDS=n runs n seeds; CM_SIM_SEED=s replays one (printed on failure).
#include <gtest/gtest.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>

#include "job_sim.h"
#include "sim/simulator.h"

namespace cm::push::testing {
namespace {

JobSimParams RandomParams(uint64_t seed, bool faults) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + 29);
  auto pick = [&](int lo, int hi) { return static_cast<int>(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  JobSimParams p;
  p.sites = pick(1, 8);
  p.servers = pick(1, 6);
  p.parts = pick(1, 2);
  p.chunks = static_cast<uint64_t>(pick(1, 12));
  p.star_max = static_cast<size_t>(pick(1, 4));
  p.pipeline = pick(0, 3) > 0;
  p.commit = pick(0, 4) > 0;
  p.sequential = pick(0, 7) == 0;
  const char* req[] = {"all", "quorum", "50%", "1"};
  p.require = req[pick(0, 3)];
  if (faults) {
    p.loss_rate = pick(0, 30) / 100.0;
    p.crashes = pick(0, (p.sites * p.servers) / 2);
    p.fault_end = pick(0, 30) * kSeconds;
  }
  return p;
}

void RunSeeds(bool faults, uint64_t dflt) {
  const char* one = std::getenv("CM_SIM_SEED");
  const uint64_t seeds = one ? 1 : sim::SeedCount(dflt);
  uint64_t steps = 0, replaced = 0, calls = 0, ok = 0, servers = 0;
  Micros tail = 0;  // the longest time from the faults' end to the job's
  for (uint64_t k = 0; k < seeds; ++k) {
    const uint64_t seed = one ? std::strtoull(one, nullptr, 10) : k + 1;
    JobSimParams p = RandomParams(seed, faults);
    JobSimOutcome o = JobSim(seed, p).Run();
    steps += o.steps;
    tail = std::max(tail, o.end - p.fault_end);
    replaced += o.replaced;
    calls += o.calls;
    ok += o.ok_servers;
    servers += static_cast<uint64_t>(p.sites * p.servers);
    ASSERT_TRUE(o.ok) << "seed " << seed << " (CM_SIM_SEED=" << seed << "): " << o.why << " [" << p.sites << "x"
                      << p.servers << " parts " << p.parts << " star_max " << p.star_max << " pipeline " << p.pipeline << " sequential " << p.sequential
                      << " loss " << p.loss_rate << " crashes " << p.crashes << "]";
    if (!faults) {
      EXPECT_EQ(o.ok_servers, static_cast<size_t>(p.sites * p.servers)) << "seed " << seed;
    }
  }
  std::printf("%llu seeds, %llu steps, %llu calls, %llu leaders replaced, %llu of %llu servers ok, ended <= %.1f s after the faults\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(steps),
              static_cast<unsigned long long>(calls), static_cast<unsigned long long>(replaced),
              static_cast<unsigned long long>(ok), static_cast<unsigned long long>(servers),
              static_cast<double>(tail) / kSeconds);
}

TEST(JobCoreSim, WithoutFaultsEveryServerSucceeds) { RunSeeds(false, 300); }

TEST(JobCoreSim, WithLostCallsAndDeadRelaysTheInvariantsHoldAndTheJobEnds) { RunSeeds(true, 1000); }

}  // namespace
}  // namespace cm::push::testing
