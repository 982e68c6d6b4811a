// A deterministic simulator with links that have a rate and a buffer, for
// the cm-mcast rate control and unicast finish (issue 16). Like
// sim::Simulator (simulator.h) it runs pure cores (proto/core.h) on virtual
// time from one seed, but a datagram crosses
//
//   sender's uplink (rate, drop-tail buffer: a tbf on the sender's egress)
//   -> propagation delay
//   -> receiver's downlink (rate, drop-tail buffer: a receiver behind a slow link)
//   -> the receiver's random loss (independent per receiver: nftables on its input)
//
// A link with rate 0 is unlimited. A link is one FIFO: a datagram that finds
// more than `buffer` bytes queued is dropped; stream messages (Transport::
// kStream: TCP) are never dropped and queue in the same FIFO, each costing
// 1/(1-p) of its wire time when the stream's path loses p (retransmissions).
// Each datagram's wire size adds 42 bytes (Ethernet + IPv4 + UDP). Delays are
// constant, so a FIFO's order is the order of sending and streams stay in
// order. A stream sends no faster than the narrowest link of its path (TCP's
// ack clocking), so it shares the links with the datagrams, not floods them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "proto/core.h"

namespace cm::sim {

struct LinkParams {
  uint64_t rate_bps = 0;   // 0: unlimited
  uint64_t buffer = 0;     // bytes a datagram may find queued (drop-tail)
};

template <proto::Core C>
class BottleneckSim {
 public:
  BottleneckSim(uint64_t seed, proto::Micros delay) : delay_(delay), rng_(seed) {}

  int AddNode(proto::Address addr, std::unique_ptr<C> core) {
    int id = static_cast<int>(nodes_.size());
    nodes_.push_back(Node{});
    nodes_.back().addr = addr;
    nodes_.back().core = std::move(core);
    by_addr_[addr] = id;
    effects_.Clear();
    nodes_.back().core->Start(now_, &effects_);
    Apply(id);
    return id;
  }
  void Join(int node, proto::Address group) { nodes_.at(static_cast<size_t>(node)).groups.insert(group); }
  void SetUplink(int node, LinkParams p) { nodes_.at(static_cast<size_t>(node)).up.p = p; }
  void SetDownlink(int node, LinkParams p) { nodes_.at(static_cast<size_t>(node)).down.p = p; }
  void SetLoss(int node, double p) { nodes_.at(static_cast<size_t>(node)).loss = p; }
  void SetStreamLoss(int node, double p) { nodes_.at(static_cast<size_t>(node)).stream_loss = p; }

  bool Step() {
    while (!queue_.empty()) {
      Event e = queue_.top();
      queue_.pop();
      now_ = std::max(now_, e.at);
      Node& n = nodes_[static_cast<size_t>(e.node)];
      if (e.kind == kForward) {
        Forward(e.src, {e.node}, e.bytes.size() + 42, true, static_cast<double>(now_), e.bytes);
        continue;
      }
      effects_.Clear();
      if (e.kind == kTimer) {
        if (e.gen != n.timer_gen) continue;
        n.core->OnTimer(now_, &effects_);
      } else {
        n.core->OnDatagram(now_, e.from, e.bytes, &effects_);
      }
      Apply(e.node);
      return true;
    }
    return false;
  }
  void RunUntil(proto::Micros t) {
    while (!queue_.empty() && queue_.top().at <= t) Step();
    now_ = std::max(now_, t);
  }

  proto::Micros now() const { return now_; }
  C& core(int node) { return *nodes_.at(static_cast<size_t>(node)).core; }
  const std::vector<std::string>& events(int node) const { return nodes_.at(static_cast<size_t>(node)).events; }
  // Datagrams dropped by full buffers (congestion) and at random, and wire
  // bytes the node sent (datagrams and streams).
  uint64_t queue_drops() const { return queue_drops_; }
  uint64_t random_drops() const { return random_drops_; }
  uint64_t wire_bytes(int node) const { return nodes_.at(static_cast<size_t>(node)).wire_bytes; }
  // Wire bytes that got through the node's uplink (not dropped there).
  uint64_t up_bytes(int node) const { return nodes_.at(static_cast<size_t>(node)).up_bytes; }
  uint64_t stream_bytes(int node) const { return nodes_.at(static_cast<size_t>(node)).stream_bytes; }

