// The convergence planner (push/converge.h): unit cases, and a property test
// over random histories of pushes, rollbacks, restores, down servers and hand
// edits, on a model fleet: after every CCM operation the CCM's record of each
// server that took part equals the tree that server holds, and equals the
// goal; a server that was down keeps its old record.
#include "push/converge.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <set>

#include "delta/manifest.h"

namespace cm::push {
namespace {

using Tree = std::map<std::string, int>;  // path -> content

delta::Manifest ManifestOf(const Tree& t) {
  delta::Manifest m;
  for (const auto& [p, c] : t) {  // single-component paths: map order is walk order
    delta::ManifestEntry e;
    e.path = p;
    e.mode = 0644;
    std::string body = "content " + std::to_string(c);
    e.size = body.size();
    e.hash = HashBytes(body.data(), body.size());
    m.entries.push_back(e);
  }
  return m;
}
std::string Hex(const Tree& t) { return ToHex(delta::ManifestHash(ManifestOf(t))); }

LiveTree Live(const std::string& release, const Tree& recorded, const Tree& now, uint64_t last_serial = 0) {
  LiveTree l;
  l.last_serial = last_serial;
  l.release = release;
  l.manifest = release.empty() ? "" : Hex(recorded);
  l.live_manifest = Hex(now);
  auto d = delta::DiffManifests(ManifestOf(recorded), ManifestOf(now));
  l.changed = d.changed;
  l.missing = d.missing;
  l.extra = d.extra;
  l.ok = d.empty();
  return l;
}

TEST(Converge, ReadyUnknownSyncAndReplicate) {
  Tree a{{"x", 1}, {"y", 2}}, b{{"x", 1}, {"y", 3}}, c{{"x", 9}};
  Tree edited = a;
  edited["y"] = 7;
  std::vector<ServerTree> s{
      {"ready", true, Live("rb", b, b)},       {"down", false, std::nullopt},
      {"old1", true, Live("ra", a, a)},        {"old2", true, Live("ra", a, a, 9)},
      {"drift", true, Live("ra", a, edited)},  {"lost", true, Live("rc", c, c)},
      {"new", true, Live("", Tree{}, Tree{})}, {"oldrelay", true, std::nullopt},
  };
  auto plan = PlanConvergence(s, Hex(b), [&](const std::string& h) { return h == Hex(a) || h == Hex(b); });
  EXPECT_EQ(plan.ready, std::vector<std::string>{"ready"});
  EXPECT_EQ(plan.unknown, (std::vector<std::string>{"down", "oldrelay"}));
  ASSERT_EQ(plan.groups.size(), 4u);
  EXPECT_EQ(plan.groups[0], (CatchUpGroup{CatchUp::kSync, Hex(a), {}, {"old1", "old2"}, 9}));
  EXPECT_EQ(plan.groups[1], (CatchUpGroup{CatchUp::kSync, Hex(a), {"y"}, {"drift"}, 0}));
  EXPECT_EQ(plan.groups[2], (CatchUpGroup{CatchUp::kReplicate, "", {}, {"lost"}, 0}));
  EXPECT_EQ(plan.groups[3], (CatchUpGroup{CatchUp::kSync, EmptyManifestHex(), {}, {"new"}, 0}));
  EXPECT_EQ(plan.CatchUpCount(), 5u);
}

TEST(Converge, AServerThatRunsTheNextJobAlreadyIsReady) {
  Tree base{{"x", 1}}, next{{"x", 2}};
  std::vector<ServerTree> s{{"done", true, Live("rn", next, next)}, {"behind", true, Live("rb", base, base)}};
  auto plan = PlanConvergence(s, Hex(base), [](const std::string&) { return true; }, Hex(next));
  EXPECT_EQ(plan.ready, (std::vector<std::string>{"done", "behind"}));
  EXPECT_TRUE(plan.groups.empty());
  plan = PlanConvergence(s, Hex(base), [](const std::string&) { return true; });
  EXPECT_EQ(plan.ready, std::vector<std::string>{"behind"});
  ASSERT_EQ(plan.groups.size(), 1u);
}

TEST(Converge, ATruncatedDriftListIsAReplicate) {
  Tree a{{"x", 1}}, b{{"x", 2}};
  LiveTree l = Live("ra", a, b);
  l.truncated = true;
  auto plan = PlanConvergence({{"s", true, l}}, Hex(Tree{{"x", 3}}), [](const std::string&) { return true; });
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].kind, CatchUp::kReplicate);
}

// ---- the model fleet ----
struct Server {
  std::string release;  // "" = none
  Tree recorded;        // the release's tree as cm-apply recorded it
  Tree now;             // what it serves
  std::string prev_release;
  Tree prev;
  bool up = true;
};

struct Ccm {
  std::map<std::string, Tree> store;  // checkpoints by manifest hex (the newest 10 kept)
  std::vector<std::string> order;     // oldest first
  std::map<std::string, std::string> record;  // server -> manifest hex its last report said
  int next = 1;
  void Keep(const Tree& t) {
    std::string h = Hex(t);
    if (store.emplace(h, t).second) order.push_back(h);
    while (order.size() > 10) {
      store.erase(order.front());
      order.erase(order.begin());
    }
  }
};

