// A deterministic simulation of one push job: the CCM's JobCore
// (lib/push/job_core.h) and simulated relays on virtual time, for
// job_core_sim_test.cc.
//
// Model. Every server runs a relay. A relay ordered to fetch (POST
// /v1/fetch) pulls one chunk per tick from its source: the CCM always has
// it, a relay only up to what it verified itself. Each new chunk goes to the
// CCM as /v1/progress. A relay that may serve (pipeline: one chunk;
// store-and-forward: complete) asks /v1/next until none_left and hands a
// Next on to the named relay (or reports /v1/notify-failed when it cannot).
// A relay whose source is dead asks /v1/source-failed after detect_delay and
// moves where the answer says. A complete leader posts its site report (its
// members: staged, or failed when dead) until it is acknowledged. Faults
// until fault_end: every request and Call is lost with loss_rate (a lost Call
// comes back unreached after its timeout), and `crashes` servers die at
// random times. One seeded std::mt19937_64 drives every choice.
//
// Invariants after every step: one final verdict per server per serial; no
// /v1/fetch to a server outside the plan; a replaced leader never closes its
// site. At the end: every server has a verdict, a committed server staged
// every part, and the job ended within `bound` after the faults stopped.
#pragma once

#include <cstdio>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "push/job_core.h"

namespace cm::push::testing {

using proto::kMillis;
using proto::kSeconds;

struct JobSimParams {
  int sites = 3;
  int servers = 3;          // per site
  int parts = 1;
  uint64_t chunks = 8;
  uint64_t chunk = 1000;
  size_t star_max = 3;
  bool pipeline = true;
  bool sequential = false;
  bool commit = true;
  std::string require = "all";
  double loss_rate = 0;     // until fault_end
  int crashes = 0;          // servers that die before fault_end
  Micros fault_end = 0;
  Micros tick = 50 * kMillis;
  Micros detect_delay = 1 * kSeconds;
  Micros bound = 400 * kSeconds;  // the job ends by fault_end + bound
  Micros timeout = 3600 * kSeconds;
  bool verbose = false;
};

struct JobSimOutcome {
  bool ok = true;
  std::string why;
  Micros end = 0;
  uint64_t steps = 0;
  size_t replaced = 0, ok_servers = 0, calls = 0;
};

class JobSim {
 public:
  JobSim(uint64_t seed, JobSimParams p) : p_(std::move(p)), rng_(seed) {}

  JobSimOutcome Run() {
    JobPlan plan;
    for (int i = 0; i < p_.sites; ++i) {
      JobSite s;
      s.name = "s" + std::to_string(i);
      for (int k = 0; k < p_.servers; ++k) {
        std::string n = s.name + "r" + std::to_string(k);
        s.servers.push_back({n, "http://" + n});
        relays_[n].site = s.name;
        by_url_["http://" + n] = n;
      }
      plan.sites.push_back(s);
    }
    for (int i = 0; i < p_.parts; ++i)
      plan.parts.push_back({static_cast<uint64_t>(100 + i), "job", p_.chunks * p_.chunk + 300, p_.chunks * p_.chunk, p_.chunk});
    plan.options.ccm_url = "http://ccm";
    plan.options.star_max = p_.star_max;
    plan.options.pipeline = p_.pipeline;
    plan.options.sequential = p_.sequential;
    plan.options.commit = p_.commit;
    plan.options.require = *ParseRequire(p_.require);
    plan.options.timeout = p_.timeout;
    for (const auto& ps : plan.parts) stage_serials_.insert(ps.serial);
    auto core = JobCore::Create(plan);
    if (!core.ok()) return Fail("create: " + core.status().message());
    core_ = std::move(*core);
    // Crashes.
    std::vector<std::string> names;
    for (const auto& [n, r] : relays_) names.push_back(n);
    std::shuffle(names.begin(), names.end(), rng_);
    for (int i = 0; i < p_.crashes && i < static_cast<int>(names.size()); ++i) {
      Micros at = p_.fault_end > 0 ? Uniform(0, p_.fault_end - 1) : 0;
      std::string n = names[i];
      At(at, [this, n] { relays_[n].alive = false; });
    }
    At(0, [this] { Act([&](JobActions* a) { core_->Start(now_, a); }); });
    At(p_.tick, [this] { Tick(); });
    while (!queue_.empty() && out_.ok) {
      Ev ev = queue_.top();
      queue_.pop();
      now_ = ev.at;
      if (core_->finished()) break;
      if (now_ > p_.fault_end + p_.bound) return Fail("no end " + std::to_string((now_ - p_.fault_end) / kSeconds) + " s after the faults stopped");
      ev.fn();
      ++out_.steps;
    }
    if (out_.ok && !core_->finished()) Fail("the simulation ran dry before the job ended");
    if (out_.ok) CheckEnd();
    out_.end = now_;
    return out_;
  }

