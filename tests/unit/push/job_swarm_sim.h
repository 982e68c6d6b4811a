// A deterministic flow-level simulation of job mode (push/job_node.h,
// push/job_base.h) for job_swarm_sim_test.cc: the real cores, a fluid network.
//
// Model. Sites behind one core router; each site's uplink has a rate each
// way (bytes/s) and a one-way delay to the router; inside a site the LAN is
// fast (every node's NIC at lan_bps each way). The base sits in a site of its
// own with base_up. A fetch is one TCP-like flow from its source; flows share
// the resources they cross (source NIC, source site's uplink out and the
// destination site's uplink in when they cross the router, destination NIC)
// max-min fairly, each capped by its own loss (Mathis: 1.22 MSS / (RTT
// sqrt(p)) with p = loss) and, once it has caught up with a source that is
// still receiving, by that source's own rate. A flow starts one RTT after the
// fetch (the request). Positions advance in dt steps; nodes see whole chunks
// (the verified position) every report tick. Calls (offers, reports, help)
// take one way there and one back; a fraction ctl_loss is lost (the caller
// hears after call_timeout), as is every call to a crashed node. Crashed
// nodes lose their core (not their store); their children notice after
// detect; restarted nodes are found by the base's probes. Seeded: a seed
// replays exactly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "push/job_base.h"
#include "push/job_node.h"

namespace cm::push::testing {

using proto::kMillis;
using proto::kSeconds;

struct SwarmParams {
  int sites = 3;
  int per_site = 4;
  double site_bps = 30e6 / 8;       // every site's uplink, each way
  int slow_sites = 0;               // the first slow_sites sites (in sites order)...
  double slow_div = 6;              // ...have site_bps / slow_div
  std::vector<int> slow_list;       // or exactly these sites (indexes), if non-empty
  std::vector<double> site_div;     // or each site's own divisor (1 = a fast site), if non-empty
  double base_bps = 30e6 / 8;
  double lan_bps = 125e6;
  uint64_t size = 50ull << 20;
  uint64_t chunk = 64 << 10;
  Micros delay_min = 1 * kMillis, delay_max = 1 * kMillis;  // per site, one way to the router
  double loss = 0;                  // per flow (rate cap)
  double ctl_loss = 0;              // per call
  int crashes = 0;                  // distinct nodes crash...
  Micros crash_min = 1 * kSeconds, crash_max = 5 * kSeconds;  // ...at a uniform time here...
  Micros down_for = 5 * kSeconds;   // ...and restart this much later (0 = never)
  Micros detect = 1 * kSeconds;     // a dead source is noticed after this
  bool measured = true;             // the job object carries the sites' measured rates
  bool switching = true;            // idle sources ask the base for work
  // Tree mode instead of the job cores, on the same network: one chain of
  // site entries in sites order from the base (the tree scheduler's default
  // shape: one child each, pipelined), every site's members fed by its entry.
  bool tree_mode = false;
  int alloc_every = 1;              // re-share the links every this many dt steps
  Micros dt = 10 * kMillis;
  Micros report_tick = 100 * kMillis;
  Micros limit = 3600 * kSeconds;
  JobNodeOptions node;
  JobBaseOptions base;
};

struct SwarmResult {
  bool all_live_done = false;
  Micros end = 0;                   // when the last live node completed
  std::vector<Micros> done_at;      // per node (-1 = never)
  std::vector<bool> slow;           // per node: in a slow site
  std::vector<size_t> site;         // per node: its site
  std::vector<double> site_bps;     // per site: its uplink
  Micros fast_done = 0, slow_done = 0;  // the last node of fast / slow sites that never crashed
  Micros crashed_done = 0;              // the last of the nodes that crashed and restarted
  double bound_all = 0, bound_fast = 0, bound_slow = 0;  // fluid lower bounds, seconds
  double tree_all = 0, tree_fast = 0;   // tree mode (a chain of sites in sites order), fluid, seconds
  int switches = 0;
  int crashed = 0, repaired = 0;
  uint64_t base_sent = 0;
};

class SwarmSim {
 public:
  SwarmSim(uint64_t seed, SwarmParams p) : p_(std::move(p)), rng_(seed) { Build(); }

