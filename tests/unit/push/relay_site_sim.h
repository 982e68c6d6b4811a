// A simulated site for the relay core (lib/push/relay_core.h): one leader
// core and N member cores on virtual time, a scripted CCM, and a fake edge
// under each core (fetch attempts that advance in ticks, cm-apply,
// cm-mcast send/recv as timed events, HTTP calls over a network that loses
// requests and answers). Members crash and restart (a new core; the spool,
// i.e. a complete file and what cm-apply did, survives) while faults are on.
//
// Invariants (Violations()): each site report the CCM receives names the
// leader and every member of the order exactly once; a server reported
// staged has run cm-apply successfully; no call goes to a URL outside the
// CCM, the leader and the order's members; once the faults stop, the leader
// sends its site report within ReportBound().
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "push/relay_core.h"

namespace cm::push::sim {

using proto::kMillis;
using proto::kSeconds;

struct SiteSimConfig {
  uint64_t seed = 1;
  int members = 4;
  bool stream = true;
  bool multicast = true;        // false: the order has no group (HTTP only)
  double loss = 0.05;           // per call: the request (or, half as often, the answer) is lost
  double source_break = 0.02;   // per fetch tick: the leader's source fails
  double crash = 0.01;          // per member and 100 ms: the member crashes
  Micros faults_until = 20 * kSeconds;
  Micros member_wait = 20 * kSeconds;
  Micros member_retry = 5 * kSeconds;
};

class RelaySiteSim {
 public:
  static constexpr uint64_t kSerial = 42;
  static constexpr uint64_t kSize = 10 * 1024 * 1024;
  static constexpr const char* kCcm = "http://ccm";

  explicit RelaySiteSim(const SiteSimConfig& c) : c_(c), rng_(c.seed) {
    nodes_.push_back(Node{"L", "http://L"});
    for (int i = 0; i < c.members; ++i)
      nodes_.push_back(Node{"m" + std::to_string(i), "http://m" + std::to_string(i)});
    for (auto& n : nodes_) Boot(n);
    for (size_t i = 1; i < nodes_.size(); ++i) At(0, [this, i] { CrashTick(i); });
    At(0, [this] {
      FetchOrder o;
      o.serial = kSerial;
      o.job = "j";
      o.size = kSize;
      o.source = kCcm;
      o.ccm = kCcm;
      o.relay = "L";
      o.site = "s";
      o.group = c_.multicast ? "239.1.1.1:5000" : "";
      for (size_t i = 1; i < nodes_.size(); ++i) o.members.push_back({nodes_[i].name, nodes_[i].url});
      o.stream = c_.stream;
      o.serve = false;
      Node& l = nodes_[0];
      l.core->OnFetchOrder(now_, o, &l.out);
      Apply(0);
    });
  }

  // Runs every event up to `until`; false when an invariant broke.
  bool Run(Micros until) {
    while (!queue_.empty() && queue_.begin()->first <= until && violations_.empty()) {
      auto it = queue_.begin();
      now_ = it->first;
      auto fn = std::move(it->second);
      queue_.erase(it);
      fn();
    }
    now_ = std::max(now_, until);
    if (violations_.empty() && now_ >= ReportBound() && !report_sent_at_)
      violations_.push_back("no site report by " + std::to_string(ReportBound() / kMillis) + " ms");
    return violations_.empty();
  }

  Micros ReportBound() const { return c_.faults_until + c_.member_retry + c_.member_wait + 60 * kSeconds; }
  const std::vector<std::string>& Violations() const { return violations_; }
  const std::vector<SiteReport>& Reports() const { return reports_; }
  std::optional<Micros> ReportSentAt() const { return report_sent_at_; }
  int Restarts() const { return restarts_; }

 private:
  struct Node {
    std::string name, url;
    std::unique_ptr<RelayCore> core;
    RelayActions out;
    bool up = true;
    uint64_t life = 0;       // incarnation: events of an earlier one are dropped
    uint64_t timer_gen = 0;
    // The spool (survives a crash).
    bool table_known = false, complete = false, applied = false;
    uint64_t verified = 0;
    // The running fetch attempt and children of this incarnation.
    uint64_t attempt = 0;
    std::string source;
    Micros last_progress = 0;
    std::map<ChildId, StartChild> children;
  };

