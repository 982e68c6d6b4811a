// The relay core at site level (relay_site_sim.h): one leader and its
// members on virtual time, with lost calls, a failing source and members
// that crash and restart, over many seeds. A failing seed is printed; rerun
// it alone with RELAY_SIM_SEED=N.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "relay_site_sim.h"

namespace cm::push::sim {
namespace {

SiteSimConfig ConfigFor(uint64_t seed) {
  proto::Rng rng(seed * 7919 + 1);
  SiteSimConfig c;
  c.seed = seed;
  c.members = 1 + static_cast<int>(rng() % 8);
  c.stream = rng() % 2;
  c.multicast = rng() % 5 != 0;
  c.loss = 0.02 * static_cast<double>(rng() % 8);
  c.crash = 0.002 * static_cast<double>(rng() % 6);
  return c;
}

struct Tally {
  int reported = 0, with_failures = 0, staged_after_a_fault = 0;
};

void RunSeed(uint64_t seed, Tally* tally = nullptr) {
  SiteSimConfig c = ConfigFor(seed);
  RelaySiteSim sim(c);
  bool ok = sim.Run(sim.ReportBound() + 10 * kSeconds);
  std::string why;
  for (const auto& v : sim.Violations()) why += "\n  " + v;
  ASSERT_TRUE(ok) << "seed " << seed << " (members " << c.members << ", stream " << c.stream << ", multicast "
                  << c.multicast << ", loss " << c.loss << ", crash " << c.crash << "):" << why;
  // Sent after the faults stopped, the report arrives.
  if (*sim.ReportSentAt() >= c.faults_until) {
    ASSERT_FALSE(sim.Reports().empty()) << "seed " << seed;
  }
  if (!tally || sim.Reports().empty()) return;
  ++tally->reported;
  bool failed = false;
  for (const auto& r : sim.Reports()[0].servers) failed = failed || r.state == ServerState::kFailed;
  tally->with_failures += failed;
  tally->staged_after_a_fault += !failed && (c.loss > 0 || c.crash > 0);
}

TEST(RelaySiteSim, WithoutFaultsEveryServerStagesAndOneReportArrives) {
  for (bool stream : {true, false}) {
    for (bool multicast : {true, false}) {
      SiteSimConfig c;
      c.members = 5;
      c.stream = stream;
      c.multicast = multicast;
      c.loss = c.crash = c.source_break = 0;
      RelaySiteSim sim(c);
      ASSERT_TRUE(sim.Run(sim.ReportBound())) << sim.Violations()[0];
      ASSERT_EQ(sim.Reports().size(), 1u);
      for (const auto& s : sim.Reports()[0].servers) EXPECT_EQ(s.state, ServerState::kStaged) << s.name << " " << s.error;
      EXPECT_LT(*sim.ReportSentAt(), 5 * kSeconds);
    }
  }
}

TEST(RelaySiteSim, FaultySitesKeepTheInvariantsOverManySeeds) {
  if (const char* s = std::getenv("RELAY_SIM_SEED")) return RunSeed(std::strtoull(s, nullptr, 10));
  Tally t;
  for (uint64_t seed = 1; seed <= 1000; ++seed) {
    RunSeed(seed, &t);
    if (HasFatalFailure()) return;
  }
  // The fault model bites, and the sites still get through most of the time.
  EXPECT_GT(t.reported, 900) << t.reported;
  EXPECT_GT(t.with_failures, 10) << t.with_failures;
  EXPECT_GT(t.staged_after_a_fault, 100) << t.staged_after_a_fault;
  std::printf("1000 seeds: %d reported, %d with failed servers, %d clean despite faults\n", t.reported,
              t.with_failures, t.staged_after_a_fault);
}

// Issue 12: "a member relay restarted mid-push held the whole commit for
// --member-wait (300 s): its leader never asked it again". Members crash and
// come back within 5 s while the faults last (no lost calls): the leader
// probes the ones that have not reported, asks the restarted ones again, and
// reports every server staged long before member_wait.
TEST(RelaySiteSim, RestartedMembersAreAskedAgainAndTheReportDoesNotWaitForMemberWait) {
  int restarted_runs = 0, staged = 0, servers = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SiteSimConfig c;
    c.seed = seed;
    c.members = 4;
    c.loss = 0;
    c.source_break = 0;
    c.crash = 0.02;
    c.faults_until = 8 * kSeconds;
    c.member_wait = 300 * kSeconds;
    c.stream = seed % 2;
    c.multicast = seed % 3 != 0;
    RelaySiteSim sim(c);
    ASSERT_TRUE(sim.Run(sim.ReportBound())) << "seed " << seed << ": " << sim.Violations()[0];
    ASSERT_EQ(sim.Reports().size(), 1u) << "seed " << seed;
    EXPECT_LT(*sim.ReportSentAt(), c.faults_until + 30 * kSeconds) << "seed " << seed;
    // Staged, or down for member_retry when it was expected or probed.
    for (const auto& s : sim.Reports()[0].servers) {
      if (s.state == ServerState::kStaged) {
        ++staged;
        continue;
      }
      EXPECT_EQ(s.error.rfind("unreachable", 0), 0u) << "seed " << seed << ": " << s.name << " " << s.error;
    }
    servers += sim.Reports()[0].servers.size();
    restarted_runs += sim.Restarts() > 0;
    if (HasFailure()) return;
  }
  EXPECT_GT(restarted_runs, 100);  // the fault bites
  EXPECT_GT(staged, servers * 9 / 10) << staged << " of " << servers;
}

}  // namespace
}  // namespace cm::push::sim