  SwarmResult Run() {
    if (p_.tree_mode) {
      StartTree();
    } else {
      base_node_->OnLocalAppend(0, p_.size, true, &acts_);
      Apply(kBaseNode, acts_);
      base_core_->Start(0);
      ScheduleCrashes();
    }
    Micros next_report = 0, next_probe = 0;
    for (now_ = 0; now_ <= p_.limit; now_ += p_.dt) {
      RunEvents();
      if (!p_.tree_mode && now_ >= next_probe) {
        Probes();
        next_probe = now_ + 100 * kMillis;
      }
      Advance();
      if (now_ >= next_report) {
        ReportTick();
        next_report = now_ + p_.report_tick;
      }
      if (const char* w = std::getenv("CM_SIM_WATCH"); w && now_ % kSeconds == 0) {
        size_t i = std::strtoul(w, nullptr, 10);
        if (std::getenv("CM_SIM_CHAIN")) {
          NodeRef at = static_cast<NodeRef>(i);
          for (int k = 0; k < 12 && at >= 0; ++k) {
            const JobNodeState& b = base_core_->nodes()[at];
            std::fprintf(stderr, "%8.3f   chain %lld site %d pos %.0f flow src %lld rate %.0f | base: src %lld rx %.0f capped %d below %d helped %.2f complete %d\n",
                         now_ / 1e6, static_cast<long long>(at), nodes_[at].site, nodes_[at].pos,
                         static_cast<long long>(flows_[at].src), flows_[at].rate, static_cast<long long>(b.source),
                         b.rx_bps, b.capped, b.below_share, b.helped_at / 1e6, nodes_[at].complete);
            at = flows_[at].src;
          }
        }
        const JobNodeState& b = base_core_->nodes()[i];
        std::fprintf(stderr, "%8.3f watch %zu: pos %llu src %lld since %.2f rx %.0f helped %.2f capped %d below %d heard %d last %.2f site spare %.0f\n",
                     now_ / 1e6, i, static_cast<unsigned long long>(b.pos), static_cast<long long>(b.source), b.source_since / 1e6,
                     b.rx_bps, b.helped_at / 1e6, b.capped, b.below_share, b.heard, b.last_report / 1e6,
                     base_core_->SiteUpEstimate(peers_[i].site));
      }
      if (AllLiveDone()) break;
    }
    return Result();
  }

 private:
  struct Node {
    int site = 0;
    bool alive = true;
    double pos = 0;           // bytes held (fluid)
    bool complete = false;
    std::unique_ptr<JobNodeCore> core;
    Micros wake_gen = 0;
    Micros done_at = -1;
    Micros restart_at = -1;
    bool crashed = false;
  };
  struct Flow {
    NodeRef src = kNoNode;
    Micros active_at = 0;     // the first byte flows (one RTT after the request)
    double rate = 0;
    bool failed_told = false;
  };
  struct Event {
    Micros at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  // ---- topology ----
  void Build() {
    std::uniform_int_distribution<Micros> d(p_.delay_min, std::max(p_.delay_min, p_.delay_max));
    int n_sites = p_.sites;
    site_bps_.assign(n_sites, p_.site_bps);
    site_delay_.resize(n_sites);
    std::vector<bool> slow(n_sites, false);
    if (!p_.slow_list.empty()) {
      for (int s : p_.slow_list) slow[s] = true;
    } else {
      for (int s = 0; s < std::min(p_.slow_sites, n_sites); ++s) slow[s] = true;
    }
    for (int s = 0; s < n_sites; ++s) {
      if (!p_.site_div.empty()) slow[s] = s < static_cast<int>(p_.site_div.size()) && p_.site_div[s] > 1;
      double div = !p_.site_div.empty() ? (s < static_cast<int>(p_.site_div.size()) ? p_.site_div[s] : 1.0)
                                        : p_.slow_div;
      if (slow[s]) site_bps_[s] = p_.site_bps / div;
      site_delay_[s] = d(rng_);
    }
    slow_site_ = slow;
    base_delay_ = d(rng_);
    for (int s = 0; s < n_sites; ++s) {
      for (int k = 0; k < p_.per_site; ++k) {
        FanPeer f;
        f.name = "s" + std::to_string(s) + "-" + std::to_string(k);
        f.site = "site" + std::to_string(s);
        f.up_bps = p_.measured ? site_bps_[s] : 0;
        peers_.push_back(f);
        Node n;
        n.site = s;
        nodes_.push_back(std::move(n));
      }
    }
    JobNodeOptions no = p_.node;
    no.help = p_.switching && no.help;
    no.lan_bps = p_.lan_bps;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      nodes_[i].core = std::make_unique<JobNodeCore>(peers_, static_cast<NodeRef>(i), peers_[i].up_bps, no);
    }
    base_node_ = std::make_unique<JobNodeCore>(peers_, kBaseNode, p_.base_bps, no);
    JobBaseOptions bo = p_.base;
    bo.lan_bps = p_.lan_bps;
    bo.base_up_bps = p_.base_bps;
    base_core_ = std::make_unique<JobBaseCore>(peers_, bo);
    flows_.resize(nodes_.size());
  }