  bool Faulty() const { return now_ < c_.faults_until; }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  Micros Delay() { return std::uniform_int_distribution<Micros>(1, 5)(rng_) * kMillis; }
  void At(Micros t, std::function<void()> fn) { queue_.emplace(t, std::move(fn)); }
  // Runs `fn` at `t` if node i is still the same incarnation and up.
  void AtNode(size_t i, Micros t, std::function<void()> fn) {
    uint64_t life = nodes_[i].life;
    At(t, [this, i, life, fn = std::move(fn)] {
      if (nodes_[i].up && nodes_[i].life == life) fn();
    });
  }

  void Boot(Node& n) {
    RelayCoreOptions o;
    o.name = n.name;
    o.url = n.url;
    o.member_wait = c_.member_wait;
    o.member_retry = c_.member_retry;
    n.core = std::make_unique<RelayCore>(o);
    n.up = true;
    ++n.life;
    n.attempt = 0;
    n.children.clear();
    n.core->OnFetchUpdate(now_, Held(n, 0), &n.out);
    n.out.Clear();
  }

  FetchUpdate Held(const Node& n, uint64_t attempt) const {
    return FetchUpdate{kSerial, attempt, n.table_known, n.verified, n.table_known ? kSize : 0, n.complete};
  }

  void CrashTick(size_t i) {
    Node& n = nodes_[i];
    if (!Faulty()) {
      if (!n.up) Restart(i);
      return;
    }
    if (n.up && Chance(c_.crash)) {
      n.up = false;
      n.core.reset();
      Micros back = now_ + std::uniform_int_distribution<Micros>(500, 5000)(rng_) * kMillis;
      At(back, [this, i] { Restart(i); });
    }
    At(now_ + 100 * kMillis, [this, i] { CrashTick(i); });
  }

  void Restart(size_t i) {
    if (nodes_[i].up) return;
    ++restarts_;
    Boot(nodes_[i]);
  }

  // ---- the fake edge ---------------------------------------------------------------

  void Apply(size_t i) {
    Node& n = nodes_[i];
    RelayActions a = std::move(n.out);
    n.out.Clear();
    for (const auto& c : a.calls) SendCall(i, c);
    for (uint64_t s : a.stop_fetches) {
      (void)s;
      EndAttempt(i, "cancelled");
    }
    for (const auto& f : a.fetches) {
      EndAttempt(i, "replaced");
      n.attempt = f.attempt;
      n.source = f.source_url;
      n.last_progress = now_;
      uint64_t att = f.attempt;
      AtNode(i, now_ + 50 * kMillis, [this, i, att] { FetchTick(i, att); });
    }
    for (ChildId id : a.cancel_children) {
      if (!n.children.erase(id)) continue;
      AtNode(i, now_ + kMillis, [this, i, id] { ChildEnd(i, ChildDone{id, 143, "", true, nodes_[i].complete}); });
    }
    for (const auto& c : a.children) StartChild_(i, c);
    ++n.timer_gen;
    if (a.wake_at != proto::kNever) {
      uint64_t gen = n.timer_gen;
      AtNode(i, std::max(a.wake_at, now_), [this, i, gen] {
        if (nodes_[i].timer_gen != gen) return;
        nodes_[i].core->OnTimer(now_, &nodes_[i].out);
        Apply(i);
      });
    }
  }

  void EndAttempt(size_t i, const std::string& why) {
    Node& n = nodes_[i];
    if (!n.attempt) return;
    FetchUpdate u = Held(n, n.attempt);
    u.ended = true;
    u.error = why;
    n.attempt = 0;
    AtNode(i, now_ + kMillis, [this, i, u] { Update(i, u); });
  }

  void Update(size_t i, const FetchUpdate& u) {
    nodes_[i].core->OnFetchUpdate(now_, u, &nodes_[i].out);
    Apply(i);
  }