// Brings every up server to `want` (a tree the store holds) the way the CCM
// does: plan, then one catch-up per group; every up server reports.
void Converge(Ccm& ccm, std::map<std::string, Server>& fleet, const Tree& want) {
  std::vector<ServerTree> in;
  for (auto& [name, s] : fleet)
    in.push_back({name, s.up, s.up ? std::optional<LiveTree>(Live(s.release, s.recorded, s.now)) : std::nullopt});
  auto plan = PlanConvergence(in, Hex(want), [&](const std::string& h) { return ccm.store.count(h) > 0; });
  for (const auto& g : plan.groups) {
    for (const auto& name : g.servers) {
      Server& s = fleet[name];
      Tree result;
      if (g.kind == CatchUp::kReplicate) {
        result = want;
      } else {
        // A synchronize: the files that differ between `from` and want, and
        // the unknown paths, are set to want's; everything else stays.
        const Tree from = g.from_manifest == EmptyManifestHex() ? Tree{} : ccm.store.at(g.from_manifest);
        auto d = delta::DiffManifests(ManifestOf(want), ManifestOf(from));
        std::set<std::string> touch(g.unknown_paths.begin(), g.unknown_paths.end());
        for (auto* v : {&d.changed, &d.missing, &d.extra}) touch.insert(v->begin(), v->end());
        result = s.now;
        for (const auto& p : touch) {
          if (want.count(p)) result[p] = want.at(p);
          else result.erase(p);
        }
      }
      RC_ASSERT(Hex(result) == Hex(want));  // the catch-up the plan chose is enough
      s.prev_release = s.release;
      s.prev = s.now;
      s.release = "r" + std::to_string(ccm.next++);
      s.recorded = s.now = result;
    }
  }
  for (auto& [name, s] : fleet)
    if (s.up) ccm.record[name] = Hex(s.now);  // reports carry the live manifest
}

// A delta push on top of `base`: cm-apply refuses a tree that is not base.
void Push(Ccm& ccm, std::map<std::string, Server>& fleet, const Tree& base, const Tree& next) {
  Converge(ccm, fleet, base);
  const std::string release = "r" + std::to_string(ccm.next++);
  for (auto& [name, s] : fleet) {
    if (!s.up) continue;
    if (Hex(s.now) == Hex(base)) {
      s.prev_release = s.release;
      s.prev = s.now;
      s.release = release;
      s.recorded = s.now = next;
    }
    ccm.record[name] = Hex(s.now);
  }
  ccm.Keep(next);
}

RC_GTEST_PROP(ConvergeProp, TheRecordIsWhatServersHold, ()) {
  const int n = *rc::gen::inRange(2, 7);
  std::map<std::string, Server> fleet;
  for (int i = 0; i < n; ++i) fleet["s" + std::to_string(i)] = Server{};
  Ccm ccm;
  Tree shadow;  // the CCM's newest release
  ccm.Keep(shadow);
  std::vector<Tree> history{shadow};
  const int steps = *rc::gen::inRange(1, 30);
  for (int step = 0; step < steps; ++step) {
    auto before = ccm.record;
    const int what = *rc::gen::inRange(0, 7);
    if (what <= 2) {  // a push of a few changed files
      Tree next = shadow;
      const int changes = *rc::gen::inRange(1, 4);
      for (int c = 0; c < changes; ++c) {
        std::string p = "p" + std::to_string(*rc::gen::inRange(0, 6));
        if (*rc::gen::inRange(0, 4) == 0) next.erase(p);
        else next[p] = *rc::gen::inRange(0, 1000);
      }
      Push(ccm, fleet, shadow, next);
      shadow = next;
      history.push_back(shadow);
    } else if (what == 3) {  // cm-push checkpoint restore (an older release the store holds)
      const auto& h = ccm.order[*rc::gen::inRange<size_t>(0, ccm.order.size())];
      shadow = ccm.store.at(h);
      Converge(ccm, fleet, shadow);
      ccm.Keep(shadow);
    } else if (what == 4) {  // a server goes down or comes back
      auto it = std::next(fleet.begin(), *rc::gen::inRange(0, n));
      it->second.up = !it->second.up;
      continue;
    } else if (what == 5) {  // an operator edits, adds or deletes a file by hand
      auto it = std::next(fleet.begin(), *rc::gen::inRange(0, n));
      if (it->second.release.empty()) continue;
      const std::string p = "p" + std::to_string(*rc::gen::inRange(0, 6));
      if (*rc::gen::inRange(0, 3) == 0) it->second.now.erase(p);
      else it->second.now[p] = 5000 + step;
      continue;
    } else {  // cm-apply rollback by hand on one server
      auto it = std::next(fleet.begin(), *rc::gen::inRange(0, n));
      Server& s = it->second;
      if (s.prev_release.empty()) continue;
      std::swap(s.release, s.prev_release);
      std::swap(s.recorded, s.prev);
      s.now = s.recorded;
      continue;
    }
    for (const auto& [name, s] : fleet) {
      if (s.up) {
        RC_ASSERT(ccm.record[name] == Hex(s.now));
        RC_ASSERT(ccm.record[name] == Hex(shadow));
      } else {
        RC_ASSERT(ccm.record[name] == before[name]);
      }
    }
  }
}

}  // namespace
}  // namespace cm::push
