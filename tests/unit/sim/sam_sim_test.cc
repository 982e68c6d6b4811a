// SAM ordering (lib/leader/sam.h) over thousands of seeded runs of one site
// (3 to 30 members) in the deterministic simulator. Faults during the first
// kFaultEnd of virtual time: datagram loss, duplication and reordering;
// per-member extra loss, one-way blocks and partitions; crashes and
// restarts of any member (a restart restores what the member had written to
// stable storage); fail-overs of the sequencer (some with the old one not
// told, some with an equal epoch), crashes of the sequencer between assign
// and commit, the commit servers reduced below the commit quorum (k-1 with
// the default 3 servers and k=2) for a while, and a member joining with
// empty storage during a fail-over (it installs a checkpoint).
//
// Checked after EVERY step:
//  - an id is committed at one number only (no no-op counts);
//  - every member's applied sequence is a prefix of one global sequence: each
//    number it applies matches what any member applied or any sequencer
//    committed there, and its state hash equals the hash of the global
//    prefix (so a checkpoint it installed is right too); it never goes back;
//  - no two different ids are committed at one number;
//  - while fewer than commit_quorum commit servers are alive, no number
//    assigned after they fell commits (numbers acknowledged before may).
// After the last fault heals (network faults cleared, crashed members
// restarted but at most one non-commit member, one sequencer): every live
// member applies up to the newest committed number within kCatchUpBound of
// virtual time. The test prints the worst catch-up time it saw.
// CM_SIM_SEEDS=n runs n seeds; CM_SIM_SEED=s replays one (printed on failure).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>

#include "leader/sam.h"
#include "sim/simulator.h"

namespace cm::leader {
namespace {

using proto::kMillis;
using proto::kSeconds;
using proto::Micros;
using Sim = sim::Simulator<Sam>;

// The normal build runs 10,000 seeds (about 18 s); under AddressSanitizer
// (scripts/test's first pass, ~40x slower here) 1,000: the full count
// runs in the second pass.
#if defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kSeeds = 1000;
#else
constexpr uint64_t kSeeds = 10000;
#endif
constexpr Micros kFaultEnd = 6 * kSeconds;
// After the last fault heals every live member has applied the newest
// committed number within this much virtual time (docs/protocol/ordering.md).
constexpr Micros kCatchUpBound = 5 * kSeconds;
constexpr uint64_t kUnset = UINT64_MAX;

const proto::Address kGroup{0xefff0101, 7500};
proto::Address Addr(int i) { return proto::Address{0xc6130000u + static_cast<uint32_t>(i + 1), 7500}; }
uint64_t IdOf(int i) { return 100 + static_cast<uint64_t>(i); }

struct Outcome {
  bool ok = true;
  std::string why;
  Micros catch_up = 0;
  uint64_t committed = 0, installs = 0, steps = 0;
  // Which of the special faults this run had.
  bool crashed_between = false, reduced = false, joined = false, joiner_installed = false;
};

struct SiteRun {
  explicit SiteRun(uint64_t seed) : seed(seed), rng(seed ^ 0x5a5a5a5a12345678ull), s(seed, Net()) {}

  sim::NetParams Net() {
    sim::NetParams net;
    net.loss = chance(0.4) ? 0 : pick(1, 8) / 100.0;
    net.duplicate = pick(0, 5) / 100.0;
    net.min_delay = 50;
    net.max_delay = pick(300, 3000);
    return net;
  }
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

  uint64_t seed;
  std::mt19937_64 rng;
  Sim s;
  SamConfig base;
  int slots = 0;                     // members configured (the joiner's slot included)
  std::vector<int> node;             // slot -> simulator node (-1 = not started)
  std::vector<SamStable> disk;       // slot -> what survived its last crash
  int quorum = 0;
  // The checker's view.
  std::vector<uint64_t> global{0};  // number -> id (global[0] unused)
  std::vector<uint64_t> ghash{0};   // hash of the global prefix 1..n, while contiguous
  uint64_t gmax = 0;                // highest committed number anywhere
  std::map<uint64_t, uint64_t> number_of;  // id -> its number (an id is numbered once)
  std::vector<uint64_t> seen_delivered, seen_installs, seen_commits;
  Micros stall_from = proto::kNever, stall_to = proto::kNever;
  uint64_t stall_limit = 0;  // numbers at or above it were assigned after the reduction
  Outcome res;

  int leader = -1;  // slot
  uint64_t epoch = 0;

