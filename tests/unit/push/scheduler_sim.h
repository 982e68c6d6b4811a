// A deterministic fluid simulation of cm-push's data plane around the pure
// tree scheduler (lib/push/scheduler.h), for scheduler_sim_test.cc.
//
// Model. The CCM and every relay have an uplink (bytes per microsecond) shared
// equally among the children actively fetching from them; downlinks are not
// limited. A child fetches from its actual source only up to the source's
// verified bytes (the CCM holds everything) and verifies whole chunks; each
// new chunk is reported at once (OnProgress). On a source switch the child
// resumes at its verified watermark. A relay that becomes eligible (pipeline:
// one chunk; store-and-forward: complete) asks OnNext at once and keeps asking
// (RetryIn) until NoneLeft; a Next makes it notify the named relay.
// Notifications (Next hand-outs and the CCM's Orders) arrive after a random
// delay and may be lost (randomly, or always for an "unreachable" relay); the
// sender learns of a loss notify_timeout later and calls OnNotifyFailed (a
// crashed sender never does). A relay acts on a notification only if its
// epoch is not older than the last one it acted on. Crashed relays stop serving;
// their actual children notice after a random delay and call OnSourceFailed;
// the CCM may hear of a crash (OnRelayFailed) and the site may elect a new
// leader (ReplaceRelay). Time is virtual; one seeded std::mt19937_64 drives
// every random choice, so a seed replays exactly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "push/scheduler.h"

namespace cm::push::testing {

using proto::kMillis;
using proto::kSeconds;

inline double MbitToBytesPerMicro(double mbps) { return mbps * 1e6 / 8 / 1e6; }

struct SimParams {
  int relays = 4;
  uint64_t size = 1 << 20;
  uint64_t chunk = 1 << 20;
  SchedulerOptions opt;
  double ccm_mbps = 1000;
  double relay_mbps_min = 1000, relay_mbps_max = 1000;
  Micros notify_min = 1 * kMillis, notify_max = 10 * kMillis;
  Micros notify_timeout = 1 * kSeconds;
  double notify_loss = 0;   // chance a notification is lost
  int unreachable = 0;      // relays no notification ever reaches
  int crashes = 0;          // distinct initial relays that crash...
  Micros crash_window = 0;  // ...at a uniform time in [0, crash_window)
  double learn = 0;         // chance the CCM hears of a crash (OnRelayFailed, 1..10 s later)
  double replace = 0;       // chance the site elects a new leader (ReplaceRelay, 0..10 s later)
  Micros detect_min = 100 * kMillis, detect_max = 5 * kSeconds;  // a child notices a dead source
  Micros limit = 3600 * kSeconds;
  bool verbose = false;     // trace every event on stderr
};

struct SimOutcome {
  bool ok = true;
  std::string why;
  Micros finish = 0;          // when the last live relay completed
  uint64_t steps = 0;
  int unreachable_live = 0;   // live relays failed "unreachable" by policy
  int crashed = 0;
  int replaced = 0;
};

class PushSim {
 public:
  PushSim(uint64_t seed, SimParams p) : p_(std::move(p)), rng_(seed), sched_(MakeScheduler(p_)) {
    for (int i = 0; i < p_.relays; ++i) {
      Node n;
      n.name = "r" + std::to_string(i);
      n.uplink = MbitToBytesPerMicro(RandomMbps());
      index_[n.name] = i;
      nodes_.push_back(std::move(n));
    }
    std::vector<int> pick(p_.relays);
    for (int i = 0; i < p_.relays; ++i) pick[i] = i;
    std::shuffle(pick.begin(), pick.end(), rng_);
    for (int k = 0; k < std::min(p_.unreachable, p_.relays); ++k) nodes_[pick[k]].unreachable = true;
    std::shuffle(pick.begin(), pick.end(), rng_);
    for (int k = 0; k < std::min(p_.crashes, p_.relays); ++k)
      Push(Event{Uniform(0, std::max<Micros>(p_.crash_window, 1)), 0, Kind::kCrash, pick[k]});
  }