 private:
  struct Link {
    LinkParams p;
    double free_at = 0;  // µs when the last queued byte has left
  };
  struct Node {
    proto::Address addr;
    std::unique_ptr<C> core;
    std::set<proto::Address> groups;
    Link up, down;
    double loss = 0, stream_loss = 0;
    uint64_t timer_gen = 0, wire_bytes = 0, stream_bytes = 0, up_bytes = 0;
    std::vector<std::string> events;
    std::map<int, double> stream_next;  // per destination: when the stream may send again
  };
  enum Kind : uint8_t { kTimer, kDeliver, kForward };
  struct Event {
    proto::Micros at;
    uint64_t seq;
    int node;
    Kind kind;
    uint64_t gen;
    proto::Address from;
    std::string bytes;
    int src;  // kForward: the sending node (node is the destination)
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  // The time a message entering `l` at `t` has left it; < 0: dropped.
  static double Cross(Link& l, double t, size_t bytes, bool stream, double stream_loss) {
    if (l.p.rate_bps == 0) return t;
    double per_byte = 8e6 / static_cast<double>(l.p.rate_bps);
    double backlog = l.free_at > t ? (l.free_at - t) / per_byte : 0;
    if (!stream && backlog + static_cast<double>(bytes) > static_cast<double>(l.p.buffer)) return -1;
    double cost = static_cast<double>(bytes) * per_byte;
    if (stream) cost /= (1 - std::min(stream_loss, 0.9));
    l.free_at = std::max(t, l.free_at) + cost;
    return l.free_at;
  }

  void Apply(int id) {
    Node& n = nodes_[static_cast<size_t>(id)];
    for (std::string& ev : effects_.events) n.events.push_back(std::move(ev));
    for (std::string& ev : effects_.alerts) n.events.push_back(std::move(ev));
    for (const proto::GroupChange& g : effects_.groups) {
      if (g.kind == proto::GroupChange::Kind::kJoin) n.groups.insert(g.group);
      else n.groups.erase(g.group);
    }
    for (proto::Send& s : effects_.sends) {
      bool stream = s.transport != proto::Transport::kDatagram;
      size_t wire = s.bytes.size() + 42;
      n.wire_bytes += wire;
      if (stream) n.stream_bytes += wire;
      std::vector<int> to;
      if (s.to.IsMulticast()) {
        for (size_t r = 0; r < nodes_.size(); ++r)
          if (static_cast<int>(r) != id && nodes_[r].groups.count(s.to)) to.push_back(static_cast<int>(r));
      } else if (auto it = by_addr_.find(s.to); it != by_addr_.end() && it->second != id) {
        to.push_back(it->second);
      }
      if (to.empty()) continue;
      if (stream) {
        // TCP sends no faster than its path takes (ack clocking): the
        // message enters the uplink when the stream's previous one would
        // have left the narrowest link of the path.
        Node& d = nodes_[static_cast<size_t>(to[0])];
        uint64_t rate = n.up.p.rate_bps;
        if (d.down.p.rate_bps && (!rate || d.down.p.rate_bps < rate)) rate = d.down.p.rate_bps;
        double& next = n.stream_next[to[0]];
        double start = std::max(static_cast<double>(now_), next);
        if (rate) next = start + static_cast<double>(wire) * 8e6 / static_cast<double>(rate) / (1 - std::min(d.stream_loss, 0.9));
        Push(Event{static_cast<proto::Micros>(start), 0, to[0], kForward, 0, n.addr, std::move(s.bytes), id});
        continue;
      }
      Forward(id, to, wire, false, static_cast<double>(now_), s.bytes);
    }
    ++n.timer_gen;
    if (effects_.wake_at != proto::kNever)
      Push(Event{std::max(now_, effects_.wake_at), 0, id, kTimer, n.timer_gen, {}, {}, id});
  }

  // Through the sender's uplink, the propagation delay and each receiver's
  // downlink and random loss; delivered as events.
  void Forward(int id, const std::vector<int>& to, size_t wire, bool stream, double t, const std::string& bytes) {
    Node& n = nodes_[static_cast<size_t>(id)];
    {
      double sl = stream ? nodes_[static_cast<size_t>(to[0])].stream_loss : 0;
      double left = Cross(n.up, t, wire, stream, sl);
      if (left < 0) {
        ++queue_drops_;
        return;
      }
      n.up_bytes += wire;
      for (int r : to) {
        Node& d = nodes_[static_cast<size_t>(r)];
        double at = Cross(d.down, left + static_cast<double>(delay_), wire, stream, d.stream_loss);
        if (at < 0) {
          ++queue_drops_;
          continue;
        }
        if (!stream && d.loss > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < d.loss) {
          ++random_drops_;
          continue;
        }
        Push(Event{static_cast<proto::Micros>(at + 0.999), 0, r, kDeliver, 0, n.addr, bytes, id});
      }
    }
  }

  void Push(Event e) {
    e.seq = seq_++;
    queue_.push(std::move(e));
  }

  proto::Micros delay_;
  std::mt19937_64 rng_;
  proto::Micros now_ = 0;
  uint64_t seq_ = 0, queue_drops_ = 0, random_drops_ = 0;
  std::vector<Node> nodes_;
  std::map<proto::Address, int> by_addr_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  proto::Effects effects_;
};

}  // namespace cm::sim
