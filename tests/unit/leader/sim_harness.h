// Builds cm-leader segments in the simulator for the election tests.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "leader/election.h"
#include "sim/simulator.h"

namespace cm::leader::testing {

inline const proto::Address kControl{0xefff0001, 7400};
inline proto::Address NodeAddr(int i) { return proto::Address{0xc6120000u + static_cast<uint32_t>(i + 1), 7400}; }
inline uint64_t NodeId(int i) { return 1000 + static_cast<uint64_t>(i); }

inline Config NodeConfig(int i, uint32_t admin, uint64_t seed) {
  Config c;
  c.id = NodeId(i);
  c.self = NodeAddr(i);
  c.control = kControl;
  c.segment = "sim";
  c.admin_priority = admin;
  c.rng_seed = seed * 1000003 + static_cast<uint64_t>(i) * 7919 + 1;
  return c;
}

using Sim = sim::Simulator<Election>;

// Adds n nodes with the given admin priorities, all joined to the control channel.
inline std::vector<Config> AddSegment(Sim* s, const std::vector<uint32_t>& admin, uint64_t seed,
                                      const std::function<void(Config*)>& tweak = nullptr) {
  std::vector<Config> cfgs;
  for (size_t i = 0; i < admin.size(); ++i) {
    Config c = NodeConfig(static_cast<int>(i), admin[i], seed);
    if (tweak) tweak(&c);
    cfgs.push_back(c);
    int n = s->AddNode(c.self, std::make_unique<Election>(c));
    s->Join(n, kControl);
  }
  return cfgs;
}

// The strongest live node: highest (priority, id).
inline int Best(Sim& s) {
  int best = -1;
  for (int i = 0; i < s.size(); ++i) {
    if (!s.alive(i) || s.core(i).priority() < (1u << 16)) continue;
    if (best < 0 || s.core(i).priority() > s.core(best).priority() ||
        (s.core(i).priority() == s.core(best).priority() && s.core(i).id() > s.core(best).id()))
      best = i;
  }
  return best;
}

// Seeds per cell of the loss sweeps (CM_SIM_SEEDS overrides 400; the
// sanitizer pass of scripts/test runs a twentieth).
inline uint64_t SeedsPerCell() {
#if defined(__SANITIZE_ADDRESS__)
  return std::max<uint64_t>(10, sim::SeedCount(400) / 20);
#else
  return sim::SeedCount(400);
#endif
}

// The q-quantile of durations, in heartbeats.
inline double Quantile(std::vector<proto::Micros> v, double q, proto::Micros beat) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return double(v[std::min(v.size() - 1, static_cast<size_t>(q * double(v.size())))]) / double(beat);
}

inline std::string Dump(Sim& s, size_t last_events = 12) {
  std::string out;
  for (int i = 0; i < s.size(); ++i) {
    const Election& e = s.core(i);
    out += "node " + std::to_string(i) + " id=" + std::to_string(e.id()) + " prio=" + std::to_string(e.priority()) +
           (s.alive(i) ? "" : " DEAD") + " state=" + StateName(e.state()) + " leader=" + std::to_string(e.leader()) +
           " epoch=" + std::to_string(e.epoch()) + "\n";
    const auto& ev = s.events(i);
    for (size_t k = ev.size() > last_events ? ev.size() - last_events : 0; k < ev.size(); ++k)
      out += "    " + ev[k] + "\n";
  }
  return out;
}

}  // namespace cm::leader::testing