  SimOutcome Run() {
    Send(sched_.Start(0));
    Check();
    while (out_.ok && !sched_.Done()) {
      Micros until = std::min(sched_.NextWake(), queue_.empty() ? proto::kNever : queue_.top().at);
      until = std::max(until, now_);
      if (!StepData(until)) {
        Fail("nothing left to happen but the scheduler is not done");
        break;
      }
      if (now_ > p_.limit) {
        Fail("no end after " + std::to_string(p_.limit / kSeconds) + " s");
        break;
      }
      if (sched_.NextWake() <= now_) {
        Send(sched_.OnTimer(now_));
        if (sched_.NextWake() <= now_) Fail("OnTimer left work due now");
      }
      while (out_.ok && !queue_.empty() && queue_.top().at <= now_) {
        Event e = queue_.top();
        queue_.pop();
        Handle(e);
      }
      Eligibility();
      Check();
    }
    if (out_.ok) {
      std::string why = CheckEnd();
      if (!why.empty()) Fail(why);
    }
    for (const Node& n : nodes_)
      if (n.alive && n.done_at > out_.finish) out_.finish = n.done_at;
    return out_;
  }

  std::string Dump() const {
    std::string o;
    for (size_t i = 0; i < sched_.all().size(); ++i) {
      const RelayState& r = sched_.all()[i];
      const Node& n = nodes_[i];
      o += "  " + r.name + (n.alive ? "" : " DEAD") + (n.unreachable ? " UNREACHABLE" : "") + " " +
           PhaseName(r.phase) + (r.phase == RelayPhase::kFetching ? " from '" + r.source + "'" : "") +
           (r.failure.empty() ? "" : " (" + r.failure + ")") + " sched=" + std::to_string(r.verified) +
           " actual=" + std::to_string(n.verified) + " src=" + (n.has_src ? "'" + Name(n.src) + "'" : "-") +
           " kids=" + std::to_string(r.children) + " epoch=" + std::to_string(r.epoch) + "/" +
           std::to_string(n.epoch) + "\n";
    }
    return o;
  }

 private:
  static constexpr int kCcm = -1;
  struct Node {
    std::string name;
    double uplink = 0;  // bytes per microsecond
    double recv = 0;
    uint64_t verified = 0;
    bool alive = true;
    bool unreachable = false;
    bool has_src = false;
    int src = kCcm;
    uint64_t epoch = 0;
    bool asked = false;
    bool detect_pending = false;
    Micros done_at = -1;
  };
  enum class Kind { kAsk, kNotify, kNotifyFailed, kCrash, kDetect, kRelayFailed, kReplace };
  struct Event {
    Micros at = 0;
    uint64_t seq = 0;
    Kind kind = Kind::kAsk;
    int node = 0;
    int sender = kCcm;
    int source = kCcm;
    uint64_t epoch = 0;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  static Scheduler MakeScheduler(const SimParams& p) {
    std::vector<std::string> names;
    for (int i = 0; i < p.relays; ++i) names.push_back("r" + std::to_string(i));
    return Scheduler::Create(p.size, p.chunk, names, p.opt).value();
  }

  Micros Uniform(Micros lo, Micros hi) {
    return hi <= lo ? lo : std::uniform_int_distribution<Micros>(lo, hi)(rng_);
  }
  bool Chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  double RandomMbps() {
    return std::uniform_real_distribution<double>(p_.relay_mbps_min, std::max(p_.relay_mbps_min, p_.relay_mbps_max))(rng_);
  }
  void Push(Event e) {
    e.seq = seq_++;
    queue_.push(e);
  }
  int Index(const std::string& name) const {
    if (name.empty()) return kCcm;
    auto it = index_.find(name);
    return it == index_.end() ? -2 : it->second;
  }
  const std::string& Name(int i) const {
    static const std::string kCcmName;
    return i == kCcm ? kCcmName : nodes_[i].name;
  }
  void Fail(std::string why) {
    if (!out_.ok) return;
    out_.ok = false;
    out_.why = "t=" + std::to_string(now_) + " us: " + why + "\n" + Dump();
  }
  void Trace(const std::string& line) const {
    if (p_.verbose) fprintf(stderr, "%12lld %s\n", static_cast<long long>(now_), line.c_str());
  }
  bool Eligible(const Node& n) const {
    return p_.opt.pipeline ? n.verified >= std::min(p_.chunk, p_.size) : n.verified == p_.size;
  }