  // One step of a fetch attempt: the CCM source always has everything; a
  // leader source serves what it has verified.
  void FetchTick(size_t i, uint64_t att) {
    Node& n = nodes_[i];
    if (n.attempt != att) return;
    std::string error;
    uint64_t avail = kSize;
    if (n.source != kCcm) {
      const Node& src = nodes_[0];
      if (n.source != src.url || !src.up) error = "connection refused";
      avail = src.verified;
    } else if (Faulty() && Chance(c_.source_break)) {
      error = "connection reset";
    }
    if (error.empty()) {
      if (!n.table_known && avail > 0) n.table_known = true;
      uint64_t next = std::min<uint64_t>(avail, n.verified + kSize / 20);
      if (next > n.verified) n.last_progress = now_;
      n.verified = std::max(n.verified, next);
      if (n.verified == kSize) n.complete = true;
      if (now_ - n.last_progress > 10 * kSeconds) error = "idle";
    }
    FetchUpdate u = Held(n, att);
    if (!error.empty() || n.complete) {
      u.ended = true;
      u.error = error;
      n.attempt = 0;
    } else {
      AtNode(i, now_ + 50 * kMillis, [this, i, att] { FetchTick(i, att); });
    }
    Update(i, u);
  }

  void StartChild_(size_t i, const StartChild& c) {
    Node& n = nodes_[i];
    n.children[c.id] = c;
    ChildId id = c.id;
    switch (c.kind) {
      case ChildKind::kApply:
        AtNode(i, now_ + 30 * kMillis, [this, i, id] {
          Node& m = nodes_[i];
          if (!m.children.count(id)) return;
          if (m.complete) m.applied = true;
          ChildEnd(i, ChildDone{id, m.complete ? 0 : 1, m.complete ? "" : "cm-apply: error: no file", false, false});
        });
        return;
      case ChildKind::kMcastSend:
        AtNode(i, now_ + 100 * kMillis, [this, i, id] { SendTick(i, id, now_); });
        return;
      case ChildKind::kMcastRecv:
        AtNode(i, now_ + c.idle_timeout_s * kSeconds, [this, i, id] {
          if (!nodes_[i].children.count(id)) return;
          ChildEnd(i, ChildDone{id, 1, "cm-mcast: error: timeout", false, nodes_[i].complete});
        });
        return;
    }
  }

  // The leader's multicast: once the leader holds the file, every receiver
  // listening gets it (or loses it while faults are on); then it ends.
  void SendTick(size_t i, ChildId id, Micros started) {
    Node& l = nodes_[i];
    auto it = l.children.find(id);
    if (it == l.children.end()) return;
    if (!l.complete && now_ - started < it->second.timeout) {
      AtNode(i, now_ + 100 * kMillis, [this, i, id, started] { SendTick(i, id, started); });
      return;
    }
    if (l.complete) {
      for (const auto& r : it->second.receivers) {
        for (size_t k = 1; k < nodes_.size(); ++k) {
          Node& m = nodes_[k];
          if (m.name != r || !m.up || (Faulty() && Chance(c_.loss))) continue;
          for (auto& [cid, child] : m.children) {
            if (child.kind != ChildKind::kMcastRecv) continue;
            m.complete = m.table_known = true;
            m.verified = kSize;
            ChildId recv = cid;
            AtNode(k, now_ + Delay(), [this, k, recv] {
              if (!nodes_[k].children.count(recv)) return;
              ChildEnd(k, ChildDone{recv, 0, "", false, true});
            });
            break;
          }
        }
      }
    }
    int code = l.complete ? 0 : 1;
    AtNode(i, now_ + 10 * kMillis, [this, i, id, code] { ChildEnd(i, ChildDone{id, code, "", false, false}); });
  }

  void ChildEnd(size_t i, const ChildDone& d) {
    Node& n = nodes_[i];
    if (!d.cancelled && !n.children.erase(d.id)) return;
    n.core->OnChildDone(now_, d, &n.out);
    Apply(i);
  }

  // ---- the network and the CCM ------------------------------------------------------

