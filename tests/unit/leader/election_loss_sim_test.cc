// cm-leader under random loss on every node's input (the netns bed's
// bed_loss, in the simulator), 0.1 s heartbeat, over many seeds:
//  - steady phase (no fault, 6 s = 60 heartbeats after 4 s of warm-up):
//    nobody but the strongest is ever elected (a false failover) and the
//    leader drops no live member while the loss is under 30%;
//  - then the leader crashes at a random instant: the strongest survivor is
//    the first to lead, never two leaders at once, and everyone follows it;
//    the takeover time (crash to the new leader's election) is measured.
// Prints, per group size and loss: takeover median / 99th percentile / max
// in heartbeats, false failovers and member drops per 10 minutes of
// heartbeats at 0.1 s. CM_SIM_SEEDS=n sets the seeds per cell (20 nodes;
// 5 nodes run 4n, 200 nodes n/100, at least 2); CM_SIM_SEED=s replays one.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "sim_harness.h"

namespace cm::leader::testing {
namespace {

using proto::kMillis;
using proto::kSeconds;
using proto::Micros;

constexpr Micros kBeat = 100 * kMillis;

// One cell's setting: the heartbeat, the network's delay spread (a loaded
// host answers late: its scheduling delay is part of the datagram's delay)
// and the steady phase's length, in heartbeats.
struct Setting {
  Micros beat = kBeat;
  Micros max_delay = sim::NetParams{}.max_delay;
  int steady_beats = 60;
};

struct SeedResult {
  std::string failure;  // empty = the properties held
  Micros takeover = -1;
  int false_failovers = 0;
  int drops = 0;
  Micros double_leader = 0;    // time with two leaders after the crash
  bool weaker_first = false;   // a weaker survivor led before the strongest
};

SeedResult RunLossSeed(uint64_t seed, int n, double loss, const Setting& set) {
  const Micros beat = set.beat;
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(n) * 131 + static_cast<uint64_t>(loss * 1000));
  std::vector<uint32_t> admin(n);
  for (auto& a : admin) a = std::uniform_int_distribution<uint32_t>(1, 255)(rng);
  sim::NetParams net;
  net.max_delay = set.max_delay;
  Sim s(seed, net);
  AddSegment(&s, admin, seed, [&](Config* c) { c->timers = ScaledTimers(beat); });
  for (int i = 0; i < n; ++i) s.SetLoss(i, loss);
  SeedResult r;
  const int best = Best(s);
  // Warm-up: the election at start, registrations, the loss learned.
  s.RunUntil(40 * beat);
  if (s.core(best).state() != State::kLeader) {
    r.failure = "the strongest (node " + std::to_string(best) + ") does not lead after the warm-up\n" + Dump(s);
    return r;
  }
  // Exact membership is promised under 30% loss (docs/protocol/leader.md);
  // at 30% a member may still be joining.
  if (loss < 0.3 && s.core(best).member_table().size() != static_cast<size_t>(n)) {
    r.failure = "the leader holds " + std::to_string(s.core(best).member_table().size()) + " of " +
                std::to_string(n) + " members after the warm-up\n" + Dump(s, 30);
    return r;
  }
  std::vector<size_t> mark(n);
  for (int i = 0; i < n; ++i) mark[i] = s.events(i).size();
  // Steady phase.
  s.RunUntil(40 * beat + set.steady_beats * beat);
  for (int i = 0; i < n; ++i)
    for (size_t k = mark[i]; k < s.events(i).size(); ++k) {
      const std::string& ev = s.events(i)[k];
      if (ev.rfind("elected", 0) == 0) ++r.false_failovers;
      if (i == best && ev.rfind("member-leave", 0) == 0) {
        ++r.drops;
        if (std::getenv("CM_SIM_TRACE")) {
          const uint64_t id = std::strtoull(ev.c_str() + 13, nullptr, 10);
          for (int j = 0; j < n; ++j)
            if (s.core(j).id() == id) {
              std::printf("dropped node %d:\n", j);
              for (const std::string& e : s.events(j)) std::printf("    %s\n", e.c_str());
            }
        }
      }
    }
  if (s.core(best).state() != State::kLeader) {
    r.failure = "the strongest lost the lead without a fault\n" + Dump(s, 60);
    return r;
  }
  // The crash, at a random instant between heartbeats.
  const Micros crash = s.now() + std::uniform_int_distribution<Micros>(0, beat - 1)(rng);
  s.RunUntil(crash);
  s.Crash(best);
  const int next = Best(s);
  int first = -1;
  Micros last_step = crash;
  // CM_SIM_TRACE=1 (with CM_SIM_SEED): every node's events after the crash, timed.
  const bool trace = std::getenv("CM_SIM_TRACE") != nullptr;
  std::vector<size_t> seen(n);
  for (int i = 0; i < n; ++i) seen[i] = s.events(i).size();
  s.RunUntil(crash + 30 * beat, [&] {
    for (int i = 0; trace && i < n; ++i)
      for (; seen[i] < s.events(i).size(); ++seen[i])
        std::printf("%8.4f node %d: %s\n", double(s.now() - crash) / 1e6, i, s.events(i)[seen[i]].c_str());
    int leaders = 0, who = -1;
    for (int i = 0; i < n; ++i)
      if (s.alive(i) && s.core(i).state() == State::kLeader) ++leaders, who = i;
    if (leaders > 1) r.double_leader += s.now() - last_step;
    last_step = s.now();
    if (leaders >= 1 && first < 0) {
      first = who;
      r.takeover = s.now() - crash;
    }
  });
  if (first < 0) {
    r.failure = "no leader 30 heartbeats after the crash\n" + Dump(s, 60);
  } else {
    r.weaker_first = first != next;
    // Everyone follows it (a member may be in the middle of a suspicion its
    // peers will answer: all must follow at some instant of the next 10
    // heartbeats).
    auto all_follow = [&] {
      for (int i = 0; i < n; ++i)
        if (s.alive(i) && s.core(i).leader() != s.core(next).id()) return false;
      return true;
    };
    const Micros end = s.now() + 10 * beat;
    while (!all_follow() && s.now() < end) s.RunUntil(s.now() + beat / 20);
    if (!all_follow()) r.failure = "not everyone follows the new leader 40 heartbeats after the crash\n" + Dump(s, 60);
  }
  return r;
}

void RunCell(int n, double loss, uint64_t seeds, const Setting& set = {}) {
  uint64_t first = 1;
  uint64_t one;
  if (sim::ReplaySeed(&one)) first = one, seeds = 1;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Micros> takeovers;
  int false_failovers = 0, drops = 0, weaker_first = 0, doubled = 0, failed = 0;
  Micros double_leader = 0;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    SeedResult r = RunLossSeed(seed, n, loss, set);
    // Under 30% loss: never two leaders, the strongest survivor first.
    if (r.failure.empty() && loss < 0.3 && r.double_leader > 0) r.failure = "two leaders after the crash";
    if (r.failure.empty() && loss < 0.3 && r.weaker_first) r.failure = "a weaker survivor led first";
    if (!r.failure.empty()) {
      // The first three in full; the rest counted (in the table's columns).
      if (++failed <= 3)
        ADD_FAILURE() << n << " nodes, loss " << loss << ", seed " << seed << ": " << r.failure
                      << "\nreplay: CM_SIM_SEED=" << seed << " cm_leader_tests --gtest_filter='ElectionLoss.*'";
    }
    false_failovers += r.false_failovers;
    drops += r.drops;
    if (r.takeover < 0) continue;
    takeovers.push_back(r.takeover);
    weaker_first += r.weaker_first;
    doubled += r.double_leader > 0;
    double_leader += r.double_leader;
  }
  // Per 10 minutes of heartbeats at 0.1 s (of 1 s: the rate is per 6,000 heartbeats).
  const double steady_s = double(seeds) * set.steady_beats * 0.1;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("| %3d | %2.0f%% | %6llu | %.2f | %.2f | %.2f | %d (%.3f / 10 min) | %d (%.3f / 10 min) | %d (%.1f ms) | %d | %.1f s |\n",
              n, loss * 100, static_cast<unsigned long long>(seeds), Quantile(takeovers, 0.5, set.beat),
              Quantile(takeovers, 0.99, set.beat), Quantile(takeovers, 1.0, set.beat), false_failovers, false_failovers * 600 / steady_s,
              drops, drops * 600 / steady_s, doubled, double(double_leader) / 1e3, weaker_first, secs);
  std::fflush(stdout);
  // Under 30% loss the strongest never loses the lead and keeps every member.
  if (loss < 0.3) {
    EXPECT_EQ(false_failovers, 0) << n << " nodes, loss " << loss;
    EXPECT_EQ(drops, 0) << n << " nodes, loss " << loss;
  }
}

