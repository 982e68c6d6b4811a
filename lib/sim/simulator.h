// A deterministic network simulator for pure protocol cores (proto/core.h).
// N nodes run in one process on virtual time; the network loses, duplicates,
// delays and reorders datagrams from one seeded std::mt19937_64, so the same
// seed always gives the same run. Faults: per-node extra loss, one-way blocks,
// crashes and restarts.
//
// Delivery rules:
//  - A datagram to a group reaches every live node that joined the group,
//    except the sender; to a host, the live node with that address.
//  - Loss = net.loss, plus SetLoss(receiver); each surviving datagram is
//    duplicated with probability net.duplicate; each copy gets its own delay
//    drawn uniformly from [min_delay, max_delay] (hence reordering).
//  - A stream message (Transport::kStream, kReport) is never lost, duplicated or
//    reordered between one sender and one receiver; it is dropped when the
//    receiver is crashed at delivery time or the pair is blocked at send time
//    (a broken TCP connection).
//  - Blocks are checked when a message is sent; a crash is checked when it is
//    delivered. A restarted node keeps its address and group memberships and
//    may receive datagrams sent before the restart.
//  - A core's Effects::groups join and leave groups for its node, as Join()
//    and Leave() do.
//
// Not thread-safe. Cores are owned by the simulator.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "proto/core.h"

namespace cm::sim {

struct NetParams {
  double loss = 0;       // probability a datagram is lost
  double duplicate = 0;  // probability a delivered datagram arrives twice
  proto::Micros min_delay = 50, max_delay = 2000;  // uniform per datagram
};

template <proto::Core C>
class Simulator {
 public:
  Simulator(uint64_t seed, NetParams net) : seed_(seed), net_(net), rng_(seed) {}

  // Adds a node and calls its Start at now(). Returns the node's index.
  int AddNode(proto::Address addr, std::unique_ptr<C> core) {
    int id = static_cast<int>(nodes_.size());
    nodes_.push_back(Node{});
    Node& n = nodes_.back();
    n.addr = addr;
    n.core = std::move(core);
    by_addr_[addr] = id;
    StartNode(id);
    return id;
  }

  void Join(int node, proto::Address group) { nodes_.at(node).groups.insert(group); }
  void Leave(int node, proto::Address group) { nodes_.at(node).groups.erase(group); }

  // The node stops: pending timers and messages to it are dropped.
  void Crash(int node) {
    Node& n = nodes_.at(node);
    n.alive = false;
    ++n.timer_gen;
  }
  // A fresh core at the same address; Start at now().
  void Restart(int node, std::unique_ptr<C> core) {
    Node& n = nodes_.at(node);
    n.core = std::move(core);
    StartNode(node);
  }

  void SetLoss(int node, double p) { nodes_.at(node).extra_loss = p; }
  void Block(int from, int to) { blocked_.insert({from, to}); }
  void Unblock(int from, int to) { blocked_.erase({from, to}); }
  bool blocked(int from, int to) const { return blocked_.count({from, to}) != 0; }
  // Cuts every link between different sets (both ways); nodes in no set are
  // cut from everyone.
  void Partition(const std::vector<std::vector<int>>& sets) {
    std::vector<int> side(nodes_.size(), -1);
    for (size_t s = 0; s < sets.size(); ++s)
      for (int i : sets[s]) side.at(i) = static_cast<int>(s);
    for (int a = 0; a < size(); ++a)
      for (int b = 0; b < size(); ++b)
        if (a != b && (side[a] < 0 || side[a] != side[b])) Block(a, b);
  }
  void Heal() { blocked_.clear(); }

  // Processes the next event (a delivery or a timer). False when none is left.
  bool Step() {
    while (!queue_.empty()) {
      Event e = queue_.top();
      queue_.pop();
      now_ = std::max(now_, e.at);
      Node& n = nodes_[e.node];
      if (!n.alive) continue;
      if (e.kind == Event::kTimer) {
        if (e.gen != n.timer_gen) continue;
        n.wake_at = proto::kNever;
        effects_.Clear();
        n.core->OnTimer(now_, &effects_);
      } else {
        effects_.Clear();
        n.core->OnDatagram(now_, e.from, e.bytes, &effects_);
      }
      Apply(e.node);
      return true;
    }
    return false;
  }

  // Runs every event due at or before t, then sets the clock to t.
  void RunUntil(proto::Micros t, const std::function<void()>& after_each_step = nullptr) {
    while (!queue_.empty() && queue_.top().at <= t) {
      if (Step() && after_each_step) after_each_step();
    }
    now_ = std::max(now_, t);
  }