  void Send(const std::vector<Order>& orders) {
    for (const Order& o : orders) {
      if (p_.verbose) Trace("ccm orders " + o.relay + " <- '" + o.source + "' epoch " + std::to_string(o.epoch));
      Push(Event{now_ + Uniform(p_.notify_min, p_.notify_max), 0, Kind::kNotify, Index(o.relay), kCcm,
                 Index(o.source), o.epoch});
    }
  }

  void Switch(Node& n, int src, uint64_t epoch) {
    if (epoch < n.epoch || n.verified == p_.size) return;
    n.has_src = true;
    n.src = src;
    n.epoch = epoch;
    n.recv = static_cast<double>(n.verified);  // resume at the verified watermark
    n.detect_pending = false;
  }

  // Moves bytes until `until` or the next chunk boundary, whichever is first;
  // false when nothing can ever happen again.
  bool StepData(Micros until) {
    const int n = static_cast<int>(nodes_.size());
    std::vector<int>& active = active_;
    std::vector<int>& count = count_;
    std::vector<double>& target = target_;
    active.clear();
    count.assign(n + 1, 0);
    target.assign(n, 0);
    for (int i = 0; i < n; ++i) {
      Node& x = nodes_[i];
      if (!x.alive || !x.has_src || x.verified == p_.size) continue;
      if (x.src != kCcm && !nodes_[x.src].alive) continue;
      const uint64_t cap = x.src == kCcm ? p_.size : nodes_[x.src].verified;
      if (x.recv >= static_cast<double>(cap)) continue;
      active.push_back(i);
      ++count[x.src + 1];
      target[i] = static_cast<double>(std::min((x.verified / p_.chunk + 1) * p_.chunk, p_.size));
    }
    auto rate = [&](int i) {
      int s = nodes_[i].src;
      return (s == kCcm ? MbitToBytesPerMicro(p_.ccm_mbps) : nodes_[s].uplink) / count[s + 1];
    };
    Micros next = until;
    for (int i : active) {
      double dt = std::ceil((target[i] - nodes_[i].recv) / rate(i));
      next = std::min<Micros>(next, now_ + std::max<Micros>(1, static_cast<Micros>(dt)));
    }
    if (next == proto::kNever) return false;
    const double dt = static_cast<double>(next - now_);
    std::vector<int>& advanced = advanced_;
    advanced.clear();
    for (int i : active) {
      Node& x = nodes_[i];
      x.recv += rate(i) * dt;
      if (x.recv >= target[i] - 1e-6) {
        x.recv = target[i];
        x.verified = static_cast<uint64_t>(target[i]);
        advanced.push_back(i);
      }
    }
    now_ = next;
    ++out_.steps;
    for (int i : advanced) {
      Node& x = nodes_[i];
      const bool complete = x.verified == p_.size;
      if (complete) x.done_at = now_;
      Send(sched_.OnProgress(now_, x.name, x.verified, complete));
    }
    return true;
  }

  void Eligibility() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      Node& x = nodes_[i];
      if (!x.alive) continue;
      if (!x.asked && Eligible(x)) {
        x.asked = true;
        Push(Event{now_, 0, Kind::kAsk, static_cast<int>(i)});
      }
      if (x.has_src && x.src != kCcm && !nodes_[x.src].alive && !x.detect_pending && x.verified < p_.size) {
        x.detect_pending = true;
        Push(Event{now_ + Uniform(p_.detect_min, p_.detect_max), 0, Kind::kDetect, static_cast<int>(i), kCcm, x.src});
      }
    }
  }