  int SiteOf(NodeRef r) const { return r == kBaseNode ? -1 : nodes_[r].site; }
  Micros Delay(NodeRef r) const { return r == kBaseNode ? base_delay_ : site_delay_[nodes_[r].site]; }
  Micros OneWay(NodeRef a, NodeRef b) const {
    if (a != kBaseNode && b != kBaseNode && SiteOf(a) == SiteOf(b)) return 250;  // the LAN
    return Delay(a) + Delay(b);
  }
  bool Alive(NodeRef r) const { return r == kBaseNode || (r >= 0 && nodes_[r].alive); }
  double Held(NodeRef r) const { return r == kBaseNode ? static_cast<double>(p_.size) : nodes_[r].pos; }
  bool Complete(NodeRef r) const { return r == kBaseNode || nodes_[r].complete; }
  uint64_t Verified(NodeRef r) const {
    if (Complete(r)) return p_.size;
    double h = Held(r);
    return static_cast<uint64_t>(h / static_cast<double>(p_.chunk)) * p_.chunk;
  }
  JobNodeCore* CoreOf(NodeRef r) {
    if (r == kBaseNode) return base_node_.get();
    if (r < 0 || static_cast<size_t>(r) >= nodes_.size()) return nullptr;
    return nodes_[r].alive ? nodes_[r].core.get() : nullptr;
  }

  // ---- events ----
  void At(Micros t, std::function<void()> fn) { events_.push(Event{t, seq_++, std::move(fn)}); }
  void RunEvents() {
    while (!events_.empty() && events_.top().at <= now_) {
      auto fn = events_.top().fn;
      events_.pop();
      fn();
    }
  }

  void Apply(NodeRef who, const JobNodeActions& a) {
    JobNodeActions copy = a;
    for (JobCall& c : copy.calls) SendCall(who, std::move(c));
    if (who != kBaseNode) {
      Node& n = nodes_[who];
      Flow& f = flows_[who];
      if (copy.fetch) {
        if (std::getenv("CM_SIM_TRACE")) {
          std::fprintf(stderr, "%8.3f node %lld fetch from %lld at %llu (was %lld, rx %.0f)\n", now_ / 1e6,
                       static_cast<long long>(who), static_cast<long long>(copy.fetch->source),
                       static_cast<unsigned long long>(copy.fetch->from), static_cast<long long>(f.src), f.rate);
        }
        f = Flow{};
        f.src = copy.fetch->source;
        f.active_at = now_ + 2 * OneWay(who, f.src);
        // Resume at the verified position: a partial chunk is fetched again.
        n.pos = std::max(static_cast<double>(copy.fetch->from), std::min(n.pos, static_cast<double>(Verified(who))));
        if (!Alive(f.src)) FailFlowLater(who, p_.node.call_timeout);
      } else if (copy.stop_fetch) {
        f = Flow{};
      }
      if (copy.wake_at != proto::kNever) {
        Micros gen = ++n.wake_gen;
        Micros t = std::max(copy.wake_at, now_);
        At(t, [this, who, gen] {
          if (!nodes_[who].alive || nodes_[who].wake_gen != gen) return;
          JobNodeActions out;
          nodes_[who].core->OnTimer(now_, &out);
          Apply(who, out);
        });
      }
    } else if (copy.wake_at != proto::kNever) {
      Micros gen = ++base_wake_gen_;
      At(std::max(copy.wake_at, now_), [this, gen] {
        if (base_wake_gen_ != gen) return;
        JobNodeActions out;
        base_node_->OnTimer(now_, &out);
        Apply(kBaseNode, out);
      });
    }
  }

