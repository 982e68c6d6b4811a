#include "push/job_core.h"

#include <algorithm>

#include "push/ordering.h"
#include "util/json.h"
#include "util/json_value.h"

namespace cm::push {

const char* ReplaceReasonText(ReplaceReason r) {
  switch (r) {
    case ReplaceReason::kUnreachable: return "unreachable";
    case ReplaceReason::kStalled: return "stalled";
    case ReplaceReason::kNotAnswering: return "relay not answering";
    case ReplaceReason::kDiedMidTransfer: return "relay died mid-transfer";
    case ReplaceReason::kNoReport: return "no site report";
    case ReplaceReason::kRefused: return "refused";
    case ReplaceReason::kRelayFailed: return "failed";
  }
  return "?";
}

namespace {

Reply Ack() { return Reply{200, EncodeAck()}; }
Reply Stale() { return Reply{200, JsonObject().Bool("stale", true).Build()}; }
bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

// One part on its way to one set of servers (the whole part, or in
// sequential mode one server of it).
struct JobCore::Phase {
  uint64_t seq = 0;
  std::map<std::string, std::vector<std::string>> targets;  // site -> servers
  std::map<std::string, std::string> leader;                // site -> current leader
  std::map<std::string, ServerResult> results;              // server -> this phase's verdict
  std::set<std::string> done;                               // closed sites
  std::map<std::string, uint64_t> verified;                 // leader -> bytes held
  std::map<std::string, int> probe_failures;                // site -> failed probes of its leader in a row
  std::set<std::string> probing;                            // sites with a watchdog probe in flight
  std::set<std::string> replaced;                           // leaders replaced: never lead or serve again
  std::map<std::string, Micros> report_due;                 // site -> its complete leader's report is overdue then
  std::unique_ptr<Scheduler> sched;
  Micros next_probe = proto::kNever;
  bool finished() const { return done.size() >= targets.size(); }
  bool Failed(const std::string& s) const {
    auto it = results.find(s);
    return it != results.end() && it->second.state == ServerState::kFailed;
  }
};

JobCore::JobCore(JobPlan plan) : plan_(std::move(plan)) {}
JobCore::~JobCore() = default;

Result<std::unique_ptr<JobCore>> JobCore::Create(JobPlan plan) {
  if (plan.sites.empty()) return Error(Code::kUsage, "job: no sites");
  if (plan.parts.empty()) return Error(Code::kUsage, "job: no assignment");
  for (size_t i = 1; i < plan.parts.size(); ++i)
    if (plan.parts[i].serial <= plan.parts[i - 1].serial)
      return Error(Code::kUsage, "job: serial " + std::to_string(plan.parts[i].serial) + " is not after the previous part's");
  std::unique_ptr<JobCore> core(new JobCore(std::move(plan)));
  for (size_t i = 0; i < core->plan_.sites.size(); ++i) {
    const JobSite& site = core->plan_.sites[i];
    if (site.servers.empty()) return Error(Code::kUsage, "job: site " + site.name + " has no servers");
    for (const JobServer& s : site.servers)
      if (!core->server_index_.emplace(s.name, i).second)
        return Error(Code::kUsage, "job: server " + s.name + " is listed twice");
    if (!site.elected_leader.empty()) core->elected_[site.name] = site.elected_leader;
  }
  return core;
}

const JobServer* JobCore::FindServer(const std::string& name) const {
  auto it = server_index_.find(name);
  if (it == server_index_.end()) return nullptr;
  for (const JobServer& s : plan_.sites[it->second].servers)
    if (s.name == name) return &s;
  return nullptr;
}

std::string JobCore::SiteOf(const std::string& server) const {
  auto it = server_index_.find(server);
  return it == server_index_.end() ? "" : plan_.sites[it->second].name;
}

uint64_t JobCore::serial() const { return phase_ ? cur_part_.serial : 0; }

std::string JobCore::LeaderOf(const std::string& site) const {
  if (!phase_) return "";
  auto it = phase_->leader.find(site);
  return it == phase_->leader.end() ? "" : it->second;
}

std::vector<JobSiteStatus> JobCore::SiteStatus() const {
  std::vector<JobSiteStatus> out;
  if (!phase_) return out;
  for (const auto& [site, leader] : phase_->leader) {
    auto v = phase_->verified.find(leader);
    out.push_back({site, leader, v == phase_->verified.end() ? 0 : v->second, phase_->done.count(site) > 0});
  }
  return out;
}

// ---- parts and phases ---------------------------------------------------------

void JobCore::Start(Micros now, JobActions* out) {
  if (stage_ != JobStage::kIdle) return;
  deadline_ = plan_.options.timeout > proto::kNever - now ? proto::kNever : now + plan_.options.timeout;
  stage_ = JobStage::kTransfer;
  for (const JobSite& site : plan_.sites)
    for (const JobServer& s : site.servers) targets_[site.name].push_back(s.name);
  part_ = 0;
  BeginPart(now, plan_.parts[0], plan_.options.switch_job ? TransferKind::kCommit : TransferKind::kStage, out);
  Settle(now, out);
}

void JobCore::BeginPart(Micros now, const JobPart& part, TransferKind kind, JobActions* out) {
  cur_part_ = part;
  cur_kind_ = kind;
  queue_.clear();
  if (plan_.options.sequential && kind == TransferKind::kStage) {
    for (const auto& [site, servers] : targets_)
      for (const auto& s : servers) queue_.push_back({{site, {s}}});
  } else if (!targets_.empty()) {
    queue_.push_back(targets_);
  }
  StartNextPhase(now, out);
}

void JobCore::StartNextPhase(Micros now, JobActions* out) {
  if (!queue_.empty()) {
    auto targets = std::move(queue_.front());
    queue_.erase(queue_.begin());
    StartPhase(now, targets, out);
    return;
  }
  // The part is over: its successes are the next part's targets.
  std::map<std::string, std::vector<std::string>> next;
  for (const auto& [site, servers] : targets_)
    for (const auto& s : servers) {
      auto it = final_.find(s);
      if (it != final_.end() && it->second.state == SuccessState(cur_kind_)) next[site].push_back(s);
    }
  targets_ = std::move(next);
  if (cur_kind_ == TransferKind::kCommit) {
    out->update_shadow = true;
    Finish(now, false, out);
    return;
  }
  if (++part_ < plan_.parts.size()) {
    BeginPart(now, plan_.parts[part_], TransferKind::kStage, out);
    return;
  }
  AfterStageParts(now, out);
}

void JobCore::StartPhase(Micros now, const std::map<std::string, std::vector<std::string>>& targets,
                         JobActions* out) {
  auto ph = std::make_unique<Phase>();
  ph->seq = ++phase_seq_;
  ph->targets = targets;
  // Leaders: the one cm-leader elected, else the sites file's, else the first server.
  std::vector<LeaderFacts> facts;
  for (const auto& [site, servers] : targets) {
    const JobSite& js = plan_.sites[server_index_.at(servers.front())];
    std::string leader;
    if (auto e = elected_.find(site); e != elected_.end() && Contains(servers, e->second)) leader = e->second;
    if (leader.empty() && !js.preferred_leader.empty() && Contains(servers, js.preferred_leader))
      leader = js.preferred_leader;
    // A server that did not answer at start leads only when none did.
    if (leader.empty() || FindServer(leader)->down)
      for (const auto& s : servers)
        if (!FindServer(s)->down) {
          if (leader.empty() || FindServer(leader)->down) leader = s;
          break;
        }
    if (leader.empty()) leader = servers.front();
    ph->leader[site] = leader;
    const JobServer* ls = FindServer(leader);
    LeaderFacts f;
    f.name = leader;
    f.site = site;
    if (ls->idle_cpu_permille) f.cpu_permille = *ls->idle_cpu_permille;
    else if (js.idle_cpu_permille) f.cpu_permille = *js.idle_cpu_permille;
    f.rate_bps = ls->rate_bps;
    f.reliability = ls->reliability;
    f.tz_offset_minutes = ls->tz_offset_minutes;
    facts.push_back(f);
  }
  OrderingOptions oo;
  oo.admin_order = plan_.options.admin_order;
  std::vector<std::string> ordered = OrderLeaders(facts, oo).names;
  SchedulerOptions so;
  so.star_max = plan_.options.sequential ? ordered.size() : plan_.options.star_max;
  so.pipeline = plan_.options.pipeline;
  so.stall_timeout = plan_.options.stall_timeout;
  // A control assignment (commit, rollback) has no chunks: one byte of
  // "size" that a relay holds once it reports complete.
  auto sched = Scheduler::Create(std::max<uint64_t>(cur_part_.covered, 1), std::max<uint64_t>(cur_part_.chunk_size, 1),
                                 ordered, so);
  JobEvent ev;
  ev.kind = JobEvent::Kind::kPhase;
  ev.serial = cur_part_.serial;
  ev.transfer = cur_kind_;
  ev.bytes = cur_part_.size;
  ev.count = targets.size();
  out->events.push_back(ev);
  for (const auto& [site, servers] : targets) {
    JobEvent se;
    se.kind = JobEvent::Kind::kSiteStarted;
    se.serial = cur_part_.serial;
    se.site = site;
    se.relay = ph->leader[site];
    se.count = servers.size();
    out->events.push_back(se);
    for (const auto& s : servers) out->records.push_back({s, site, ServerState::kFetching, cur_part_.serial, "", 0});
  }
  phase_ = std::move(ph);
  if (!sched.ok()) {  // cannot happen with a valid plan; fail the phase rather than hang
    for (const auto& [site, servers] : targets) {
      for (const auto& s : servers) Verdict({s, ServerState::kFailed, sched.status().message(), Via::kNone, 0}, site, out);
      phase_->done.insert(site);
    }
    return;
  }
  phase_->sched = std::make_unique<Scheduler>(std::move(*sched));
  phase_->next_probe = now + plan_.options.probe_interval;
  SendOrders(now, phase_->sched->Start(now), out);
}

void JobCore::EndPhase(Micros now, bool timed_out, JobActions* out) {
  (void)now;
  if (!phase_) return;
  if (timed_out) {
    JobEvent ev;
    ev.kind = JobEvent::Kind::kTimedOut;
    ev.serial = cur_part_.serial;
    out->events.push_back(ev);
  }
  // Whoever has not answered by now failed.
  for (const auto& [site, servers] : phase_->targets)
    for (const auto& s : servers)
      if (!phase_->results.count(s))
        Verdict({s, ServerState::kFailed, timed_out ? "timed out" : "no report", Via::kNone, 0}, site, out);
  phase_.reset();
  retries_.clear();  // calls still in flight are stale now (their phase is gone)
}

void JobCore::MaybeEndPhase(Micros now, JobActions* out) {
  // A phase may end at once (e.g. every leader failed): loop until one runs.
  while (stage_ == JobStage::kTransfer && phase_ && phase_->finished()) {
    EndPhase(now, false, out);
    StartNextPhase(now, out);
  }
  if (stage_ == JobStage::kTransfer && !phase_) StartNextPhase(now, out);
}

void JobCore::AfterStageParts(Micros now, JobActions* out) {
  size_t staged = 0, total = server_index_.size();
  for (const auto& [site, servers] : targets_) staged += servers.size();
  if (!plan_.options.commit) {
    Finish(now, false, out);
    return;
  }
  JobEvent ev;
  ev.count = staged;
  ev.total = total;
  if (staged > 0 && CommitAllowed(plan_.options.require, staged, total)) {
    stage_ = JobStage::kAwaitCommit;
    out->make_commit = true;
    return;
  }
  ev.kind = JobEvent::Kind::kCommitRefused;
  out->events.push_back(ev);
  for (auto& [name, r] : final_)
    if (r.state == ServerState::kStaged)
      r.error = "staged, not committed (--require " + ToString(plan_.options.require) + ")";
  Finish(now, false, out);
}

void JobCore::OnCommitReady(Micros now, const Result<JobPart>& part, JobActions* out) {
  if (stage_ != JobStage::kAwaitCommit) return Settle(now, out);
  if (!part.ok()) {
    for (auto& [name, r] : final_)
      if (r.state == ServerState::kStaged) r.error = "commit not made: " + part.status().message();
    Finish(now, false, out);
    return;
  }
  size_t staged = 0;
  for (const auto& [site, servers] : targets_) staged += servers.size();
  JobEvent ev;
  ev.kind = JobEvent::Kind::kCommit;
  ev.serial = part->serial;
  ev.count = staged;
  ev.total = server_index_.size();
  out->events.push_back(ev);
  stage_ = JobStage::kTransfer;
  BeginPart(now, part.value(), TransferKind::kCommit, out);
  Settle(now, out);
}

void JobCore::Finish(Micros now, bool timed_out, JobActions* out) {
  (void)now;
  if (stage_ == JobStage::kFinished) return;
  phase_.reset();
  queue_.clear();
  retries_.clear();
  stage_ = JobStage::kFinished;
  ServerState want =
      plan_.options.commit || plan_.options.switch_job ? ServerState::kCommitted : ServerState::kStaged;
  for (const JobSite& site : plan_.sites) {
    for (const JobServer& s : site.servers) {
      auto it = final_.find(s.name);
      ServerResult r;
      if (it != final_.end()) {
        r = it->second;
      } else {
        r = {s.name, ServerState::kFailed, timed_out ? "timed out" : "not reached", Via::kNone, 0};
        if (timed_out) out->records.push_back({s.name, site.name, r.state, cur_part_.serial, r.error, 0});
      }
      if (timed_out && r.state != want && r.error.empty()) r.error = "timed out";
      FinalVerdict v;
      v.server = s.name;
      v.site = site.name;
      v.state = r.state;
      auto sr = final_serial_.find(s.name);
      v.serial = sr == final_serial_.end() ? 0 : sr->second;
      v.error = r.error;
      v.apply_exit = r.apply_exit;
      v.release = r.release;
      v.manifest = r.manifest;
      v.ok = r.state == want;
      out->verdicts.push_back(std::move(v));
    }
  }
  out->finished = true;
  out->wake_at = proto::kNever;
}

// ---- orders, probes, verdicts ---------------------------------------------------

FetchOrder JobCore::OrderFor(const std::string& relay, const std::string& source) const {
  FetchOrder o;
  o.serial = cur_part_.serial;
  o.job = cur_part_.job;
  o.kind = cur_kind_;
  o.size = cur_part_.size;
  o.source_name = source;
  const JobServer* src = source.empty() ? nullptr : FindServer(source);
  o.source = src ? src->url : plan_.options.ccm_url;
  o.ccm = plan_.options.ccm_url;
  o.ccm_id = plan_.options.ccm_id;
  o.relay = relay;
  o.site = SiteOf(relay);
  if (auto it = server_index_.find(relay); it != server_index_.end()) o.group = plan_.sites[it->second].group;
  if (phase_) {
    auto it = phase_->targets.find(o.site);
    if (it != phase_->targets.end())
      for (const auto& s : it->second) {
        if (s == relay || phase_->Failed(s) || phase_->replaced.count(s)) continue;
        if (const JobServer* m = FindServer(s)) o.members.push_back({s, m->url, {}});
      }
  }
  if (plan_.options.seal) {
    const JobServer* self = FindServer(relay);
    for (Member& m : o.members) {
      Expect e;
      e.serial = o.serial;
      e.job = o.job;
      e.kind = o.kind;
      e.size = o.size;
      e.name = m.name;
      e.leader = relay;
      e.leader_url = self ? self->url : "";
      e.group = o.group;
      m.expect = plan_.options.seal(m.name, Endpoint::kExpect, Encode(e));
    }
  }
  o.serve = !plan_.options.sequential;
  o.stream = plan_.options.pipeline;
  return o;
}

void JobCore::SendOrders(Micros now, const std::vector<Order>& orders, JobActions* out) {
  for (const Order& o : orders) SendOrder(now, o, 1, out);
}

void JobCore::SendOrder(Micros now, const Order& order, int attempt, JobActions* out) {
  (void)now;
  const JobServer* to = FindServer(order.relay);
  if (!to || !phase_) return;  // never an order outside the job
  FetchOrder o = OrderFor(order.relay, order.source);
  if (attempt == 1) {
    JobEvent ev;
    ev.kind = JobEvent::Kind::kOrder;
    ev.serial = o.serial;
    ev.relay = o.relay;
    ev.site = o.site;
    ev.from = order.source;
    out->events.push_back(ev);
  }
  Pending p;
  p.kind = Pending::Kind::kOrder;
  p.phase = phase_->seq;
  p.server = order.relay;
  p.order = order;
  p.attempt = attempt;
  CallId id = next_call_++;
  calls_[id] = p;
  Call call{id, to->url, Endpoint::kFetch, Encode(o), plan_.options.order_timeout, order.relay, ""};
  if (plan_.options.seal) {
    Sealed sealed = plan_.options.seal(order.relay, Endpoint::kFetch, call.body);
    call.body = std::move(sealed.body);
    call.auth = std::move(sealed.auth);
  }
  out->calls.push_back(std::move(call));
}

void JobCore::SendProbe(Micros now, const std::string& server, Pending::Probe why, const std::string& detail,
                        JobActions* out) {
  (void)now;
  const JobServer* to = FindServer(server);
  if (!to || !phase_) return;
  Pending p;
  p.kind = Pending::Kind::kProbe;
  p.probe = why;
  p.phase = phase_->seq;
  p.server = server;
  p.detail = detail;
  CallId id = next_call_++;
  calls_[id] = p;
  out->calls.push_back(Call{id, to->url, Endpoint::kStatus, "", plan_.options.probe_timeout, server, ""});
}

// The site's leader is gone: it fails; the next leader is the one cm-leader
// elected when that is still a candidate, else the next server of the site;
// the scheduler moves the transfer (and re-parents whom the old one fed).
void JobCore::ReplaceLeader(Micros now, const std::string& site, ReplaceReason why, const std::string& detail,
                            JobActions* out, int apply_exit) {
  if (!phase_ || !phase_->sched || phase_->done.count(site) || !phase_->leader.count(site)) return;
  Phase& ph = *phase_;
  std::string old = ph.leader[site];
  if (!ph.replaced.insert(old).second) return;  // already replaced
  std::string text = why == ReplaceReason::kRelayFailed && !detail.empty() ? detail : ReplaceReasonText(why);
  if (why != ReplaceReason::kRelayFailed && !detail.empty()) text += ": " + detail;
  // A leader that staged already (a replaced leader reported it) keeps that
  // verdict; the site still needs a leader that reports.
  if (!ph.results.count(old)) {
    Verdict({old, ServerState::kFailed, text, Via::kNone, apply_exit}, site, out);
    JobEvent fe;
    fe.kind = JobEvent::Kind::kServer;
    fe.serial = cur_part_.serial;
    fe.server = old;
    fe.site = site;
    fe.state = ServerState::kFailed;
    fe.error = text;
    fe.apply_exit = apply_exit;
    out->events.push_back(fe);
  }
  std::vector<std::string> candidates;
  for (const auto& s : ph.targets[site])
    if (!ph.replaced.count(s) && !ph.Failed(s)) candidates.push_back(s);
  std::string next;
  if (auto e = elected_.find(site); e != elected_.end() && e->second != old && Contains(candidates, e->second))
    next = e->second;
  if (next.empty() && !candidates.empty()) next = candidates.front();
  JobEvent ev;
  ev.site = site;
  ev.serial = cur_part_.serial;
  if (next.empty()) {
    ph.done.insert(site);
    ev.kind = JobEvent::Kind::kSiteFailed;
    ev.error = text;
    out->events.push_back(ev);
    SendOrders(now, ph.sched->OnRelayFailed(now, old), out);
    return;
  }
  ph.leader[site] = next;
  ph.report_due.erase(site);
  ph.probe_failures[site] = 0;
  ev.kind = JobEvent::Kind::kLeaderChanged;
  ev.from = old;
  ev.to = next;
  ev.reason = why;
  ev.error = text;
  out->events.push_back(ev);
  auto moved = ph.sched->ReplaceRelay(now, old, next);
  if (!moved.ok()) return;
  for (const Order& o : *moved) {
    if (o.relay == next) continue;
    const RelayState* rs = ph.sched->Find(o.relay);
    JobEvent re;
    re.kind = JobEvent::Kind::kReparent;
    re.serial = cur_part_.serial;
    re.relay = o.relay;
    re.site = SiteOf(o.relay);
    re.from = old;
    re.to = o.source;
    re.bytes = rs ? rs->verified : 0;
    out->events.push_back(re);
  }
  SendOrders(now, *moved, out);
}

void JobCore::Verdict(const ServerResult& given, const std::string& site, JobActions* out) {
  if (!phase_ || phase_->results.count(given.name)) return;  // one verdict per server per part
  ServerResult r = given;
  // A record must be the truth: committed means the tree the job makes.
  const std::string& want = plan_.options.expect_manifest;
  if (r.state == ServerState::kCommitted && !want.empty() && !r.manifest.empty() && r.manifest != want) {
    r.state = ServerState::kFailed;
    r.apply_exit = 8;
    r.error = "switched, but its live tree (manifest " + r.manifest.substr(0, 16) + ") is not the job's (manifest " +
              want.substr(0, 16) + ")";
  }
  phase_->results[r.name] = r;
  final_[r.name] = r;
  if (r.state != ServerState::kFailed) final_serial_[r.name] = cur_part_.serial;
  out->records.push_back({r.name, site, r.state, cur_part_.serial, r.error, r.apply_exit, r.release, r.manifest});
}

void JobCore::CheckStalls(Micros now, JobActions* out) {
  if (!phase_ || !phase_->sched) return;
  std::vector<std::pair<std::string, std::string>> failed;  // site, scheduler's reason
  std::vector<std::string> silent;  // sites whose complete leader never reported
  for (const auto& [site, leader] : phase_->leader) {
    if (phase_->done.count(site)) continue;
    const RelayState* rs = phase_->sched->Find(leader);
    if (rs && rs->phase == RelayPhase::kFailed) failed.emplace_back(site, rs->failure == "stalled" ? "" : rs->failure);
    if (rs && rs->phase == RelayPhase::kComplete) {
      auto [due, fresh] = phase_->report_due.try_emplace(site, now + plan_.options.report_timeout);
      if (!fresh && due->second <= now) silent.push_back(site);
    }
  }
  for (const auto& [site, why] : failed) ReplaceLeader(now, site, ReplaceReason::kStalled, why, out);
  for (const auto& site : silent) {
    if (!phase_) break;
    phase_->report_due.erase(site);
    ReplaceLeader(now, site, ReplaceReason::kNoReport, "", out);
  }
}

void JobCore::RunSchedulerTimer(Micros now, JobActions* out) {
  for (int i = 0; i < 8 && phase_ && phase_->sched && phase_->sched->NextWake() <= now; ++i)
    SendOrders(now, phase_->sched->OnTimer(now), out);
}

// After every event: the scheduler's due work, stalled leaders, the end of a
// phase, the deadline, and the next wake-up.
void JobCore::Settle(Micros now, JobActions* out) {
  if (stage_ == JobStage::kFinished || stage_ == JobStage::kIdle) {
    if (stage_ == JobStage::kFinished) out->wake_at = proto::kNever;
    return;
  }
  for (int round = 0; round < 4 && stage_ == JobStage::kTransfer; ++round) {
    uint64_t seq = phase_seq_;
    RunSchedulerTimer(now, out);
    CheckStalls(now, out);
    MaybeEndPhase(now, out);
    if (seq == phase_seq_) break;  // no new phase started: settled
  }
  if (stage_ != JobStage::kFinished && now >= deadline_) {
    EndPhase(now, true, out);
    Finish(now, true, out);
  }
  if (stage_ == JobStage::kFinished) {
    out->wake_at = proto::kNever;
    return;
  }
  Micros w = deadline_;
  if (phase_) {
    w = std::min(w, phase_->next_probe);
    for (const auto& [site, due] : phase_->report_due)
      if (!phase_->done.count(site)) w = std::min(w, std::max(due, now + 1));
    if (phase_->sched) w = std::min(w, std::max(phase_->sched->NextWake(), now + 1));
  }
  for (const auto& [at, p] : retries_) w = std::min(w, at);
  out->wake_at = w;
}

// Every event ends here: its wake_at replaces the previous one, so even a
// stale request must carry the next wake-up (else the deadline is lost).
Reply JobCore::Settled(Micros now, JobActions* out, Reply r) {
  Settle(now, out);
  return r;
}

// ---- events -------------------------------------------------------------------

void JobCore::OnTimer(Micros now, JobActions* out) {
  if (stage_ == JobStage::kTransfer && phase_) {
    // Orders due for another attempt, if still what the scheduler wants.
    std::vector<Pending> due;
    for (auto it = retries_.begin(); it != retries_.end();) {
      if (it->first <= now) {
        due.push_back(std::move(it->second));
        it = retries_.erase(it);
      } else {
        ++it;
      }
    }
    for (const Pending& p : due) {
      const RelayState* rs = phase_->sched ? phase_->sched->Find(p.order.relay) : nullptr;
      if (p.phase == phase_->seq && rs && rs->phase == RelayPhase::kFetching && rs->source == p.order.source &&
          rs->epoch == p.order.epoch)
        SendOrder(now, p.order, p.attempt, out);
    }
    // The watchdog's probes: is each unfinished site's leader still there?
    if (phase_ && now >= phase_->next_probe) {
      phase_->next_probe = now + plan_.options.probe_interval;
      for (const auto& [site, leader] : phase_->leader) {
        if (phase_->done.count(site) || phase_->probing.count(site)) continue;
        const RelayState* rs = phase_->sched ? phase_->sched->Find(leader) : nullptr;
        if (rs && rs->phase == RelayPhase::kFailed) continue;  // CheckStalls replaces it
        phase_->probing.insert(site);
        SendProbe(now, leader, Pending::Probe::kWatchdog, "", out);
      }
    }
  }
  Settle(now, out);
}

void JobCore::OnCallDone(Micros now, const CallResult& r, JobActions* out) {
  auto it = calls_.find(r.id);
  if (it == calls_.end()) {
    Settle(now, out);
    return;
  }
  Pending p = std::move(it->second);
  calls_.erase(it);
  if (stage_ != JobStage::kTransfer || !phase_ || p.phase != phase_->seq) {
    Settle(now, out);
    return;
  }
  std::string site = SiteOf(p.server);
  bool is_leader = LeaderOf(site) == p.server && !phase_->done.count(site);
  if (p.kind == Pending::Kind::kOrder) {
    if (!r.ok() && r.reached && r.status / 100 == 4) {
      // Refused (signature, name, duplicate, malformed): asking again gets
      // the same answer. The relay's one-line reason is the verdict.
      if (is_leader) {
        auto v = ParseJson(r.body);
        std::string err = v.ok() && v->is_object() ? v->Str("error") : "";
        std::string why = "HTTP " + std::to_string(r.status) + (err.empty() ? "" : ": " + err.substr(0, 200));
        ReplaceLeader(now, site, ReplaceReason::kRefused, why, out);
      }
    } else if (!r.ok()) {
      if (p.attempt < plan_.options.order_attempts) {
        Micros at = now + plan_.options.order_backoff * p.attempt;
        ++p.attempt;
        retries_.emplace_back(at, std::move(p));
      } else if (is_leader) {
        std::string why = r.reached ? "HTTP " + std::to_string(r.status) : r.body;
        ReplaceLeader(now, site, ReplaceReason::kUnreachable, why, out);
      }
    }
  } else {
    bool alive = r.reached && r.status == 200;
    switch (p.probe) {
      case Pending::Probe::kWatchdog: {
        phase_->probing.erase(site);
        if (!is_leader) break;
        int& f = phase_->probe_failures[site];
        f = alive ? 0 : f + 1;
        if (f >= plan_.options.probe_failures) ReplaceLeader(now, site, ReplaceReason::kNotAnswering, "", out);
        break;
      }
      case Pending::Probe::kSource:
        if (!alive && is_leader) ReplaceLeader(now, site, ReplaceReason::kDiedMidTransfer, "", out);
        break;
      case Pending::Probe::kNotifyTarget:
        if (!alive && is_leader) ReplaceLeader(now, site, ReplaceReason::kUnreachable, p.detail, out);
        break;
    }
  }
  Settle(now, out);
}

void JobCore::OnLeaderReport(Micros now, const std::string& site, const std::string& server, JobActions* out) {
  if (SiteOf(server) == site && !site.empty()) elected_[site] = server;
  Settle(now, out);
}

Reply JobCore::OnProgress(Micros now, const Progress& p, JobActions* out) {
  if (stage_ != JobStage::kTransfer || !phase_ || !phase_->sched || p.serial != cur_part_.serial) return Settled(now, out, Stale());
  SendOrders(now, phase_->sched->OnProgress(now, p.relay, p.verified, p.complete), out);
  phase_->verified[p.relay] = p.verified;
  JobEvent ev;
  ev.kind = JobEvent::Kind::kProgress;
  ev.serial = p.serial;
  ev.site = SiteOf(p.relay);
  ev.relay = p.relay;
  ev.bytes = p.verified;
  ev.size = cur_part_.covered;
  out->events.push_back(ev);
  if (p.complete) {
    ev.kind = JobEvent::Kind::kReceived;
    out->events.push_back(ev);
  }
  Settle(now, out);
  return Ack();
}

Reply JobCore::OnNext(Micros now, const NextAsk& a, JobActions* out) {
  NextAnswer ans;  // none_left
  if (stage_ != JobStage::kTransfer || !phase_ || !phase_->sched || a.serial != cur_part_.serial)
    return Settled(now, out, Reply{200, Encode(ans)});
  SendOrders(now, phase_->sched->OnProgress(now, a.relay, a.verified, a.complete), out);
  phase_->verified[a.relay] = std::max(phase_->verified[a.relay], a.verified);
  Answer next = phase_->sched->OnNext(now, a.relay, a.verified);
  if (const auto* n = std::get_if<Next>(&next)) {
    const JobServer* to = FindServer(n->relay);
    if (to) {
      ans.kind = NextAnswer::Kind::kNext;
      ans.relay = n->relay;
      ans.url = to->url;
      ans.order = OrderFor(n->relay, a.relay);
      if (plan_.options.seal) ans.sealed = plan_.options.seal(n->relay, Endpoint::kFetch, Encode(ans.order));
      JobEvent ev;
      ev.kind = JobEvent::Kind::kOrder;
      ev.serial = a.serial;
      ev.relay = n->relay;
      ev.site = ans.order.site;
      ev.from = a.relay;
      out->events.push_back(ev);
    }
  } else if (const auto* r = std::get_if<RetryIn>(&next)) {
    ans.kind = NextAnswer::Kind::kRetry;
    ans.retry_ms = std::max<int64_t>(20, r->delay / 1000);
  }
  Settle(now, out);
  return Reply{200, Encode(ans)};
}

Reply JobCore::OnSourceFailed(Micros now, const SourceFailed& s, JobActions* out) {
  if (stage_ != JobStage::kTransfer || !phase_ || !phase_->sched || s.serial != cur_part_.serial)
    return Settled(now, out, Reply{409, EncodeError("no such transfer")});
  // If the source itself is gone its site gets a new leader: find out
  // without waiting (the probe's failure replaces it).
  if (!s.source.empty()) {
    std::string site = SiteOf(s.source);
    if (LeaderOf(site) == s.source && !phase_->done.count(site))
      SendProbe(now, s.source, Pending::Probe::kSource, "", out);
  }
  auto moved = phase_->sched->OnSourceFailed(now, s.relay, s.source, s.verified);
  std::string next;
  if (moved.ok()) {
    next = moved->source;
  } else {
    const RelayState* rs = phase_->sched->Find(s.relay);
    if (!rs || rs->phase != RelayPhase::kFetching) {
      Settle(now, out);
      return Reply{409, EncodeError(moved.status().message())};
    }
    next = rs->source;
  }
  JobEvent ev;
  ev.kind = JobEvent::Kind::kReparent;
  ev.serial = s.serial;
  ev.relay = s.relay;
  ev.site = SiteOf(s.relay);
  ev.from = s.source;
  ev.to = next;
  ev.bytes = s.verified;
  out->events.push_back(ev);
  SourceAnswer ans;
  const JobServer* ns = next.empty() ? nullptr : FindServer(next);
  ans.source_url = ns ? ns->url : plan_.options.ccm_url;
  ans.source_name = ns ? next : "";
  Settle(now, out);
  return Reply{200, Encode(ans)};
}

Reply JobCore::OnNotifyFailed(Micros now, const NotifyFailed& n, JobActions* out) {
  if (stage_ != JobStage::kTransfer || !phase_ || !phase_->sched || n.serial != cur_part_.serial)
    return Settled(now, out, Reply{200, "{}"});
  SendOrders(now, phase_->sched->OnNotifyFailed(now, n.from, n.to), out);
  std::string site = SiteOf(n.to);
  if (LeaderOf(site) == n.to && !phase_->done.count(site))
    SendProbe(now, n.to, Pending::Probe::kNotifyTarget, n.error, out);
  Settle(now, out);
  return Ack();
}

Reply JobCore::OnSiteReport(Micros now, const SiteReport& rep, JobActions* out) {
  if (stage_ != JobStage::kTransfer || !phase_ || rep.serial != cur_part_.serial) return Settled(now, out, Stale());
  auto t = phase_->targets.find(rep.site);
  if (t == phase_->targets.end()) return Settled(now, out, Ack());
  bool current = phase_->leader[rep.site] == rep.leader && !phase_->done.count(rep.site);
  for (const ServerResult& r : rep.servers) {
    if (!Contains(t->second, r.name) || phase_->results.count(r.name)) continue;
    // A replaced leader's report: its successes count, its failures are the
    // current leader's to report.
    if (!current && r.state == ServerState::kFailed) continue;
    if (r.state != SuccessState(cur_kind_) && r.state != ServerState::kFailed) continue;
    Verdict(r, rep.site, out);
    JobEvent ev;
    ev.kind = JobEvent::Kind::kServer;
    ev.serial = rep.serial;
    ev.server = r.name;
    ev.site = rep.site;
    ev.state = r.state;
    ev.error = r.error;
    ev.via = r.via;
    ev.apply_exit = r.apply_exit;
    out->events.push_back(ev);
  }
  // Only the current leader's report closes the site.
  if (current) {
    phase_->done.insert(rep.site);
    JobEvent ev;
    ev.kind = JobEvent::Kind::kSiteReport;
    ev.serial = rep.serial;
    ev.site = rep.site;
    ev.relay = rep.leader;
    out->events.push_back(ev);
  }
  Settle(now, out);
  return Ack();
}

Reply JobCore::OnRelayFailed(Micros now, const std::string& relay, uint64_t serial, const std::string& error,
                             int apply_exit, JobActions* out) {
  if (stage_ != JobStage::kTransfer || !phase_ || serial != cur_part_.serial) return Settled(now, out, Stale());
  std::string site = SiteOf(relay);
  if (site.empty() || !phase_->targets.count(site)) return Settled(now, out, Ack());
  if (LeaderOf(site) == relay && !phase_->done.count(site))
    ReplaceLeader(now, site, ReplaceReason::kRelayFailed, error.empty() ? "failed" : error, out, apply_exit);
  Settle(now, out);
  return Ack();
}

}  // namespace cm::push