  void Handle(const Event& e) {
    Node& n = nodes_[e.node];
    switch (e.kind) {
      case Kind::kAsk: {
        if (!n.alive) return;
        Answer a = sched_.OnNext(now_, n.name, n.verified);
        if (const Next* next = std::get_if<Next>(&a)) {
          if (p_.verbose) Trace(n.name + " asks: next " + next->relay);
          Push(Event{now_ + Uniform(p_.notify_min, p_.notify_max), 0, Kind::kNotify, Index(next->relay), e.node,
                     e.node, next->epoch});
          Push(Event{now_, 0, Kind::kAsk, e.node});
        } else if (const RetryIn* r = std::get_if<RetryIn>(&a)) {
          if (r->delay <= 0) Fail("RetryIn without a delay");
          Push(Event{now_ + r->delay, 0, Kind::kAsk, e.node});
        } else {
          if (p_.verbose) Trace(n.name + " asks: none left");
          for (const RelayState* r : sched_.relays())
            if (r->phase == RelayPhase::kWaiting || (r->phase == RelayPhase::kFetching && !r->confirmed))
              Fail("NoneLeft while " + r->name + " is " + PhaseName(r->phase));
        }
        return;
      }
      case Kind::kNotify: {
        const bool lost = !n.alive || n.unreachable || Chance(p_.notify_loss);
        if (p_.verbose) Trace("notify " + n.name + " <- '" + Name(e.source) + "' epoch " + std::to_string(e.epoch) +
              (lost ? " LOST" : ""));
        if (lost) {
          Push(Event{now_ + p_.notify_timeout, 0, Kind::kNotifyFailed, e.node, e.sender, e.source, e.epoch});
        } else {
          Switch(n, e.source, e.epoch);
        }
        return;
      }
      case Kind::kNotifyFailed:
        if (e.sender == kCcm || nodes_[e.sender].alive) {
          if (p_.verbose) Trace("notify failed " + n.name + " <- '" + Name(e.source) + "'");
          Send(sched_.OnNotifyFailed(now_, Name(e.source), n.name));
        }
        return;
      case Kind::kCrash:
        if (p_.verbose) Trace("crash " + n.name);
        n.alive = false;
        ++out_.crashed;
        if (Chance(p_.learn)) Push(Event{now_ + Uniform(1 * kSeconds, 10 * kSeconds), 0, Kind::kRelayFailed, e.node});
        if (Chance(p_.replace)) Push(Event{now_ + Uniform(0, 10 * kSeconds), 0, Kind::kReplace, e.node});
        return;
      case Kind::kRelayFailed:
        if (p_.verbose) Trace("ccm hears " + n.name + " is dead");
        Send(sched_.OnRelayFailed(now_, n.name));
        return;
      case Kind::kReplace: {
        Node fresh;
        fresh.name = n.name + "+";
        fresh.uplink = MbitToBytesPerMicro(RandomMbps());
        const std::string old = n.name;  // `n` dangles once nodes_ grows
        index_[fresh.name] = static_cast<int>(nodes_.size());
        nodes_.push_back(fresh);
        ++out_.replaced;
        if (p_.verbose) Trace("site of " + old + " elects " + fresh.name);
        auto orders = sched_.ReplaceRelay(now_, old, fresh.name);
        if (!orders.ok()) return Fail("ReplaceRelay: " + orders.status().ToString());
        if (sched_.all().size() != nodes_.size()) return Fail("scheduler and simulation disagree on the relays");
        Send(*orders);
        return;
      }
      case Kind::kDetect: {
        if (!n.alive || !n.has_src || n.src != e.source || n.verified == p_.size) return;
        n.detect_pending = false;
        auto o = sched_.OnSourceFailed(now_, n.name, Name(e.source), n.verified);
        if (p_.verbose) Trace(n.name + " lost '" + Name(e.source) + "': " + (o.ok() ? "now from '" + o->source + "'" : o.status().ToString()));
        if (!o.ok()) {
          n.has_src = false;
          return;
        }
        Switch(n, Index(o->source), o->epoch);
        return;
      }
    }
  }

  void Check() {
    if (!out_.ok) return;
    std::string why = CheckInvariants();
    if (!why.empty()) Fail(why);
  }