  bool Fail(const std::string& why) {
    if (res.ok) {
      res.ok = false;
      res.why = "t=" + std::to_string(s.now()) + "us: " + why;
    }
    return false;
  }

  bool Set(uint64_t seq, uint64_t id, const char* who, int slot) {
    if (seq >= global.size()) global.resize(seq + 1, kUnset);
    if (global[seq] == kUnset) {
      global[seq] = id;
      if (id != 0) {
        auto [it, fresh] = number_of.try_emplace(id, seq);
        if (!fresh)
          return Fail("id " + std::to_string(id) + " is in the global sequence twice: at " + std::to_string(it->second) +
                      " and " + std::to_string(seq));
      }
    } else if (global[seq] != id) {
      return Fail(std::string(who) + " at slot " + std::to_string(slot) + ": number " + std::to_string(seq) +
                  " is id " + std::to_string(id) + " but the global sequence has " + std::to_string(global[seq]));
    }
    return true;
  }
  // Hash of the global prefix 1..n; false when a number in it is unknown.
  bool PrefixHash(uint64_t n, uint64_t* h) {
    while (ghash.size() <= n) {
      const uint64_t k = ghash.size();
      if (k >= global.size() || global[k] == kUnset) return false;
      ghash.push_back(sam::ChainHash(ghash.back(), k, global[k]));
    }
    *h = ghash[n];
    return true;
  }

  SamConfig ConfigFor(int slot) const {
    SamConfig c = base;
    c.id = IdOf(slot);
    c.rng_seed = seed * 7919 + static_cast<uint64_t>(slot) * 104729 + 1;
    return c;
  }

  void StartSlot(int slot) {
    auto core = std::make_unique<Sam>(ConfigFor(slot), disk[slot]);
    if (node[slot] < 0) {
      node[slot] = s.AddNode(Addr(slot), std::move(core));
    } else {
      s.Restart(node[slot], std::move(core));
    }
    seen_installs[slot] = 0;
    seen_commits[slot] = 0;
    seen_delivered[slot] = disk[slot].delivered;
  }
  void CrashSlot(int slot) {
    if (node[slot] < 0 || !s.alive(node[slot])) return;
    disk[slot] = s.core(node[slot]).stable();  // the edge wrote it after its last call (I4)
    s.Crash(node[slot]);
  }
  bool Up(int slot) const { return node[slot] >= 0 && s.alive(node[slot]); }
  Sam& Core(int slot) { return s.core(node[slot]); }

  int AliveCommitServers() {
    int n = 0;
    for (uint64_t id : base.commit_servers)
      if (Up(static_cast<int>(id - 100))) ++n;
    return n;
  }

  void Lead(int slot, uint64_t e) {
    leader = slot;
    epoch = std::max(epoch, e);
    Core(slot).OnLeadership(true, e);
  }
  // The election picks another live member; the old one is told (usually).
  void FailOver(bool tell_old, bool same_epoch) {
    std::vector<int> live;
    for (int i = 0; i < slots; ++i)
      if (Up(i) && i != leader) live.push_back(i);
    if (live.empty()) return;
    const int old = leader;
    const int next = live[pick(0, static_cast<int>(live.size()) - 1)];
    if (old >= 0 && Up(old) && tell_old) Core(old).OnLeadership(false, 0);
    Lead(next, same_epoch && epoch > 0 ? epoch : epoch + 1);
  }

