// The election properties over thousands of seeded runs with random faults
// (loss, delay, duplication, partitions, one-way blocks, crashes, restarts),
// checked after every simulator step:
//  1. never two leaders heartbeating while directly connected both ways for
//     longer than one dead interval (plus one voting window);
//  2. after the last fault, within a bound, every live node follows one
//     leader, and it is the strongest live node (priority, then id);
//  3. the leader's member list is exactly the live membership.
// CM_SIM_SEEDS=n runs n seeds; CM_SIM_SEED=s replays one (printed on failure).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>

#include "sim_harness.h"

namespace cm::leader::testing {
namespace {

using proto::kSeconds;
using proto::Micros;

struct Outcome {
  bool ok = true;
  std::string why;
  uint64_t steps = 0;
};

Outcome RunSeed(uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };

  const int n = seed % 2000 == 1 ? 200 : pick(2, 10);
  std::vector<uint32_t> admin(n);
  const bool ties = chance(0.3);
  for (auto& a : admin) a = ties ? (chance(0.5) ? 100 : 150) : static_cast<uint32_t>(pick(1, 255));

  sim::NetParams net;
  net.loss = chance(0.5) ? 0 : pick(0, 5) / 100.0;
  net.duplicate = pick(0, 5) / 100.0;
  net.min_delay = 50;
  net.max_delay = pick(200, 5000);
  Sim s(seed, net);
  std::vector<Config> cfgs = AddSegment(&s, admin, seed);
  const Timers t = cfgs[0].timers;
  const Micros dead = t.DeadInterval();

  Outcome res;
  std::map<std::pair<int, int>, Micros> co_leaders;
  std::vector<double> extra(n, 0);
  auto check_step = [&]() {
    ++res.steps;
    if (!res.ok) return;
    std::vector<int> leaders;
    for (int i = 0; i < n; ++i)
      if (s.alive(i) && s.core(i).state() == State::kLeader) leaders.push_back(i);
    for (auto it = co_leaders.begin(); it != co_leaders.end();) {
      auto [a, b] = it->first;
      bool still = s.alive(a) && s.alive(b) && s.core(a).state() == State::kLeader &&
                   s.core(b).state() == State::kLeader && !s.blocked(a, b) && !s.blocked(b, a) && extra[a] == 0 &&
                   extra[b] == 0;
      it = still ? std::next(it) : co_leaders.erase(it);
    }
    for (size_t x = 0; x < leaders.size(); ++x)
      for (size_t y = x + 1; y < leaders.size(); ++y) {
        int a = leaders[x], b = leaders[y];
        if (s.blocked(a, b) || s.blocked(b, a) || extra[a] > 0 || extra[b] > 0) continue;
        auto [it, fresh] = co_leaders.try_emplace({a, b}, s.now());
        if (!fresh && s.now() - it->second > dead + t.vote_max) {
          res.ok = false;
          res.why = "nodes " + std::to_string(a) + " and " + std::to_string(b) + " both lead since " +
                    std::to_string(it->second) + " us, now " + std::to_string(s.now()) + "\n" + Dump(s, 40);
        }
      }
  };

  // Faults during the first 15 s.
  const Micros fault_end = 15 * kSeconds;
  Micros now = 0;
  while (res.ok) {
    now += pick(100, 3000) * proto::kMillis;
    if (now >= fault_end) break;
    s.RunUntil(now, check_step);
    switch (pick(0, 6)) {
      case 0: {  // crash, keeping at least one node alive
        int v = pick(0, n - 1);
        int live = 0;
        for (int i = 0; i < n; ++i) live += s.alive(i);
        if (s.alive(v) && live > 1) s.Crash(v);
        break;
      }
      case 1: {  // the leader crashes (most interesting)
        for (int i = 0; i < n; ++i)
          if (s.alive(i) && s.core(i).state() == State::kLeader && chance(0.7)) {
            s.Crash(i);
            break;
          }
        break;
      }
      case 2: {  // restart a crashed node
        int v = pick(0, n - 1);
        if (!s.alive(v)) s.Restart(v, std::make_unique<Election>(cfgs[v]));
        break;
      }
      case 3: {  // split into two sides
        std::vector<std::vector<int>> sides(2);
        for (int i = 0; i < n; ++i) sides[pick(0, 1)].push_back(i);
        s.Heal();
        s.Partition(sides);
        break;
      }
      case 4: {  // one-way block
        int a = pick(0, n - 1), b = pick(0, n - 1);
        if (a != b) s.Block(a, b);
        break;
      }
      case 5: {  // extra loss at one node
        int v = pick(0, n - 1);
        extra[v] = chance(0.5) ? 0 : pick(5, 40) / 100.0;
        s.SetLoss(v, extra[v]);
        break;
      }
      case 6:
        s.Heal();
        break;
    }
  }
  // The last fault: heal everything, loss off.
  s.RunUntil(fault_end, check_step);
  s.Heal();
  s.net().loss = 0;
  for (int i = 0; i < n; ++i) {
    extra[i] = 0;
    s.SetLoss(i, 0);
  }
  // The bound: pre-emption back-off (4 dead intervals) + an election +
  // member expiry (at most member_expiry_max: a member lost at 40% before it
  // crashed is waited for longer) + the list period, with margin.
  const Micros settle = 5 * dead + t.member_expiry_max + t.list_period + 2 * t.interval;
  s.RunUntil(fault_end + settle, check_step);
  if (!res.ok) return res;

  const int best = Best(s);
  if (best < 0) return res;  // nobody alive with a priority
  for (int i = 0; i < n; ++i) {
    if (!s.alive(i)) continue;
    if (s.core(i).leader() != s.core(best).id()) {
      res.ok = false;
      res.why = "node " + std::to_string(i) + " follows " + std::to_string(s.core(i).leader()) + ", best is node " +
                std::to_string(best);
      return res;
    }
  }
  std::vector<uint64_t> live;
  for (int i = 0; i < n; ++i)
    if (s.alive(i)) live.push_back(s.core(i).id());
  if (s.core(best).members() != live) {
    res.ok = false;
    res.why = "leader's member list has " + std::to_string(s.core(best).members().size()) + " ids, " +
              std::to_string(live.size()) + " nodes live";
  }
  return res;
}

TEST(ElectionProperty, OneStrongestLeaderAndExactMembershipAfterFaults) {
  uint64_t first = 1, count = sim::SeedCount(10000);
  uint64_t replay;
  if (sim::ReplaySeed(&replay)) first = replay, count = 1;
  auto t0 = std::chrono::steady_clock::now();
  uint64_t steps = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    Outcome o = RunSeed(seed);
    steps += o.steps;
    if (!o.ok) {
      ADD_FAILURE() << "seed " << seed << ": " << o.why << "\nreplay: CM_SIM_SEED=" << seed
                    << " cm_leader_tests --gtest_filter='ElectionProperty.*'";
      if (count == 1) {
        // Replaying: show the final state of every node.
      }
      break;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%llu seeds, %llu steps, %.1f s\n", static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(steps), secs);
}

}  // namespace
}  // namespace cm::leader::testing