void Header() {
  std::printf("| nodes | loss | seeds | takeover median (heartbeats) | p99 | max | false failovers | member drops | "
              "seeds with two leaders (total time) | weaker first | run time |\n");
}

// 10,000 seeds in all: 1,600 per loss with 5 nodes, 400 with 20, 4 with 200.
TEST(ElectionLoss, FiveNodes) {
  Header();
  for (double loss : {0.0, 0.05, 0.1, 0.2, 0.3}) RunCell(5, loss, SeedsPerCell() * 4);
}

TEST(ElectionLoss, TwentyNodes) {
  Header();
  for (double loss : {0.0, 0.05, 0.1, 0.2, 0.3})
    if (!std::getenv("CM_SIM_LOSS") || std::atof(std::getenv("CM_SIM_LOSS")) == loss) RunCell(20, loss, SeedsPerCell());
}

TEST(ElectionLoss, TwoHundredNodes) {
  Header();
  for (double loss : {0.0, 0.05, 0.1, 0.2, 0.3})
    if (!std::getenv("CM_SIM_LOSS") || std::atof(std::getenv("CM_SIM_LOSS")) == loss)
      RunCell(200, loss, std::max<uint64_t>(2, SeedsPerCell() / 100));
}

// A 1 s heartbeat (the timers do not all scale with it: docs/protocol/leader.md
// "Timing"): 5 and 20 nodes, a tenth of the seeds of FiveNodes.
TEST(ElectionLoss, OneSecondHeartbeat) {
  Header();
  Setting set;
  set.beat = kSeconds;
  for (int n : {5, 20})
    for (double loss : {0.0, 0.1, 0.2})
      RunCell(n, loss, std::max<uint64_t>(10, SeedsPerCell() * (n == 5 ? 4 : 1) / 10), set);
}

// The case of one false failover in the netns kill trials (0.1 s heartbeat,
// 20% loss, five hosts on a loaded machine): the hosts' scheduling delay
// (up to 6 ms here) makes answers to a claim arrive late; long steady phases
// (600 heartbeats a seed).
TEST(ElectionLoss, FiveNodesLoadedHosts) {
  Header();
  Setting set;
  set.max_delay = 6 * kMillis;
  set.steady_beats = 600;
  RunCell(5, 0.2, std::max<uint64_t>(10, SeedsPerCell() / 2), set);
}

}  // namespace
}  // namespace cm::leader::testing