  void CheckStep() {
    ++res.steps;
    if (!res.ok) return;
    for (int i = 0; i < slots; ++i) {
      if (!Up(i)) continue;
      Sam& c = Core(i);
      // Commits by this member as sequencer.
      if (c.commits() != seen_commits[i]) {
        const auto& log = c.commit_log();
        const uint64_t fresh = c.commits() - seen_commits[i];
        for (size_t k = log.size() - std::min<uint64_t>(fresh, log.size()); k < log.size(); ++k) {
          if (!Set(log[k].seq, log[k].id, "commit", i)) return;
          gmax = std::max(gmax, log[k].seq);
          if (s.now() >= stall_from && s.now() < stall_to && log[k].seq >= stall_limit)
            Fail("number " + std::to_string(log[k].seq) + " (assigned after the commit servers fell below " +
                 std::to_string(quorum) + ") committed");
        }
        seen_commits[i] = c.commits();
      }
      if (c.conflicts()) {
        Fail("slot " + std::to_string(i) + " heard two ids committed at one number");
        return;
      }
      const uint64_t d = c.delivered();
      if (d == seen_delivered[i] && c.installs() == seen_installs[i]) continue;
      if (d < seen_delivered[i]) {
        Fail("slot " + std::to_string(i) + " went back from " + std::to_string(seen_delivered[i]) + " to " +
             std::to_string(d));
        return;
      }
      const SamStable& st = c.stable();
      const uint64_t from = c.installs() != seen_installs[i] ? st.install_floor : seen_delivered[i];
      for (uint64_t n = from + 1; n <= d; ++n) {
        auto it = st.log.find(n);
        if (it == st.log.end()) {
          Fail("slot " + std::to_string(i) + " applied " + std::to_string(n) + " without a log entry");
          return;
        }
        if (!Set(n, it->second, "apply", i)) return;
      }
      uint64_t h = 0;
      if (!PrefixHash(d, &h)) {
        Fail("slot " + std::to_string(i) + " is at " + std::to_string(d) + " but the global prefix has a hole");
        return;
      }
      if (h != c.state_hash()) {
        Fail("slot " + std::to_string(i) + " state hash at " + std::to_string(d) +
             " differs from the global prefix (gap, duplicate, reorder or a wrong checkpoint)");
        return;
      }
      gmax = std::max(gmax, d);
      seen_delivered[i] = d;
      seen_installs[i] = c.installs();
    }
  }