  proto::Micros now() const { return now_; }
  int size() const { return static_cast<int>(nodes_.size()); }
  C& core(int node) { return *nodes_.at(node).core; }
  const C& core(int node) const { return *nodes_.at(node).core; }
  bool alive(int node) const { return nodes_.at(node).alive; }
  proto::Address address(int node) const { return nodes_.at(node).addr; }
  // Every Effects::events and ::alerts line the node's cores produced (each
  // call's events, then its alerts).
  const std::vector<std::string>& events(int node) const { return nodes_.at(node).events; }
  uint64_t seed() const { return seed_; }
  uint64_t delivered() const { return delivered_; }
  NetParams& net() { return net_; }

 private:
  struct Node {
    proto::Address addr;
    std::unique_ptr<C> core;
    bool alive = true;
    uint64_t timer_gen = 0;
    proto::Micros wake_at = proto::kNever;
    double extra_loss = 0;
    std::set<proto::Address> groups;
    std::vector<std::string> events;
    std::map<int, proto::Micros> stream_last;  // per receiver: last stream delivery time
  };
  struct Event {
    enum Kind : uint8_t { kTimer, kDeliver } kind;
    proto::Micros at;
    uint64_t seq;
    int node;
    uint64_t gen = 0;
    proto::Address from;
    std::string bytes;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  void StartNode(int id) {
    Node& n = nodes_[id];
    n.alive = true;
    ++n.timer_gen;
    n.stream_last.clear();
    effects_.Clear();
    n.core->Start(now_, &effects_);
    Apply(id);
  }

  double Uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }
  proto::Micros Delay() {
    if (net_.max_delay <= net_.min_delay) return net_.min_delay;
    return std::uniform_int_distribution<proto::Micros>(net_.min_delay, net_.max_delay)(rng_);
  }

  void Apply(int id) {
    Node& n = nodes_[id];
    for (std::string& ev : effects_.events) n.events.push_back(std::move(ev));
    for (std::string& ev : effects_.alerts) n.events.push_back(std::move(ev));
    for (const proto::GroupChange& g : effects_.groups) {
      if (g.kind == proto::GroupChange::Kind::kJoin) n.groups.insert(g.group);
      else n.groups.erase(g.group);
    }
    for (proto::Send& s : effects_.sends) {
      if (s.to.IsMulticast()) {
        for (int r = 0; r < size(); ++r) {
          if (r != id && nodes_[r].groups.count(s.to)) SendTo(id, r, s);
        }
      } else if (auto it = by_addr_.find(s.to); it != by_addr_.end() && it->second != id) {
        SendTo(id, it->second, s);
      }
    }
    if (effects_.wake_at != proto::kNever) {
      n.wake_at = effects_.wake_at;
      Push(Event{Event::kTimer, std::max(now_, effects_.wake_at), 0, id, ++n.timer_gen, {}, {}});
    } else {
      ++n.timer_gen;  // a call without wake_at cancels the wake-up
      n.wake_at = proto::kNever;
    }
  }

  void SendTo(int from, int to, const proto::Send& s) {
    if (blocked(from, to)) return;
    const proto::Address src = nodes_[from].addr;
    if (s.transport != proto::Transport::kDatagram) {  // kStream, kReport
      proto::Micros& last = nodes_[from].stream_last[to];
      proto::Micros at = std::max(now_ + Delay(), last);
      last = at;
      Push(Event{Event::kDeliver, at, 0, to, 0, src, s.bytes});
      return;
    }
    double loss = net_.loss + nodes_[to].extra_loss;
    if (loss > 0 && Uniform() < loss) return;
    int copies = (net_.duplicate > 0 && Uniform() < net_.duplicate) ? 2 : 1;
    for (int c = 0; c < copies; ++c) Push(Event{Event::kDeliver, now_ + Delay(), 0, to, 0, src, s.bytes});
  }

  void Push(Event e) {
    e.seq = next_seq_++;
    if (e.kind == Event::kDeliver) ++delivered_;
    queue_.push(std::move(e));
  }

  uint64_t seed_;
  NetParams net_;
  std::mt19937_64 rng_;
  proto::Micros now_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t delivered_ = 0;
  std::vector<Node> nodes_;
  std::map<proto::Address, int> by_addr_;
  std::set<std::pair<int, int>> blocked_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  proto::Effects effects_;
};

// The seed of a property run: CM_SIM_SEED=n replays one seed.
inline bool ReplaySeed(uint64_t* seed) {
  const char* s = std::getenv("CM_SIM_SEED");
  if (!s || !*s) return false;
  *seed = std::strtoull(s, nullptr, 10);
  return true;
}
// How many seeds a property runs: CM_SIM_SEEDS overrides the default.
inline uint64_t SeedCount(uint64_t dflt) {
  const char* s = std::getenv("CM_SIM_SEEDS");
  return (s && *s) ? std::strtoull(s, nullptr, 10) : dflt;
}

}  // namespace cm::sim