  void FailFlowLater(NodeRef dst, Micros after) {
    NodeRef src = flows_[dst].src;
    At(now_ + after, [this, dst, src] {
      if (!nodes_[dst].alive || flows_[dst].src != src || Complete(dst)) return;
      flows_[dst] = Flow{};
      JobNodeActions out;
      nodes_[dst].core->OnFetchProgress(now_, Verified(dst), false, true, &out);
      Apply(dst, out);
    });
  }

  std::bernoulli_distribution Lost() { return std::bernoulli_distribution(p_.ctl_loss); }

  void SendCall(NodeRef from, JobCall c) {
    NodeRef to = c.kind == JobCall::Kind::kOffer ? c.to : kBaseNode;
    bool lost = p_.ctl_loss > 0 && Lost()(rng_);
    Micros there = from == kBaseNode && to == kBaseNode ? 0 : OneWay(from, to);
    uint64_t id = c.id;
    if (lost || !Alive(to)) {
      At(now_ + p_.node.call_timeout, [this, from, id] { Done(from, JobCallResult{id, false}); });
      return;
    }
    At(now_ + there, [this, from, to, there, c = std::move(c)] {
      if (!Alive(to)) {
        At(now_ + p_.node.call_timeout, [this, from, id = c.id] { Done(from, JobCallResult{id, false}); });
        return;
      }
      JobCallResult r{c.id, true};
      switch (c.kind) {
        case JobCall::Kind::kOffer: {
          JobNodeActions out;
          r.offer = CoreOf(to)->OnOffer(now_, c.offer, &out);
          Apply(to, out);
          break;
        }
        case JobCall::Kind::kProgress: base_core_->OnProgress(now_, c.progress); break;
        case JobCall::Kind::kHelp: {
          JobBaseCore::HelpAnswer h = base_core_->OnHelp(now_, from, c.help);
          if (std::getenv("CM_SIM_TRACE")) {
            std::fprintf(stderr, "%8.3f help from %lld rate %.0f -> %lld%s\n", now_ / 1e6, static_cast<long long>(from),
                         c.help.rate_bps, static_cast<long long>(h.target), h.relieve ? " (relieve)" : "");
          }
          r.target = h.target;
          r.finished = h.finished;
          r.relieve = h.relieve;
          r.rate_bps = h.rate_bps;
          break;
        }
        case JobCall::Kind::kSourceFailed: r.source = base_core_->OnSourceFailed(now_, c.source_failed); break;
        case JobCall::Kind::kUnreachable: base_core_->OnUnreachable(now_, c.unreachable); break;
      }
      At(now_ + there, [this, from, r] { Done(from, r); });
    });
  }

  void Done(NodeRef who, const JobCallResult& r) {
    JobNodeCore* core = CoreOf(who);
    if (!core) return;
    JobNodeActions out;
    core->OnCallDone(now_, r, &out);
    Apply(who, out);
  }

  void Probes() {
    for (PeerIndex i : base_core_->DueProbes(now_)) {
      Micros rtt = 2 * OneWay(kBaseNode, i);
      At(now_ + (Alive(i) ? rtt : p_.node.call_timeout), [this, i] {
        bool up = nodes_[i].alive;
        JobNodeView v = up ? nodes_[i].core->View() : JobNodeView{};
        base_core_->OnProbeDone(now_, i, up, v.in_job, v.pos, v.complete);
      });
    }
  }

  void StartTree() {
    NodeRef prev = kBaseNode;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      bool entry = i == 0 || nodes_[i].site != nodes_[i - 1].site;
      NodeRef src = entry ? prev : static_cast<NodeRef>(i - (i % p_.per_site));
      flows_[i].src = src;
      flows_[i].active_at = 2 * OneWay(src, static_cast<NodeRef>(i));
      if (entry) prev = static_cast<NodeRef>(i);
    }
  }