 private:
  struct Xfer {
    TransferKind kind = TransferKind::kStage;
    std::string source;  // "" = the CCM
    uint64_t verified = 0;
    bool complete = false, leader = false, serve = true, reported = false, none_left = false;
    std::vector<std::string> members;
    Micros next_ask = 0, stuck_since = -1, report_at = proto::kNever, next_sf = 0;
  };
  struct Relay {
    std::string site;
    bool alive = true;
    std::map<uint64_t, Xfer> xfers;
  };
  struct Ev {
    Micros at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator<(const Ev& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  Micros Uniform(Micros lo, Micros hi) { return std::uniform_int_distribution<Micros>(lo, std::max(lo, hi))(rng_); }
  bool Lost() { return now_ < p_.fault_end && std::uniform_real_distribution<double>(0, 1)(rng_) < p_.loss_rate; }
  void At(Micros at, std::function<void()> fn) { queue_.push(Ev{at, seq_++, std::move(fn)}); }
  JobSimOutcome Fail(std::string why) {
    if (out_.ok) {
      out_.ok = false;
      out_.why = "t=" + std::to_string(now_ / kMillis) + " ms: " + why;
    }
    return out_;
  }
  uint64_t Covered(uint64_t serial) const { return stage_serials_.count(serial) ? p_.chunks * p_.chunk : 0; }

  // Runs one core event and everything it asks for; checks the invariants.
  template <typename F>
  void Act(F f) {
    JobActions a;
    f(&a);
    Handle(a);
  }
  void Handle(JobActions& a) {
    for (const Call& c : a.calls) Run(c);
    for (const StateRecord& r : a.records) {
      if (r.state == ServerState::kFetching) continue;
      if (!verdicts_[{r.server, r.serial}]++) {
        if (r.state == ServerState::kStaged) staged_[r.server].insert(r.serial);
      } else {
        Fail("a second verdict for " + r.server + " serial " + std::to_string(r.serial));
      }
    }
    for (const JobEvent& e : a.events) {
      if (e.kind == JobEvent::Kind::kLeaderChanged || e.kind == JobEvent::Kind::kSiteFailed) {
        ++out_.replaced;
        if (e.kind == JobEvent::Kind::kLeaderChanged) replaced_[e.serial].insert(e.from);
      }
      if (e.kind == JobEvent::Kind::kSiteReport && replaced_[e.serial].count(e.relay))
        Fail("replaced leader " + e.relay + " closed site " + e.site);
    }
    if (a.make_commit) {
      At(now_ + 5 * kMillis, [this] {
        Act([&](JobActions* x) { core_->OnCommitReady(now_, JobPart{900, "job", 256, 0, 0}, x); });
      });
    }
    if (a.finished) verdict_list_ = a.verdicts;
    if (a.wake_at != proto::kNever) {
      Micros w = std::max(a.wake_at, now_);
      wake_gen_++;
      uint64_t gen = wake_gen_;
      At(w, [this, gen] {
        if (gen == wake_gen_) Act([&](JobActions* x) { core_->OnTimer(now_, x); });
      });
    }
  }

  // A Call from the CCM reaches a simulated relay (or not).
  void Run(const Call& c) {
    ++out_.calls;
    auto it = by_url_.find(c.base_url);
    if (it == by_url_.end()) {
      Fail("a call to " + c.base_url + ", outside the job");
      return;
    }
    std::string name = it->second;
    bool lost = Lost() || !relays_[name].alive;
    CallResult r{c.id, false, 0, "lost"};
    if (!lost) {
      r.reached = true;
      r.status = 200;
      r.body = "{}";
      if (c.endpoint == Endpoint::kFetch) {
        auto o = ParseFetchOrder(c.body);
        if (!o.ok() || o->relay != name) {
          Fail("a bad order to " + name);
          return;
        }
        Deliver(*o, true);
      }
    }
    Micros at = now_ + (lost ? c.timeout : Uniform(1 * kMillis, 20 * kMillis));
    At(at, [this, r] { Act([&](JobActions* a) { core_->OnCallDone(now_, r, a); }); });
  }

  void Deliver(const FetchOrder& o, bool leader) {
    Relay& rl = relays_[o.relay];
    Xfer& x = rl.xfers[o.serial];
    x.kind = o.kind;
    x.source = o.source_name;
    x.leader = leader || x.leader;
    x.serve = o.serve;
    x.members.clear();
    for (const auto& m : o.members) x.members.push_back(m.name);
    x.stuck_since = -1;
    if (x.complete && x.reported) x.reported = false, x.report_at = now_ + 100 * kMillis;  // a new order: report again
  }

  // Every relay's work of one tick.
  void Tick() {
    for (auto& [name, rl] : relays_) {
      if (!rl.alive) continue;
      for (auto& [serial, x] : rl.xfers) Step(name, serial, x);
    }
    At(now_ + p_.tick, [this] { Tick(); });
  }

  void Step(const std::string& name, uint64_t serial, Xfer& x) {
    uint64_t covered = Covered(serial);
    if (!x.complete) {
      uint64_t before = x.verified;
      if (x.source.empty()) {
        x.verified = std::min(covered, x.verified + p_.chunk);
      } else {
        Relay& src = relays_[x.source];
        auto sx = src.xfers.find(serial);
        bool ahead = src.alive && sx != src.xfers.end() && sx->second.verified > x.verified;
        if (ahead) {
          x.verified = std::min(sx->second.verified, x.verified + p_.chunk);
          x.stuck_since = -1;
        } else if (!src.alive) {
          if (x.stuck_since < 0) x.stuck_since = now_;
          if (now_ - x.stuck_since >= p_.detect_delay && now_ >= x.next_sf) SourceFailedOf(name, serial, x);
        }
      }
      if (x.verified >= covered) x.complete = true;
      if (x.verified != before || x.complete) {
        if (x.complete) x.report_at = now_ + 200 * kMillis;
        if (!Lost()) {
          Progress p{serial, name, x.verified, covered, x.complete};
          Act([&](JobActions* a) { core_->OnProgress(now_, p, a); });
        }
      }
    }
    bool may_serve = p_.pipeline ? (x.verified >= p_.chunk || x.complete) : x.complete;
    if (x.serve && may_serve && !x.none_left && now_ >= x.next_ask) Ask(name, serial, x);
    if (x.complete && x.leader && !x.reported && now_ >= x.report_at) Report(name, serial, x);
  }

  void SourceFailedOf(const std::string& name, uint64_t serial, Xfer& x) {
    x.next_sf = now_ + 1 * kSeconds;
    if (Lost()) return;
    SourceFailed s{serial, name, x.source, "http://" + x.source, x.verified, "dead"};
    Reply r;
    Act([&](JobActions* a) { r = core_->OnSourceFailed(now_, s, a); });
    if (r.status != 200) return;
    auto ans = ParseSourceAnswer(r.body);
    if (!ans.ok()) {
      Fail("bad source answer " + r.body);
      return;
    }
    if (!ans->source_name.empty() && !relays_.count(ans->source_name)) {
      Fail("source answer names a stranger: " + ans->source_name);
      return;
    }
    x.source = ans->source_name;
    x.stuck_since = -1;
  }

  void Ask(const std::string& name, uint64_t serial, Xfer& x) {
    x.next_ask = now_ + 500 * kMillis;
    if (Lost()) return;
    NextAsk q{serial, name, x.verified, x.complete};
    Reply r;
    Act([&](JobActions* a) { r = core_->OnNext(now_, q, a); });
    auto ans = ParseNextAnswer(r.body);
    if (!ans.ok()) {
      Fail("bad next answer " + r.body);
      return;
    }
    if (ans->kind == NextAnswer::Kind::kNoneLeft) {
      x.none_left = true;
    } else if (ans->kind == NextAnswer::Kind::kRetry) {
      x.next_ask = now_ + ans->retry_ms * kMillis;
    } else {
      x.next_ask = now_;
      if (!relays_.count(ans->relay)) {
        Fail("next names a stranger: " + ans->relay);
        return;
      }
      FetchOrder o = ans->order;
      o.source_name = name;
      if (!Lost() && relays_[ans->relay].alive) {
        Deliver(o, true);
      } else if (!Lost()) {
        NotifyFailed n{serial, name, ans->relay, "refused"};
        Act([&](JobActions* a) { core_->OnNotifyFailed(now_, n, a); });
      }
    }
  }

  void Report(const std::string& name, uint64_t serial, Xfer& x) {
    x.report_at = now_ + 1 * kSeconds;
    if (Lost()) return;
    SiteReport rep;
    rep.serial = serial;
    rep.site = relays_[name].site;
    rep.leader = name;
    ServerState ok = SuccessState(x.kind);
    rep.servers.push_back({name, ok, "", Via::kCcm, 0});
    for (const auto& m : x.members) {
      bool alive = relays_[m].alive;
      rep.servers.push_back({m, alive ? ok : ServerState::kFailed, alive ? "" : "no report", Via::kMulticast, 0});
    }
    Act([&](JobActions* a) { core_->OnSiteReport(now_, rep, a); });
    x.reported = true;
  }

  void CheckEnd() {
    if (verdict_list_.size() != relays_.size()) {
      Fail("the report lists " + std::to_string(verdict_list_.size()) + " servers");
      return;
    }
    for (const auto& v : verdict_list_) {
      if (v.ok) ++out_.ok_servers;
      if (v.state == ServerState::kCommitted)
        for (uint64_t s : stage_serials_)
          if (!staged_[v.server].count(s)) Fail(v.server + " committed without staging " + std::to_string(s));
    }
  }

  JobSimParams p_;
  std::mt19937_64 rng_;
  std::unique_ptr<JobCore> core_;
  std::map<std::string, Relay> relays_;
  std::map<std::string, std::string> by_url_;
  std::set<uint64_t> stage_serials_;
  std::priority_queue<Ev> queue_;
  uint64_t seq_ = 0, wake_gen_ = 0;
  Micros now_ = 0;
  std::map<std::pair<std::string, uint64_t>, int> verdicts_;
  std::map<std::string, std::set<uint64_t>> staged_;
  std::map<uint64_t, std::set<std::string>> replaced_;
  std::vector<FinalVerdict> verdict_list_;
  JobSimOutcome out_;
};

}  // namespace cm::push::testing
