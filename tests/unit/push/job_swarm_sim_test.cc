// Job mode in the flow-level simulator (job_swarm_sim.h): the real node and
// base cores on a fluid network of sites. Completion is checked on every
// seed; times are simulated (not wall clock) and are printed as ratios to the
// fluid lower bound and to tree mode for docs/BENCHMARKS.md.
#include "job_swarm_sim.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include <cstdio>
#include <cstdlib>

namespace cm::push::testing {
namespace {

double Sec(Micros t) { return static_cast<double>(t) / kSeconds; }

void Print(const char* what, const SwarmResult& r) {
  std::printf("%-40s all %.2fs (bound %.2fs, x%.2f) fast %.2fs (x%.2f of S/B) slow %.2fs (x%.2f of S/B_slow) "
              "switches %d crashed %d (last done %.2fs) repaired %d\n",
              what, Sec(r.end), r.bound_all, Sec(r.end) / r.bound_all, Sec(r.fast_done), Sec(r.fast_done) / r.bound_fast,
              Sec(r.slow_done), r.bound_slow > 0 ? Sec(r.slow_done) / r.bound_slow : 0, r.switches, r.crashed,
              Sec(r.crashed_done), r.repaired);
}

TEST(JobSwarm, EqualSitesFinishNearOneUplinkTime) {
  SwarmParams p;  // 3 sites x 4, 30 Mbit/s, 50 MiB
  p.delay_min = 1 * kMillis;
  p.delay_max = 10 * kMillis;
  SwarmResult r = SwarmSim(1, p).Run();
  Print("3x4 equal", r);
  ASSERT_TRUE(r.all_live_done);
  EXPECT_LT(Sec(r.end), 1.1 * r.tree_all + 0.5);
}

// The bench's scenario (b): the first site in the sites file at one sixth.
TEST(JobSwarm, ASlowSiteHoldsBackOnlyItself) {
  struct Case {
    const char* name;
    bool measured, switching;
  };
  SwarmResult results[4];
  Case cases[] = {{"slow first, rates measured, switching", true, true},
                  {"slow first, rates measured, no switching", true, false},
                  {"slow first, not measured, switching", false, true},
                  {"slow first, not measured, no switching", false, false}};
  for (int i = 0; i < 4; ++i) {
    SwarmParams p;
    p.slow_sites = 1;
    p.slow_div = 6;
    p.delay_min = 1 * kMillis;
    p.delay_max = 10 * kMillis;
    p.measured = cases[i].measured;
    p.switching = cases[i].switching;
    results[i] = SwarmSim(2, p).Run();
    Print(cases[i].name, results[i]);
    ASSERT_TRUE(results[i].all_live_done) << cases[i].name;
  }
  const SwarmResult& best = results[0];
  // The targets of the issue, in the model: fast sites within 1.3 S/B + 1 s,
  // the slow one within 1.2 S/B_slow.
  EXPECT_LE(Sec(best.fast_done), 1.3 * best.bound_fast + 1);
  EXPECT_LE(Sec(best.slow_done), 1.2 * best.bound_slow);
  // Rate ordering helps the fast sites; without it, switching does.
  EXPECT_LT(Sec(results[0].fast_done), 0.5 * Sec(results[3].fast_done));
  EXPECT_LT(Sec(results[2].fast_done), 0.5 * Sec(results[3].fast_done));
  EXPECT_LE(Sec(results[2].fast_done), 1.3 * best.bound_fast + 1);
  EXPECT_GT(results[2].switches, 0);
}

// The simulator case: 1,000 nodes in 100 sites of 10, 10 % of the
// sites at one tenth of the others' uplink, random delays, lost calls and ten
// crashes with restarts; against the same network driven as tree mode.
// Mixed uplinks (1, 1/2, 1/4, 1/8 of the fast rate, in random sites-file
// orders), rates measured (a base in service): every site finishes near its
// own S/B, the fast ones within 1.3 S/B + 1 s and the others within 1.2 x
// their own. Printed also without measured rates (a base's first job), where
// a slow site first in the file holds the fast ones back until switching.
TEST(JobSwarm, MixedUplinksEachSiteNearItsOwnRate) {
  std::mt19937 order(11);
  for (int round = 0; round < 6; ++round) {
    std::vector<double> divs = {1, 1, 2, 4, 8};
    std::shuffle(divs.begin(), divs.end(), order);
    for (bool measured : {true, false}) {
      SwarmParams p;
      p.site_div = divs;
      p.sites = static_cast<int>(divs.size());
      p.size = 30ull << 20;
      p.delay_min = 1 * kMillis;
      p.delay_max = 10 * kMillis;
      p.measured = measured;
      SwarmResult r = SwarmSim(100 + round, p).Run();
      ASSERT_TRUE(r.all_live_done);
      std::map<size_t, Micros> site_done;
      for (size_t i = 0; i < r.done_at.size(); ++i) site_done[r.site[i]] = std::max(site_done[r.site[i]], r.done_at[i]);
      std::string line;
      for (const auto& [s, t] : site_done) {
        double own = static_cast<double>(p.size) / r.site_bps[s];
        char buf[64];
        std::snprintf(buf, sizeof buf, " 1/%g:%.2f", divs[s], Sec(t) / own);
        line += buf;
        if (measured) {
          double limit = divs[s] == 1 ? 1.3 * own + 1 : 1.2 * own;
          EXPECT_LE(Sec(t), limit) << "site " << s << " at 1/" << divs[s] << " (round " << round << ")";
        }
      }
      std::printf("mixed uplinks, %s: each site's time over its own S/B:%s\n",
                  measured ? "rates measured    " : "rates not measured", line.c_str());
    }
  }
}

TEST(JobSwarm, ThousandNodesHeterogeneousUplinksAndCrashes) {
  SwarmParams p;
  p.sites = 100;
  p.per_site = 10;
  for (int s = 3; s < 100; s += 10) p.slow_list.push_back(s);  // 10 % of the sites
  p.slow_div = 10;
  p.size = 20ull << 20;
  p.delay_min = 1 * kMillis;
  p.delay_max = 40 * kMillis;
  p.ctl_loss = 0.01;
  p.alloc_every = 5;
  SwarmParams tree = p;
  tree.tree_mode = true;
  SwarmResult t = SwarmSim(1, tree).Run();
  Print("1000 nodes: tree mode (same network)", t);
  ASSERT_TRUE(t.all_live_done);
  p.crashes = 10;
  p.crash_min = 1 * kSeconds;
  p.crash_max = 8 * kSeconds;
  p.down_for = 5 * kSeconds;
  for (bool measured : {true, false}) {
    p.measured = measured;
    SwarmResult r = SwarmSim(1, p).Run();
    Print(measured ? "1000 nodes: job mode, rates measured" : "1000 nodes: job mode, not measured", r);
    EXPECT_TRUE(r.all_live_done);
    EXPECT_EQ(r.crashed, 10);
    // Fast sites are not held to the slow ones as tree mode's chain is.
    EXPECT_LT(Sec(r.fast_done), 0.5 * Sec(t.fast_done));
  }
}

TEST(JobSwarm, ManySeedsEveryLiveNodeCompletes) {
  int failures = 0;
  uint64_t only = std::getenv("CM_SIM_SEED") ? std::strtoull(std::getenv("CM_SIM_SEED"), nullptr, 10) : 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    if (only && seed != only) continue;
    SwarmParams p;
    std::mt19937_64 rng(seed);
    p.sites = 2 + static_cast<int>(rng() % 8);
    p.per_site = 1 + static_cast<int>(rng() % 5);
    p.slow_sites = static_cast<int>(rng() % 3);
    p.slow_div = 2 + static_cast<double>(rng() % 9);
    p.size = (1 + rng() % 8) << 20;
    p.delay_max = static_cast<Micros>(1 + rng() % 50) * kMillis;
    p.loss = (rng() % 3) * 0.001;
    p.ctl_loss = (rng() % 3) * 0.02;
    p.crashes = static_cast<int>(rng() % 3);
    p.crash_max = 3 * kSeconds;
    p.down_for = (rng() % 2) ? 4 * kSeconds : 0;
    p.measured = rng() % 2;
    p.switching = rng() % 4 != 0;
    p.limit = 600 * kSeconds;
    SwarmResult r = SwarmSim(seed, p).Run();
    if (!r.all_live_done) {
      ++failures;
      ADD_FAILURE() << "seed " << seed << ": not every live node completed";
    }
  }
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace cm::push::testing

namespace cm::push::testing {
namespace {
// For exploring by hand: CM_SIM_SITES, _PER, _SLOW (comma list), _DIV, _MIB,
// _DELAY_MS, _CRASHES, _MEASURED, _SWITCH, _TREE, _LOSS, _CTL_LOSS.
double Env(const char* name, double dflt) {
  const char* v = std::getenv(name);
  return v ? std::strtod(v, nullptr) : dflt;
}
TEST(JobSwarm, DISABLED_Explore) {
  SwarmParams p;
  p.sites = static_cast<int>(Env("CM_SIM_SITES", 3));
  p.per_site = static_cast<int>(Env("CM_SIM_PER", 4));
  if (const char* slow = std::getenv("CM_SIM_SLOW")) {
    for (const char* c = slow; *c;) {
      p.slow_list.push_back(static_cast<int>(std::strtol(c, const_cast<char**>(&c), 10)));
      if (*c == ',') ++c;
    }
  }
  if (const char* divs = std::getenv("CM_SIM_DIVS")) {  // each site's divisor: "1,1,2,4,8"
    for (const char* c = divs; *c;) {
      p.site_div.push_back(std::strtod(c, const_cast<char**>(&c)));
      if (*c == ',') ++c;
    }
    p.sites = static_cast<int>(p.site_div.size());
  }
  p.slow_div = Env("CM_SIM_DIV", 6);
  p.size = static_cast<uint64_t>(Env("CM_SIM_MIB", 50)) << 20;
  p.delay_max = static_cast<Micros>(Env("CM_SIM_DELAY_MS", 1) * kMillis);
  p.crashes = static_cast<int>(Env("CM_SIM_CRASHES", 0));
  p.crash_max = static_cast<Micros>(Env("CM_SIM_CRASH_MAX", 5) * kSeconds);
  p.measured = Env("CM_SIM_MEASURED", 1) != 0;
  p.switching = Env("CM_SIM_SWITCH", 1) != 0;
  p.tree_mode = Env("CM_SIM_TREE", 0) != 0;
  p.loss = Env("CM_SIM_LOSS", 0);
  p.ctl_loss = Env("CM_SIM_CTL_LOSS", 0);
  p.alloc_every = static_cast<int>(Env("CM_SIM_ALLOC", 1));
  SwarmResult r = SwarmSim(static_cast<uint64_t>(Env("CM_SIM_SEED", 1)), p).Run();
  Print("explore", r);
  size_t last = 0;
  for (size_t i = 0; i < r.done_at.size(); ++i) {
    if (!r.slow[i] && r.done_at[i] > r.done_at[last] && r.done_at[i] <= r.fast_done) last = i;
  }
  std::printf("last fast node %zu at %.2fs\n", last, Sec(r.done_at[last]));
  std::map<size_t, Micros> site_done;
  for (size_t i = 0; i < r.done_at.size(); ++i) site_done[r.site[i]] = std::max(site_done[r.site[i]], r.done_at[i]);
  for (const auto& [s, t] : site_done) {
    double own = static_cast<double>(p.size) / r.site_bps[s];
    std::printf("site %zu: %.2fs = %.2f x its S/B (%.2fs)\n", s, Sec(t), Sec(t) / own, own);
  }
}
}  // namespace
}  // namespace cm::push::testing