  // ---- crashes ----
  void ScheduleCrashes() {
    std::vector<int> order(nodes_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::shuffle(order.begin(), order.end(), rng_);
    std::uniform_int_distribution<Micros> when(p_.crash_min, std::max(p_.crash_min, p_.crash_max));
    for (int k = 0; k < std::min<int>(p_.crashes, static_cast<int>(order.size())); ++k) {
      int i = order[k];
      Micros t = when(rng_);
      At(t, [this, i] { Crash(i); });
      if (p_.down_for > 0) At(t + p_.down_for, [this, i] { Restart(i); });
    }
  }
  void Crash(int i) {
    Node& n = nodes_[i];
    if (!n.alive) return;
    ++crashed_;
    n.crashed = true;
    n.alive = false;
    n.restart_at = p_.down_for > 0 ? now_ + p_.down_for : -1;
    n.core.reset();
    n.pos = static_cast<double>(Verified(i));  // the store keeps whole records
    NodeRef src = flows_[i].src;
    flows_[i] = Flow{};
    if (JobNodeCore* s = CoreOf(src)) {  // its connection closes
      JobNodeActions out;
      s->OnChildProgress(now_, static_cast<PeerIndex>(i), Verified(i), false, true, &out);
      Apply(src, out);
    }
    for (size_t d = 0; d < flows_.size(); ++d) {
      if (flows_[d].src == i && nodes_[d].alive && !nodes_[d].complete) FailFlowLater(static_cast<NodeRef>(d), p_.detect);
    }
  }
  void Restart(int i) {
    Node& n = nodes_[i];
    JobNodeOptions no = p_.node;
    no.help = p_.switching && no.help;
    no.lan_bps = p_.lan_bps;
    n.core = std::make_unique<JobNodeCore>(peers_, static_cast<NodeRef>(i), peers_[i].up_bps, no);
    n.core->Restore(Verified(i), n.complete);
    n.alive = true;
    n.restart_at = -1;
  }

  // ---- the network ----
  void Advance() {
    if (++step_ % std::max(1, p_.alloc_every) != 0 && !last_.empty()) {
      Move(last_);
      return;
    }
    // Resources: 0 base up; per site 2 (up, down); per node 2 (nic out, nic in).
    const size_t S = site_bps_.size(), N = nodes_.size();
    auto site_up = [](size_t s) { return 1 + 2 * s; };
    auto site_down = [](size_t s) { return 2 + 2 * s; };
    auto nic_out = [S](size_t n) { return 1 + 2 * S + 2 * n; };
    auto nic_in = [S](size_t n) { return 2 + 2 * S + 2 * n; };
    std::vector<double> cap(1 + 2 * S + 2 * N);
    cap[0] = p_.base_bps;
    for (size_t s = 0; s < S; ++s) cap[site_up(s)] = cap[site_down(s)] = site_bps_[s];
    for (size_t n = 0; n < N; ++n) cap[nic_out(n)] = cap[nic_in(n)] = p_.lan_bps;
    struct F {
      size_t dst;
      std::vector<size_t> res;
      double cap;
      double rate = 0;
      bool fixed = false;
    };
    std::vector<F> fs;
    for (size_t d = 0; d < N; ++d) {
      Flow& fl = flows_[d];
      fl.rate = 0;
      if (fl.src == kNoNode || !nodes_[d].alive || nodes_[d].complete || now_ < fl.active_at || !Alive(fl.src)) continue;
      F f{d, {}, 1e18};
      if (fl.src == kBaseNode) {
        f.res = {0, site_down(nodes_[d].site)};
      } else {
        size_t s = static_cast<size_t>(fl.src);
        f.res.push_back(nic_out(s));
        if (nodes_[s].site != nodes_[d].site) {
          f.res.push_back(site_up(nodes_[s].site));
          f.res.push_back(site_down(nodes_[d].site));
        }
      }
      f.res.push_back(nic_in(d));
      if (p_.loss > 0) {
        double rtt = 2.0 * static_cast<double>(OneWay(fl.src, static_cast<NodeRef>(d))) / kSeconds;
        f.cap = 1448.0 / std::max(rtt, 1e-4) * 1.22 / std::sqrt(p_.loss);
      }
      // Caught up with a source that still receives: its rate.
      if (!Complete(fl.src) && Held(d) + static_cast<double>(p_.chunk) >= static_cast<double>(Verified(fl.src))) {
        double in = fl.src == kBaseNode ? 1e18 : flows_[fl.src].rate;
        f.cap = std::min(f.cap, in * 1.02 + 1);
      }
      fs.push_back(std::move(f));
    }
    // Max-min fair by progressive filling.
    std::vector<int> users(cap.size(), 0);
    for (F& f : fs) {
      for (size_t r : f.res) ++users[r];
    }
    double level = 0;
    size_t left = fs.size();
    while (left > 0) {
      double step = 1e18;
      for (size_t r = 0; r < cap.size(); ++r) {
        if (users[r] > 0) step = std::min(step, cap[r] / users[r]);
      }
      for (F& f : fs) {
        if (!f.fixed) step = std::min(step, f.cap - level);
      }
      step = std::max(step, 0.0);
      level += step;
      for (size_t r = 0; r < cap.size(); ++r) {
        if (users[r] > 0) cap[r] -= step * users[r];
      }
      for (F& f : fs) {
        if (f.fixed) continue;
        bool full = f.cap - level <= 1e-9;
        for (size_t r : f.res) full = full || cap[r] <= 1e-6;
        if (full) {
          f.fixed = true;
          f.rate = level;
          --left;
          for (size_t r : f.res) --users[r];
        }
      }
    }
    last_.clear();
    for (F& f : fs) last_.emplace_back(f.dst, f.rate);
    Move(last_);
  }

  void Move(const std::vector<std::pair<size_t, double>>& rates) {
    const size_t N = nodes_.size();
    double dts = static_cast<double>(p_.dt) / kSeconds;
    // Sources' positions before this step (a chain moves one hop per step at most).
    std::vector<double> before(N);
    for (size_t i = 0; i < N; ++i) before[i] = static_cast<double>(Verified(static_cast<NodeRef>(i)));
    for (const auto& [dst, rate] : rates) {
      struct {
        size_t dst;
        double rate;
      } f{dst, rate};
      Flow& fl = flows_[f.dst];
      if (fl.src == kNoNode || !nodes_[f.dst].alive || nodes_[f.dst].complete || !Alive(fl.src)) continue;
      fl.rate = f.rate;
      double limit = fl.src == kBaseNode ? static_cast<double>(p_.size) : before[fl.src];
      double np = std::min(nodes_[f.dst].pos + f.rate * dts, limit);
      bool first = Verified(static_cast<NodeRef>(f.dst)) == 0;
      if (np > nodes_[f.dst].pos) {
        if (fl.src == kBaseNode) base_sent_ += static_cast<uint64_t>(np - nodes_[f.dst].pos);
        nodes_[f.dst].pos = np;
      }
      if (nodes_[f.dst].pos >= static_cast<double>(p_.size) - 0.5) {
        nodes_[f.dst].pos = static_cast<double>(p_.size);
        nodes_[f.dst].complete = true;
        nodes_[f.dst].done_at = now_;
        Tell(f.dst);
      } else if (first && Verified(static_cast<NodeRef>(f.dst)) > 0) {
        Tell(f.dst);  // the first chunk: it may serve now
      }
    }
  }

  void Tell(size_t d) {
    if (p_.tree_mode) {
      if (nodes_[d].complete) flows_[d] = Flow{};
      return;
    }
    Flow fl = flows_[d];
    bool done = nodes_[d].complete;
    uint64_t v = Verified(static_cast<NodeRef>(d));
    JobNodeActions out;
    nodes_[d].core->OnFetchProgress(now_, v, done, done, &out);
    Apply(static_cast<NodeRef>(d), out);
    if (JobNodeCore* src = CoreOf(fl.src)) {
      src->OnChildProgress(now_, static_cast<PeerIndex>(d), v, done, done, &out);
      Apply(fl.src, out);
    }
    if (done) flows_[d] = Flow{};
  }

  void ReportTick() {
    for (size_t d = 0; d < nodes_.size(); ++d) {
      const Flow& fl = flows_[d];
      if (fl.src == kNoNode || !nodes_[d].alive || nodes_[d].complete || now_ < fl.active_at || !Alive(fl.src)) continue;
      Tell(d);
    }
  }

  bool AllLiveDone() const {
    for (const Node& n : nodes_) {
      if (!n.complete && (n.alive || n.restart_at >= 0)) return false;
    }
    return true;
  }

  SwarmResult Result() {
    SwarmResult r;
    r.all_live_done = true;
    double S = static_cast<double>(p_.size);
    double fast_bps = 0, slow_bps = 1e18, total_up = p_.base_bps;
    for (size_t s = 0; s < site_bps_.size(); ++s) {
      total_up += site_bps_[s];
      if (slow_site_[s]) slow_bps = std::min(slow_bps, site_bps_[s]);
      else fast_bps = std::max(fast_bps, site_bps_[s]);
    }
    double n_sites = static_cast<double>(site_bps_.size());
    double min_down = 1e18;
    for (double b : site_bps_) min_down = std::min(min_down, b);
    r.bound_all = std::max({S / p_.base_bps, S / min_down, n_sites * S / total_up});
    r.bound_fast = std::max({S / p_.base_bps, fast_bps > 0 ? S / fast_bps : 0.0});
    r.bound_slow = slow_bps < 1e18 ? S / slow_bps : 0;
    r.site_bps = site_bps_;
    // Tree mode: one chain of sites in sites order, pipelined, then the LAN.
    double rate = p_.base_bps, lat = static_cast<double>(base_delay_) / kSeconds;
    for (size_t s = 0; s < site_bps_.size(); ++s) {
      rate = std::min(rate, site_bps_[s]);
      lat += 2.0 * static_cast<double>(site_delay_[s]) / kSeconds;
      double t = S / rate + lat;
      r.tree_all = std::max(r.tree_all, t);
      if (!slow_site_[s]) r.tree_fast = std::max(r.tree_fast, t);
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const Node& n = nodes_[i];
      r.done_at.push_back(n.done_at);
      r.slow.push_back(slow_site_[n.site]);
      r.site.push_back(n.site);
      if (n.alive && !n.complete) r.all_live_done = false;
      if (n.done_at >= 0) {
        r.end = std::max(r.end, n.done_at);
        if (n.crashed) r.crashed_done = std::max(r.crashed_done, n.done_at);
        else if (slow_site_[n.site]) r.slow_done = std::max(r.slow_done, n.done_at);
        else r.fast_done = std::max(r.fast_done, n.done_at);
      }
      if (n.alive && !p_.tree_mode) r.switches += n.core->View().switches;
    }
    if (std::getenv("CM_SIM_TRACE")) {
      for (size_t i = 0; i < nodes_.size(); ++i) {
        const Node& n = nodes_[i];
        if (n.complete) continue;
        const JobNodeState& b = base_core_->nodes()[i];
        JobNodeView v = n.alive ? n.core->View() : JobNodeView{};
        std::fprintf(stderr,
                     "incomplete node %zu site %d alive %d pos %.0f flow src %lld | core in_job %d pos %llu src %lld "
                     "children %zu kept %zu | base heard %d down %d orphan %d probing %d next_probe %.3f\n",
                     i, n.site, n.alive, n.pos, static_cast<long long>(flows_[i].src), v.in_job,
                     static_cast<unsigned long long>(v.pos), static_cast<long long>(v.source), v.children, v.kept,
                     b.heard, b.down, b.orphan, b.probing, b.next_probe / 1e6);
      }
    }
    r.crashed = crashed_;
    for (const JobNodeState& s : base_core_->nodes()) r.repaired += s.repairs;
    r.base_sent = base_sent_;
    return r;
  }

  SwarmParams p_;
  std::mt19937_64 rng_;
  std::vector<FanPeer> peers_;
  std::vector<Node> nodes_;
  std::vector<Flow> flows_;
  std::vector<double> site_bps_;
  std::vector<Micros> site_delay_;
  std::vector<bool> slow_site_;
  Micros base_delay_ = 0;
  std::unique_ptr<JobNodeCore> base_node_;
  std::unique_ptr<JobBaseCore> base_core_;
  Micros base_wake_gen_ = 0;
  JobNodeActions acts_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t seq_ = 0;
  Micros now_ = 0;
  int crashed_ = 0;
  uint64_t base_sent_ = 0;
  uint64_t step_ = 0;
  std::vector<std::pair<size_t, double>> last_;
};

}  // namespace cm::push::testing