  std::string CheckInvariants() {
    const auto& all = sched_.all();
    const int n = static_cast<int>(all.size());
    if (n != static_cast<int>(nodes_.size())) return "relay count mismatch";
    const SchedulerOptions& o = sched_.options();
    std::vector<int>& kids = kids_;
    std::vector<int>& src = src_;
    kids.assign(n, 0);
    src.assign(n, -3);
    src_cache_.resize(n, kCcm);
    int ccm_kids = 0, ccm_within = 0;
    for (int i = 0; i < n; ++i) {
      const RelayState& r = all[i];
      if (r.phase == RelayPhase::kFetching) {
        if (r.source.empty()) {
          ++ccm_kids;
          if (!r.over_limit) ++ccm_within;
          src[i] = kCcm;
        } else {
          int& j = src_cache_[i];  // usually unchanged since the last check: skip the lookup
          if (j < 0 || nodes_[j].name != r.source) j = Index(r.source);
          if (j < 0 || j == i) return r.name + " fetches from bad source '" + r.source + "'";
          if (all[j].phase != RelayPhase::kFetching && all[j].phase != RelayPhase::kComplete)
            return r.name + " fetches from " + r.source + " which is " + PhaseName(all[j].phase);
          ++kids[j];
          src[i] = j;
        }
      } else if (!r.source.empty()) {
        return r.name + " is " + PhaseName(r.phase) + " but names a source";
      }
      if (r.verified > nodes_[i].verified) return r.name + ": scheduler has more bytes than the relay";
      if (r.phase == RelayPhase::kComplete && nodes_[i].verified != p_.size) return r.name + ": complete too early";
    }
    for (int i = 0; i < n; ++i) {
      const RelayState& r = all[i];
      if (kids[i] != r.children) return r.name + ": children count " + std::to_string(r.children) + " != " + std::to_string(kids[i]);
      if (kids[i] > o.relay_children) return r.name + ": too many children";
      if (kids[i] == 0) continue;
      if (r.phase == RelayPhase::kWaiting || r.phase == RelayPhase::kFailed)
        return r.name + " is " + PhaseName(r.phase) + " with children";
      if (!o.pipeline && r.phase != RelayPhase::kComplete) return r.name + " serves before it is complete";
      if (o.pipeline && r.verified < std::min(p_.chunk, p_.size)) return r.name + " serves without a chunk";
    }
    if (ccm_kids != sched_.ccm_children()) return "ccm children count mismatch";
    if (ccm_within > sched_.ccm_capacity()) return "the CCM took too many children from the waiting list";
    // No cycles: every fetching relay's chain of sources ends at the CCM or
    // at a complete relay within n hops (memoized).
    std::vector<char>& good = good_;
    std::vector<int>& path = path_;
    good.assign(n, 0);
    for (int i = 0; i < n; ++i) {
      int cur = i, hops = 0;
      path.clear();
      while (cur >= 0 && !good[cur] && all[cur].phase == RelayPhase::kFetching) {
        path.push_back(cur);
        if (++hops > n) return "a cycle through " + all[i].name;
        cur = src[cur];
      }
      for (int k : path) good[k] = 1;
    }
    return "";
  }

  std::string CheckEnd() {
    const bool lossy = p_.notify_loss > 0;
    for (const RelayState* r : sched_.relays()) {
      const Node& x = nodes_[Index(r->name)];
      if (x.unreachable && x.alive) {
        if (r->phase != RelayPhase::kFailed || r->failure != "unreachable")
          return r->name + " is unreachable yet ended " + PhaseName(r->phase);
        continue;
      }
      if (!x.alive || r->phase == RelayPhase::kComplete) continue;
      if (r->phase == RelayPhase::kFailed && r->failure == "unreachable" && lossy) {
        ++out_.unreachable_live;
        continue;
      }
      return "live relay " + r->name + " ended " + PhaseName(r->phase) + " " + r->failure;
    }
    return "";
  }

  SimParams p_;
  std::mt19937_64 rng_;
  Scheduler sched_;
  std::vector<Node> nodes_;  // index i <-> sched_.all()[i]
  std::unordered_map<std::string, int> index_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  uint64_t seq_ = 0;
  Micros now_ = 0;
  SimOutcome out_;
  // Scratch buffers reused by every step (the runs are allocation-bound otherwise).
  std::vector<int> active_, count_, advanced_, kids_, src_, path_, src_cache_;
  std::vector<double> target_;
  std::vector<char> good_;
};

}  // namespace cm::push::testing