  Outcome Go() {
    // The site.
    const bool joiner = chance(0.5);
    const int r = pick(0, 9);  // members at the start; with the joiner at most 30
    const int n = r < 6 ? pick(3, 8) : r < 9 ? pick(9, 16) : pick(17, joiner ? 29 : 30);
    slots = n + (joiner ? 1 : 0);
    const int servers = (n >= 7 && chance(0.3)) ? 5 : 3;
    base.group = kGroup;
    base.copies = servers == 5 && chance(0.5) ? 3 : 2;
    base.checkpoint_every = static_cast<uint64_t>(pick(4, 12));
    base.max_repairs = pick(2, 4);
    for (int i = 0; i < slots; ++i) base.members.push_back({IdOf(i), Addr(i)});
    std::vector<int> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (int i = 0; i < servers; ++i) base.commit_servers.push_back(IdOf(order[i]));
    quorum = std::max(base.copies, servers / 2 + 1);
    node.assign(slots, -1);
    disk.assign(slots, SamStable{});
    seen_delivered.assign(slots, 0);
    seen_installs.assign(slots, 0);
    seen_commits.assign(slots, 0);
    for (int i = 0; i < n; ++i) StartSlot(i);
    const std::function<void()> check = [this] { CheckStep(); };
    auto run_to = [&](Micros t) { s.RunUntil(t, check); };

    // Scenario times.
    const bool crash_between = chance(0.5);
    const Micros crash_arm = pick(1000, 4000) * kMillis;
    const bool reduce = chance(0.4);
    const Micros reduce_at = pick(1000, 4000) * kMillis, reduce_len = pick(500, 1500) * kMillis;
    const Micros join_at = pick(3000, 5500) * kMillis;
    uint64_t next_id = 1;

    Lead(pick(0, n - 1), 1);
    bool armed = false, reduced = false, joined = !joiner;
    std::vector<int> reduced_slots;
    for (Micros t = 0; t < kFaultEnd && res.ok; t += 100 * kMillis) {
      // Data arrives at a random part of the site.
      if (chance(0.35)) {
        const uint64_t id = seed * 1000 + next_id++;
        const double p = pick(40, 100) / 100.0;
        for (int i = 0; i < slots; ++i)
          if (Up(i) && chance(p)) Core(i).OnData(id, gmax);
      }
      // Network faults.
      if (chance(0.04)) {
        std::vector<int> a, b;
        for (int i = 0; i < s.size(); ++i) (chance(0.5) ? a : b).push_back(i);
        s.Partition({a, b});
        if (leader >= 0 && chance(0.5)) FailOver(false, chance(0.3));  // the other side elects its own
      }
      if (chance(0.03)) s.Heal();
      if (chance(0.03)) s.Block(pick(0, s.size() - 1), pick(0, s.size() - 1));
      if (chance(0.03)) s.SetLoss(pick(0, s.size() - 1), pick(0, 50) / 100.0);
      // Crashes and restarts of any member.
      auto is_server = [&](int v) {
        return std::find(base.commit_servers.begin(), base.commit_servers.end(), IdOf(v)) != base.commit_servers.end();
      };
      if (chance(0.04)) {
        const int v = pick(0, slots - 1);
        if (Up(v)) CrashSlot(v);
      }
      if (chance(0.05)) {
        const int v = pick(0, slots - 1);
        const bool held_down = !reduced_slots.empty() && is_server(v);  // the reduction lasts its time
        if (node[v] >= 0 && !Up(v) && !held_down) {
          StartSlot(v);
          if (v == leader && chance(0.5)) Lead(v, epoch);  // re-elected with the same epoch after a restart
        }
      }
      if (chance(0.03) || (leader >= 0 && !Up(leader) && chance(0.3))) FailOver(chance(0.7), chance(0.15));
      // The sequencer crashes right after it assigned a number, before the commit.
      if (crash_between && !armed && t >= crash_arm) armed = true;
      // Commit servers below the quorum for a while.
      if (reduce && !reduced && t >= reduce_at) {
        reduced = true;
        for (uint64_t id : base.commit_servers) {
          const int v = static_cast<int>(id - 100);
          if (Up(v) && AliveCommitServers() > quorum - 1) CrashSlot(v);
          if (!Up(v)) reduced_slots.push_back(v);
        }
        res.reduced = true;
        stall_from = s.now();
        stall_limit = 0;
        for (int i = 0; i < slots; ++i)
          if (node[i] >= 0) stall_limit = std::max(stall_limit, Up(i) ? Core(i).stable().next_seq : disk[i].next_seq);
        stall_to = reduce_at + reduce_len;
      }
      if (!reduced_slots.empty() && t >= reduce_at + reduce_len) {
        stall_from = stall_to = proto::kNever;
        for (int v : reduced_slots)
          if (node[v] >= 0 && !Up(v)) StartSlot(v);
        reduced_slots.clear();
      }
      // A new member joins during a fail-over.
      if (!joined && t >= join_at) {
        joined = true;
        res.joined = true;
        FailOver(true, false);
        StartSlot(slots - 1);
      }
      const Micros until = t + 100 * kMillis;
      if (armed) {
        s.RunUntil(until, [&] {
          CheckStep();
          if (armed && leader >= 0 && Up(leader) && Core(leader).sequencing() && Core(leader).uncommitted() > 0) {
            armed = false;
            res.crashed_between = true;
            CrashSlot(leader);
          }
        });
      } else {
        run_to(until);
      }
    }
    if (!res.ok) {
      if (std::getenv("CM_SIM_TRACE"))
        for (int i = 0; i < slots; ++i)
          if (node[i] >= 0)
            for (const std::string& e : s.events(node[i])) std::fprintf(stderr, "slot %d: %s\n", i, e.c_str());
      return res;
    }

    // Heal: no more network faults, crashed members back (one non-commit
    // member may stay down), one sequencer.
    s.Heal();
    for (int i = 0; i < s.size(); ++i) s.SetLoss(i, 0);
    stall_from = stall_to = proto::kNever;
    int stay_down = -1;
    if (chance(0.3)) {
      const int v = pick(0, slots - 1);
      if (std::find(base.commit_servers.begin(), base.commit_servers.end(), IdOf(v)) == base.commit_servers.end())
        stay_down = v;
    }
    for (int i = 0; i < slots; ++i) {
      if (i == stay_down) {
        CrashSlot(i);
      } else if (node[i] >= 0 && !Up(i)) {
        StartSlot(i);
      }
    }
    for (int i = 0; i < slots; ++i)
      if (Up(i)) Core(i).OnLeadership(false, 0);
    int final_leader = pick(0, slots - 1);
    while (!Up(final_leader)) final_leader = (final_leader + 1) % slots;
    Lead(final_leader, epoch + 1);
    const Micros healed = s.now();

    // Caught up: every live member has applied the newest committed number,
    // and nothing is left to number (quiet for half a second).
    Micros quiet_since = proto::kNever;
    for (Micros t = healed; res.ok; t += 50 * kMillis) {
      run_to(t + 50 * kMillis);
      bool all = Core(final_leader).sequencing() && Core(final_leader).uncommitted() == 0;
      for (int i = 0; i < slots && all; ++i)
        if (Up(i) && Core(i).delivered() != gmax) all = false;
      if (!all) {
        quiet_since = proto::kNever;
        res.catch_up = s.now() - healed;
      } else if (quiet_since == proto::kNever) {
        quiet_since = s.now();
      } else if (s.now() - quiet_since >= 500 * kMillis) {
        break;
      }
      if (s.now() - healed > kCatchUpBound) {
        std::string who;
        for (int i = 0; i < slots; ++i)
          if (Up(i))
            who += " " + std::to_string(i) + ":" + std::to_string(Core(i).delivered()) + "/" +
                   std::to_string(Core(i).known_committed()) + " ckpt " + std::to_string(Core(i).stable().ckpt_seq) +
                   " adv " + std::to_string(Core(i).advertised_checkpoint()) + " held " +
                   std::to_string(Core(i).stable().held.size()) + " repairs " +
                   std::to_string(Core(i).outstanding_repairs());
        Fail("not caught up " + std::to_string(kCatchUpBound / kMillis) + " ms after the heal: newest committed " +
             std::to_string(gmax) + ", leader " + std::to_string(final_leader) + " sequencing=" +
             std::to_string(Core(final_leader).sequencing()) + " uncommitted=" +
             std::to_string(Core(final_leader).uncommitted()) + "; applied/known:" + who);
        break;
      }
    }
    if (!res.ok && std::getenv("CM_SIM_TRACE")) {
      for (int i = 0; i < slots; ++i) {
        if (node[i] < 0) continue;
        for (const std::string& e : s.events(node[i])) std::fprintf(stderr, "slot %d: %s\n", i, e.c_str());
      }
    }
    res.committed = gmax;
    for (int i = 0; i < slots; ++i)
      if (Up(i)) res.installs += Core(i).installs();
    // The joiner started with nothing: a floor means it installed a checkpoint.
    res.joiner_installed = joiner && node[slots - 1] >= 0 &&
                           (Up(slots - 1) ? Core(slots - 1).stable() : disk[slots - 1]).install_floor > 0;
    return res;
  }
};

TEST(SamSim, DeliveredPrefixOfOneSequenceAndCatchUpAfterFaults) {
  uint64_t one = 0;
  const bool replay = sim::ReplaySeed(&one);
  const uint64_t seeds = replay ? 1 : sim::SeedCount(kSeeds);
  const auto t0 = std::chrono::steady_clock::now();
  Micros worst = 0;
  uint64_t worst_seed = 0, committed = 0, installs = 0, steps = 0;
  uint64_t crashed_between = 0, reduced = 0, joined = 0, joiner_installed = 0;
  for (uint64_t i = 0; i < seeds; ++i) {
    const uint64_t seed = replay ? one : i + 1;
    SiteRun run(seed);
    Outcome o = run.Go();
    ASSERT_TRUE(o.ok) << "seed " << seed << ": " << o.why << "\nreplay: CM_SIM_SEED=" << seed
                      << " ./cm_sim_tests --gtest_filter='SamSim.*'";
    if (o.catch_up > worst) {
      worst = o.catch_up;
      worst_seed = seed;
    }
    committed += o.committed;
    crashed_between += o.crashed_between;
    reduced += o.reduced;
    joined += o.joined;
    joiner_installed += o.joiner_installed;
    installs += o.installs;
    steps += o.steps;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("SamSim: %llu seeds in %.1f s, %llu steps, %llu numbers committed, %llu checkpoint installs; "
              "worst catch-up after the heal %lld ms (seed %llu), bound %lld ms\n",
              static_cast<unsigned long long>(seeds), secs, static_cast<unsigned long long>(steps),
              static_cast<unsigned long long>(committed), static_cast<unsigned long long>(installs),
              static_cast<long long>(worst / kMillis), static_cast<unsigned long long>(worst_seed),
              static_cast<long long>(kCatchUpBound / kMillis));
  std::printf("SamSim: runs with the sequencer crashed between assign and commit %llu, commit servers below "
              "the quorum %llu, a member joining during a fail-over %llu (installed a checkpoint %llu)\n",
              static_cast<unsigned long long>(crashed_between), static_cast<unsigned long long>(reduced),
              static_cast<unsigned long long>(joined), static_cast<unsigned long long>(joiner_installed));
  EXPECT_GT(committed, seeds);  // the runs do order something
  if (seeds >= 1000) {  // every special fault happens in a good share of the runs
    EXPECT_GT(crashed_between, seeds / 10);
    EXPECT_GT(reduced, seeds / 10);
    EXPECT_GT(joiner_installed, seeds / 10);
  }
}

}  // namespace
}  // namespace cm::leader