  std::optional<size_t> NodeAt(const std::string& url) const {
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].url == url) return i;
    return std::nullopt;
  }

  void SendCall(size_t from, const Call& call) {
    if (call.base_url != kCcm && !NodeAt(call.base_url))
      violations_.push_back(nodes_[from].name + " called " + call.base_url + ", outside the order");
    if (call.endpoint == Endpoint::kSiteReport && !report_sent_at_) report_sent_at_ = now_;
    const bool lose_request = Faulty() && Chance(c_.loss);
    const bool lose_answer = Faulty() && Chance(c_.loss / 2);
    Micros there = now_ + Delay();
    if (lose_request) {
      Answer(from, CallResult{call.id, false, 0, "timeout"}, now_ + call.timeout);
      return;
    }
    At(there, [this, from, call, lose_answer, life = nodes_[from].life] {
      std::optional<Reply> r = Deliver(call);
      Micros back = now_ + Delay();
      if (!r || lose_answer) {
        Answer(from, CallResult{call.id, false, 0, r ? "timeout" : "connection refused"}, r ? now_ + call.timeout : back);
        return;
      }
      (void)life;
      Answer(from, CallResult{call.id, true, r->status, r->body}, back);
    });
  }

  void Answer(size_t to, const CallResult& r, Micros at) {
    AtNode(to, at, [this, to, r] {
      nodes_[to].core->OnCallDone(now_, r, &nodes_[to].out);
      Apply(to);
    });
  }

  // The callee's reply; nullopt when it is down.
  std::optional<Reply> Deliver(const Call& call) {
    if (call.base_url == kCcm) return Ccm(call);
    size_t i = *NodeAt(call.base_url);
    Node& n = nodes_[i];
    if (!n.up) return std::nullopt;
    Reply r{400, EncodeError("bad request")};
    if (call.endpoint == Endpoint::kExpect) {
      if (auto e = ParseExpect(call.body); e.ok()) r = n.core->OnExpect(now_, *e, &n.out, call.query == "?unicast=1");
    } else if (call.endpoint == Endpoint::kMemberReport) {
      if (auto m = ParseMemberReport(call.body); m.ok()) {
        CheckStaged(m->result, "member report");
        r = n.core->OnMemberReport(now_, *m, &n.out);
      }
    } else if (call.endpoint == Endpoint::kFetch) {
      if (auto o = ParseFetchOrder(call.body); o.ok()) r = n.core->OnFetchOrder(now_, *o, &n.out);
    } else if (call.endpoint == Endpoint::kStatus) {
      RelayStatus st;
      st.name = n.name;
      st.transfers = StatusOf(n.core->View());
      r = Reply{200, Encode(st)};
    }
    Apply(i);
    return r;
  }

  Reply Ccm(const Call& call) {
    switch (call.endpoint) {
      case Endpoint::kSourceFailed: return Reply{200, Encode(SourceAnswer{kCcm, ""})};
      case Endpoint::kNext: return Reply{200, Encode(NextAnswer{})};
      case Endpoint::kSiteReport: {
        auto r = ParseSiteReport(call.body);
        if (!r.ok()) {
          violations_.push_back("unreadable site report: " + r.status().message());
          return Reply{400, EncodeError("bad")};
        }
        CheckReport(*r);
        reports_.push_back(*r);
        return Reply{200, EncodeAck()};
      }
      default: return Reply{200, EncodeAck()};
    }
  }

  void CheckStaged(const ServerResult& r, const std::string& where) {
    if (r.state != ServerState::kStaged) return;
    for (const auto& n : nodes_)
      if (n.name == r.name && !n.applied) violations_.push_back(where + ": " + r.name + " staged but never applied");
  }

  void CheckReport(const SiteReport& r) {
    std::multiset<std::string> names;
    for (const auto& s : r.servers) {
      names.insert(s.name);
      CheckStaged(s, "site report");
    }
    std::multiset<std::string> want;
    for (const auto& n : nodes_) want.insert(n.name);
    if (names != want) {
      std::string got;
      for (const auto& s : names) got += s + " ";
      violations_.push_back("site report names " + got + "instead of each server once");
    }
  }

  SiteSimConfig c_;
  proto::Rng rng_;
  Micros now_ = 0;
  std::multimap<Micros, std::function<void()>> queue_;
  std::vector<Node> nodes_;
  std::vector<SiteReport> reports_;
  std::optional<Micros> report_sent_at_;
  std::vector<std::string> violations_;
  int restarts_ = 0;
};

}  // namespace cm::push::sim
