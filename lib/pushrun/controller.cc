#include "pushrun/controller.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <variant>
#include <thread>

#include "http/client.h"
#include "http/server.h"
#include "push/ordering.h"
#include "push/require.h"
#include "push/scheduler.h"
#include "push/sites.h"
#include "pushdb/state_db.h"
#include "pushdb/wait.h"
#include "pushrun/assignment_info.h"
#include "pushrun/content_body.h"
#include "pushrun/leader_reports.h"
#include "pushrun/live_view.h"
#include "push/messages.h"
#include "util/exit_codes.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::pushrun {

using push::Encode;
using push::FetchOrder;
using push::ServerResult;
using push::ServerState;
using push::TransferKind;
using push::Via;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

proto::Micros NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}

http::Response JsonResp(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}
http::Response JsonError(int status, const std::string& msg) {
  return JsonResp(status, JsonObject().Str("error", msg).Build());
}

// One assignment on its way to a set of servers.
struct Phase {
  AssignmentInfo info;
  std::string file;
  TransferKind kind = TransferKind::kStage;
  std::unique_ptr<push::Scheduler> sched;
  std::map<std::string, std::vector<std::string>> site_targets;  // site -> servers, in file order
  std::map<std::string, std::string> site_leader;                // site -> leader server
  std::map<std::string, ServerResult> results;                   // server -> result
  std::set<std::string> sites_done;
  std::map<std::string, uint64_t> verified;  // leader -> bytes held
  std::map<std::string, int> probe_failures;
  bool finished() const { return sites_done.size() == site_targets.size(); }
};

class Job {
 public:
  explicit Job(const PushOptions& o) : opts_(o) {}
  Result<PushOutcome> Run();

 private:
  // Setup
  Status Setup();
  Status BeginInDb();
  // Phases
  Status RunPhase(const std::string& file, TransferKind kind,
                  const std::map<std::string, std::vector<std::string>>& targets);
  void SendOrders(const std::vector<push::Order>& orders);
  bool SendOrder(const push::Order& order);
  FetchOrder OrderFor(const Phase& ph, const std::string& relay, const std::string& source) const;
  void ReplaceLeader(const std::string& site, const std::string& reason);
  bool Alive(const std::string& server);
  void Watchdog();
  // HTTP
  http::Response Handle(const http::Request& req);
  http::Response OnProgress(const JsonValue& v);
  http::Response OnNext(const JsonValue& v);
  http::Response OnNotifyFailed(const JsonValue& v);
  http::Response OnSourceFailed(const JsonValue& v);
  http::Response OnSiteReport(const std::string& body);
  // Output
  void Event(const std::string& name, JsonObject fields);
  void Record(const ServerResult& r, uint64_t serial);
  std::string UrlOf(const std::string& server) const;
  std::string SiteOf(const std::string& server) const;
  Result<std::string> MakeCommitAssignment();
  PushOutcome Finish();

  PushOptions opts_;
  push::SitesConfig sites_;
  std::string ccm_url_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<LeaderReports> reports_;
  std::unique_ptr<pushdb::StateDb> db_;
  int64_t job_id_ = 0;
  std::vector<AssignmentInfo> parts_;
  std::map<uint64_t, std::string> files_;  // serial -> path served
  std::unique_ptr<LiveView> view_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<Phase> phase_;
  std::map<std::string, ServerResult> final_;  // server -> last result
  std::map<std::string, uint64_t> final_serial_;
  std::mutex out_mu_;
  Clock::time_point started_ = Clock::now();
};

// ---------------------------------------------------------------------------

std::string Job::UrlOf(const std::string& server) const {
  const push::Server* s = sites_.FindServer(server);
  return s ? s->url : "";
}

std::string Job::SiteOf(const std::string& server) const {
  const push::Site* s = sites_.SiteOf(server);
  return s ? s->name : "";
}

void Job::Event(const std::string& name, JsonObject fields) {
  if (!opts_.json) return;
  fields.Str("event", name).Double("t", std::chrono::duration<double>(Clock::now() - started_).count());
  std::lock_guard<std::mutex> l(out_mu_);
  std::string line = fields.Build();
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

Status Job::Setup() {
  auto sites = push::LoadSites(opts_.sites_file);
  if (!sites.ok()) return sites.status();
  sites_ = std::move(*sites);
  for (const auto& f : opts_.assignments) {
    auto info = ReadAssignmentInfo(f);
    if (!info.ok()) return info.status();
    if (!parts_.empty() && info->serial <= parts_.back().serial)
      return Error(Code::kOrder, f + ": serial " + std::to_string(info->serial) + " is not after the previous part's");
    if (!parts_.empty() && info->job != parts_.front().job)
      return Error(Code::kUsage, f + ": job " + info->job + " differs from " + parts_.front().job);
    parts_.push_back(*info);
    files_[info->serial] = f;
  }
  std::string listen = opts_.listen.empty() ? sites_.ccm.listen.ToString() : opts_.listen;
  if (listen.empty()) return Error(Code::kUsage, opts_.sites_file + ": [ccm] listen is required (or --listen)");
  http::ServerOptions so;
  so.listen = listen;
  so.max_connections = 256;
  so.idle_timeout = milliseconds(20000);
  auto srv = http::Server::Start(so, [this](const http::Request& r) { return Handle(r); });
  if (!srv.ok()) return srv.status();
  server_ = std::move(*srv);
  std::string host = listen.substr(0, listen.rfind(':'));
  ccm_url_ = !sites_.ccm.url.empty() && opts_.listen.empty() ? sites_.ccm.url
                                                              : "http://" + host + ":" + std::to_string(server_->port());
  if (sites_.ccm.leader_reports && !opts_.sequential) {
    auto lr = LeaderReports::Start(sites_.ccm.leader_reports->ToString());
    if (!lr.ok()) return lr.status();
    reports_ = std::move(*lr);
  }
  if (opts_.live_view) view_ = std::make_unique<LiveView>();
  return Status::Ok();
}

Status Job::BeginInDb() {
  if (opts_.state_dir.empty()) return Status::Ok();
  auto db = pushdb::StateDb::Open(opts_.state_dir);
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  pushdb::JobSpec spec;
  spec.name = parts_.front().job;
  spec.kind = parts_.front().type == "replicate" ? pushdb::JobKind::kReplicate
              : parts_.front().type == "commit"  ? pushdb::JobKind::kCommit
              : parts_.front().type == "rollback" ? pushdb::JobKind::kRollback
                                                  : pushdb::JobKind::kPublish;
  for (const auto& p : parts_) spec.serials.push_back(p.serial);
  for (const auto& site : sites_.sites)
    for (const auto& s : site.servers) spec.targets.push_back({site.name, s.name});
  spec.options = opts_.command_line;
  if (opts_.wait_s < 0) {
    auto h = db_->BeginJob(spec, pushdb::BeginMode::kRefuse);
    if (!h.ok()) return h.status();
    job_id_ = h->id;
  } else {
    pushdb::WaitOptions w;
    w.budget = milliseconds(static_cast<int64_t>(opts_.wait_s * 1000));
    w.on_blocked = [this](const Status& st) {
      if (opts_.verbosity > 0) log::Info("waiting: " + st.message());
    };
    auto h = pushdb::BeginJobWaiting(db_.get(), spec, w);
    if (!h.ok()) return h.status();
    job_id_ = h->id;
  }
  return Status::Ok();
}

// ---- orders -----------------------------------------------------------------

FetchOrder Job::OrderFor(const Phase& ph, const std::string& relay, const std::string& source) const {
  FetchOrder o;
  o.serial = ph.info.serial;
  o.job = ph.info.job;
  o.kind = ph.kind;
  o.size = ph.info.size;
  o.source_name = source;
  o.source = source.empty() ? ccm_url_ : UrlOf(source);
  o.ccm = ccm_url_;
  o.relay = relay;
  o.site = SiteOf(relay);
  const push::Site* site = sites_.FindSite(o.site);
  if (site && site->group.ip) o.group = site->group.ToString();
  auto it = ph.site_targets.find(o.site);
  if (it != ph.site_targets.end()) {
    for (const auto& s : it->second) {
      if (s == relay) continue;
      auto r = ph.results.find(s);
      if (r != ph.results.end() && r->second.state == ServerState::kFailed) continue;
      o.members.push_back({s, UrlOf(s)});
    }
  }
  o.serve = !opts_.sequential;
  o.stream = opts_.pipeline;
  return o;
}

bool Job::SendOrder(const push::Order& order) {
  FetchOrder o;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!phase_) return false;
    o = OrderFor(*phase_, order.relay, order.source);
  }
  Event("order", JsonObject().Uint("serial", o.serial).Str("relay", o.relay).Str("site", o.site).Str(
                     "source", o.source_name.empty() ? "ccm" : o.source_name));
  Status last;
  for (int i = 0; i < 3; ++i) {
    auto r = http::Call("POST", UrlOf(order.relay) + "/v1/fetch", Encode(o), milliseconds(3000));
    if (r.ok() && r->status / 100 == 2) return true;
    last = r.ok() ? Error(Code::kFailure, "HTTP " + std::to_string(r->status)) : r.status();
    std::this_thread::sleep_for(milliseconds(300 * (i + 1)));
  }
  ReplaceLeader(o.site, "unreachable: " + last.message());
  return false;
}

void Job::SendOrders(const std::vector<push::Order>& orders) {
  for (const auto& o : orders) SendOrder(o);
}

bool Job::Alive(const std::string& server) {
  auto r = http::Call("GET", UrlOf(server) + "/v1/status", "", milliseconds(1500));
  return r.ok() && r->status == 200;
}

// The site's leader is gone: mark it failed, pick the next leader (the one
// cm-leader elected, when it reported one, else the next server in the sites
// file), and let the scheduler move the transfer.
void Job::ReplaceLeader(const std::string& site, const std::string& reason) {
  std::vector<push::Order> orders;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!phase_ || phase_->sites_done.count(site)) return;
    Phase& ph = *phase_;
    std::string old = ph.site_leader[site];
    if (ph.results.count(old) && ph.results[old].state == ServerState::kFailed) return;  // already replaced
    ServerResult failed{old, ServerState::kFailed, reason, Via::kNone};
    ph.results[old] = failed;
    final_[old] = failed;
    std::vector<std::string> candidates;
    for (const auto& s : ph.site_targets[site])
      if (!ph.results.count(s) || ph.results[s].state != ServerState::kFailed) candidates.push_back(s);
    std::string next;
    if (reports_) {
      if (auto rep = reports_->Latest(site)) {
        const push::Server* s = sites_.ServerByAddress(rep->leader_ip);
        if (s && s->name != old && std::find(candidates.begin(), candidates.end(), s->name) != candidates.end())
          next = s->name;
      }
    }
    if (next.empty() && !candidates.empty()) next = candidates.front();
    auto now = NowMicros();
    if (next.empty()) {
      ph.sites_done.insert(site);
      orders = ph.sched->OnRelayFailed(now, old);
      Event("site-failed", JsonObject().Str("site", site).Str("error", reason));
    } else {
      ph.site_leader[site] = next;
      auto moved = ph.sched->ReplaceRelay(now, old, next);
      if (moved.ok()) orders = std::move(*moved);
      else log::Warn(site + ": " + moved.status().message());
      Event("leader-changed", JsonObject().Str("site", site).Str("old", old).Str("new", next).Str("why", reason));
      for (const auto& o : orders) {
        if (o.relay == next) continue;
        const push::RelayState* rs = ph.sched->Find(o.relay);
        Event("reparent", JsonObject()
                              .Str("relay", o.relay)
                              .Str("from", old)
                              .Str("to", o.source.empty() ? "ccm" : o.source)
                              .Uint("resume_at", rs ? rs->verified : 0));
      }
      if (opts_.verbosity > 1) log::Info(site + ": leader " + old + " -> " + next + " (" + reason + ")");
    }
    Record(failed, ph.info.serial);
  }
  cv_.notify_all();
  SendOrders(orders);
}

// Every 200 ms: the scheduler's timers (stalled transfers); every 2 s: is
// each unfinished site's leader still there?
void Job::Watchdog() {
  auto last_probe = Clock::now();
  while (true) {
    std::vector<push::Order> orders;
    std::vector<std::pair<std::string, std::string>> probe;  // site, leader
    std::vector<std::string> stalled;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, milliseconds(200));
      if (!phase_ || phase_->finished()) return;
      Phase& ph = *phase_;
      orders = ph.sched->OnTimer(NowMicros());
      for (const auto& [site, leader] : ph.site_leader) {
        if (ph.sites_done.count(site)) continue;
        const push::RelayState* rs = ph.sched->Find(leader);
        if (rs && rs->phase == push::RelayPhase::kFailed) stalled.push_back(site);
        else probe.emplace_back(site, leader);
      }
    }
    SendOrders(orders);
    for (const auto& s : stalled) ReplaceLeader(s, "stalled");
    if (Clock::now() - last_probe < milliseconds(2000)) continue;
    last_probe = Clock::now();
    for (const auto& [site, leader] : probe) {
      bool alive = Alive(leader);
      bool replace = false;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (!phase_) return;
        int& f = phase_->probe_failures[leader];
        f = alive ? 0 : f + 1;
        replace = f >= 2;
      }
      if (replace) ReplaceLeader(site, "relay not answering");
    }
  }
}

// ---- HTTP handlers ------------------------------------------------------------

http::Response Job::Handle(const http::Request& req) {
  std::string path = req.target.substr(0, req.target.find('?'));
  if ((req.method == "GET" || req.method == "HEAD") && path.rfind("/v1/content/", 0) == 0) {
    uint64_t serial = std::strtoull(path.c_str() + 12, nullptr, 10);
    auto it = files_.find(serial);
    if (it == files_.end()) return JsonError(404, "serial not served here");
    auto held = push::CompleteFile::Open(it->second);
    if (!held.ok()) return JsonError(500, held.status().message());
    http::Response r;
    r.content_type = "application/octet-stream";
    r.stream = MakeContentBody(std::shared_ptr<push::HeldContent>(std::move(*held)));
    return r;
  }
  if (req.method == "GET" && path == "/v1/status") {
    std::lock_guard<std::mutex> l(mu_);
    JsonObject o;
    o.Str("role", "ccm");
    if (phase_) {
      JsonArray sites;
      for (const auto& [site, leader] : phase_->site_leader)
        sites.Raw(JsonObject()
                      .Str("site", site)
                      .Str("leader", leader)
                      .Uint("verified", phase_->verified[leader])
                      .Bool("done", phase_->sites_done.count(site) > 0)
                      .Build());
      o.Uint("serial", phase_->info.serial).Raw("sites", sites.Build());
    }
    return JsonResp(200, o.Build());
  }
  if (req.method != "POST") return JsonError(404, "no such resource");
  if (path == "/v1/site-report") return OnSiteReport(req.body);
  auto v = ParseJson(req.body);
  if (!v.ok() || !v->is_object()) return JsonError(400, "body is not a JSON object");
  if (path == "/v1/progress") return OnProgress(*v);
  if (path == "/v1/next") return OnNext(*v);
  if (path == "/v1/notify-failed") return OnNotifyFailed(*v);
  if (path == "/v1/source-failed") return OnSourceFailed(*v);
  return JsonError(404, "no such resource");
}

http::Response Job::OnProgress(const JsonValue& v) {
  std::vector<push::Order> orders;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!phase_ || v.Uint("serial") != phase_->info.serial) return JsonResp(200, "{\"stale\":true}");
    std::string relay = v.Str("relay");
    uint64_t verified = v.Uint("verified");
    bool complete = v.Bool("complete");
    orders = phase_->sched->OnProgress(NowMicros(), relay, verified, complete);
    phase_->verified[relay] = verified;
    if (view_) view_->SetBytes(SiteOf(relay), relay, verified, phase_->info.covered);
    if (complete) Event("received", JsonObject().Str("relay", relay).Str("site", SiteOf(relay)));
  }
  SendOrders(orders);
  return JsonResp(200, "{\"ok\":true}");
}

http::Response Job::OnNext(const JsonValue& v) {
  std::vector<push::Order> orders;
  http::Response resp;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!phase_ || v.Uint("serial") != phase_->info.serial) return JsonResp(200, "{\"none_left\":true}");
    std::string relay = v.Str("relay");
    uint64_t verified = v.Uint("verified");
    orders = phase_->sched->OnProgress(NowMicros(), relay, verified, v.Bool("complete"));
    push::Answer a = phase_->sched->OnNext(NowMicros(), relay, verified);
    if (const auto* next = std::get_if<push::Next>(&a)) {
      FetchOrder o = OrderFor(*phase_, next->relay, relay);
      Event("order", JsonObject().Uint("serial", o.serial).Str("relay", next->relay).Str("site", o.site).Str("source", relay));
      resp = JsonResp(200, JsonObject()
                               .Raw("next", JsonObject()
                                                .Str("relay", next->relay)
                                                .Str("url", UrlOf(next->relay))
                                                .Raw("order", Encode(o))
                                                .Build())
                               .Build());
    } else if (std::holds_alternative<push::NoneLeft>(a)) {
      resp = JsonResp(200, "{\"none_left\":true}");
    } else {
      int64_t ms = std::get<push::RetryIn>(a).delay / 1000;
      resp = JsonResp(200, JsonObject().Int("retry_ms", std::max<int64_t>(20, ms)).Build());
    }
  }
  SendOrders(orders);
  return resp;
}

http::Response Job::OnNotifyFailed(const JsonValue& v) {
  std::string to = v.Str("to"), from = v.Str("from");
  std::vector<push::Order> orders;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!phase_ || v.Uint("serial") != phase_->info.serial) return JsonResp(200, "{}");
    orders = phase_->sched->OnNotifyFailed(NowMicros(), from, to);
  }
  SendOrders(orders);
  if (!Alive(to)) ReplaceLeader(SiteOf(to), "unreachable: " + v.Str("error"));
  return JsonResp(200, "{\"ok\":true}");
}

http::Response Job::OnSourceFailed(const JsonValue& v) {
  std::string relay = v.Str("relay"), source = v.Str("source");
  uint64_t verified = v.Uint("verified");
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!phase_ || v.Uint("serial") != phase_->info.serial) return JsonError(409, "no such transfer");
  }
  // A relay that lost its source: if the source itself is gone, its site
  // gets a new leader first (and the scheduler re-parents its children).
  if (!source.empty() && !Alive(source)) ReplaceLeader(SiteOf(source), "relay died mid-transfer");
  std::lock_guard<std::mutex> l(mu_);
  if (!phase_) return JsonError(409, "no such transfer");
  auto moved = phase_->sched->OnSourceFailed(NowMicros(), relay, source, verified);
  std::string next;
  if (moved.ok()) {
    next = moved->source;
  } else {
    // Already moved (e.g. its source's site got a new leader): its current placement.
    const push::RelayState* rs = phase_->sched->Find(relay);
    if (!rs || rs->phase != push::RelayPhase::kFetching) return JsonError(409, moved.status().message());
    next = rs->source;
  }
  Event("reparent", JsonObject()
                        .Str("relay", relay)
                        .Str("from", source.empty() ? "ccm" : source)
                        .Str("to", next.empty() ? "ccm" : next)
                        .Uint("resume_at", verified));
  return JsonResp(200, JsonObject().Str("source", next.empty() ? ccm_url_ : UrlOf(next)).Str("source_name", next).Build());
}

http::Response Job::OnSiteReport(const std::string& body) {
  auto rep = push::ParseSiteReport(body);
  if (!rep.ok()) return JsonError(400, rep.status().message());
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!phase_ || rep->serial != phase_->info.serial) return JsonResp(200, "{\"stale\":true}");
    Phase& ph = *phase_;
    for (const auto& r : rep->servers) {
      if (!ph.site_targets.count(rep->site)) break;
      auto& targets = ph.site_targets[rep->site];
      if (std::find(targets.begin(), targets.end(), r.name) == targets.end()) continue;
      // A server already failed by the CCM (a replaced leader) keeps that verdict.
      if (ph.results.count(r.name) && ph.results[r.name].state == ServerState::kFailed && r.name == rep->leader) continue;
      ph.results[r.name] = r;
      final_[r.name] = r;
      Record(r, ph.info.serial);
      Event("server", JsonObject().Str("server", r.name).Str("site", rep->site).Str("state", push::ServerStateName(r.state)).Str("error", r.error).Str("via", push::ViaName(r.via)));
      if (view_) view_->SetServer(rep->site, r.name, push::ServerStateName(r.state));
    }
    // Only the current leader's report closes the site.
    if (rep->leader == ph.site_leader[rep->site]) {
      ph.sites_done.insert(rep->site);
      Event("site-report", JsonObject().Str("site", rep->site).Str("leader", rep->leader).Uint("serial", rep->serial));
    }
  }
  cv_.notify_all();
  return JsonResp(200, "{\"ok\":true}");
}

void Job::Record(const ServerResult& r, uint64_t serial) {
  if (r.state != ServerState::kFailed) final_serial_[r.name] = serial;
  if (!db_) return;
  Status s = db_->UpdateServer(job_id_, r.name, r.state, serial, r.error);
  if (!s.ok()) log::Warn("state: " + s.message());
}

// ---- phases -------------------------------------------------------------------

Status Job::RunPhase(const std::string& file, TransferKind kind,
                     const std::map<std::string, std::vector<std::string>>& targets) {
  auto info = ReadAssignmentInfo(file);
  if (!info.ok()) return info.status();
  files_[info->serial] = file;
  auto ph = std::make_unique<Phase>();
  ph->info = *info;
  ph->file = file;
  ph->kind = kind;
  ph->site_targets = targets;
  // Leaders: the one cm-leader reports, else the sites file's leader, else the first server.
  std::vector<push::LeaderFacts> facts;
  for (const auto& [site, servers] : targets) {
    if (servers.empty()) continue;
    std::string leader;
    if (reports_) {
      if (auto rep = reports_->Latest(site)) {
        const push::Server* s = sites_.ServerByAddress(rep->leader_ip);
        if (s && std::find(servers.begin(), servers.end(), s->name) != servers.end()) leader = s->name;
      }
    }
    const push::Site* st = sites_.FindSite(site);
    if (leader.empty() && st && !st->leader.empty() &&
        std::find(servers.begin(), servers.end(), st->leader) != servers.end())
      leader = st->leader;
    if (leader.empty()) leader = servers.front();
    ph->site_leader[site] = leader;
    push::LeaderFacts f;
    f.name = leader;
    f.site = site;
    if (reports_) {
      if (auto rep = reports_->Latest(site); rep && rep->cpu_permille <= 1000)
        f.cpu_permille = 1000 - static_cast<uint32_t>(rep->cpu_permille);
    }
    facts.push_back(f);
    if (view_) view_->AddSite(site, leader, servers.size());
  }
  push::OrderingOptions oo;
  oo.admin_order = sites_.ccm.order;
  std::vector<std::string> ordered = push::OrderLeaders(facts, oo).names;
  push::SchedulerOptions so;
  so.star_max = opts_.sequential ? ordered.size() : opts_.star_max;
  so.pipeline = opts_.pipeline;
  // A control assignment (commit, rollback) has no chunks: one byte of
  // "size" that a relay holds once it reports complete.
  auto sched = push::Scheduler::Create(std::max<uint64_t>(info->covered, 1), std::max<uint64_t>(info->chunk_size, 1),
                                       ordered, so);
  if (!sched.ok()) return sched.status();
  ph->sched = std::make_unique<push::Scheduler>(std::move(*sched));
  for (const auto& [site, servers] : targets)
    for (const auto& s : servers)
      if (db_) db_->UpdateServer(job_id_, s, pushdb::ServerState::kFetching, info->serial);
  std::vector<push::Order> orders;
  {
    std::lock_guard<std::mutex> l(mu_);
    phase_ = std::move(ph);
    orders = phase_->sched->Start(NowMicros());
  }
  Event("phase", JsonObject().Uint("serial", info->serial).Str("kind", push::TransferKindName(kind)).Uint("size", info->size).Uint(
                     "sites", targets.size()));
  std::thread watchdog([this] { Watchdog(); });
  SendOrders(orders);
  auto deadline = Clock::now() + milliseconds(static_cast<int64_t>(opts_.timeout_s * 1000));
  {
    std::unique_lock<std::mutex> l(mu_);
    while (!phase_->finished() && Clock::now() < deadline) {
      cv_.wait_for(l, milliseconds(250));
      if (view_) view_->Draw();
    }
    // Whoever has not answered by now failed.
    for (const auto& [site, servers] : phase_->site_targets)
      for (const auto& s : servers)
        if (!phase_->results.count(s)) {
          ServerResult r{s, ServerState::kFailed, phase_->finished() ? "no report" : "timed out", Via::kNone};
          phase_->results[s] = r;
          final_[s] = r;
          Record(r, phase_->info.serial);
        }
  }
  cv_.notify_all();
  watchdog.join();
  if (view_) view_->Draw();
  return Status::Ok();
}

Result<std::string> Job::MakeCommitAssignment() {
  if (!opts_.commit_file.empty()) return opts_.commit_file;
  std::string dir = opts_.state_dir.empty() ? "/tmp" : opts_.state_dir;
  std::string out = dir + "/commit-" + parts_.back().job + "-" + std::to_string(getpid()) + ".cma";
  std::vector<std::string> argv{opts_.cm_pack, "commit", "--job", parts_.back().job, "-o", out};
  if (!opts_.sign_key.empty()) {
    argv.push_back("--sign-key");
    argv.push_back(opts_.sign_key);
  }
  if (!opts_.serial_file.empty()) {
    argv.push_back("--serial-file");
    argv.push_back(opts_.serial_file);
  }
  auto r = RunProcess(argv);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Error(Code::kFailure, "cm-pack commit: " + LastLine(r->err));
  return out;
}

PushOutcome Job::Finish() {
  PushOutcome out;
  ServerState want = opts_.commit ? ServerState::kCommitted : ServerState::kStaged;
  JsonArray servers;
  std::string table;
  char line[512];
  std::snprintf(line, sizeof line, "%-16s %-12s %-10s %-20s %s\n", "SERVER", "SITE", "STATE", "SERIAL", "ERROR");
  table += line;
  for (const auto& site : sites_.sites) {
    for (const auto& s : site.servers) {
      ServerResult r = final_.count(s.name) ? final_[s.name] : ServerResult{s.name, ServerState::kFailed, "not reached", Via::kNone};
      ++out.servers;
      bool ok = r.state == want;
      if (ok) ++out.ok;
      else ++out.failed;
      uint64_t serial = final_serial_.count(s.name) ? final_serial_[s.name] : 0;
      servers.Raw(JsonObject()
                      .Str("name", s.name)
                      .Str("site", site.name)
                      .Str("state", push::ServerStateName(r.state))
                      .Uint("serial", serial)
                      .Str("error", r.error)
                      .Build());
      std::snprintf(line, sizeof line, "%-16s %-12s %-10s %-20s %s\n", s.name.c_str(), site.name.c_str(),
                    push::ServerStateName(r.state), serial ? std::to_string(serial).c_str() : "-", r.error.c_str());
      table += line;
      if (!ok && !opts_.on_fail.empty()) {
        ProcessOptions po;
        po.capture_stderr = false;
        po.timeout = std::chrono::minutes(5);
        po.env = {"CM_SERVER=" + s.name, "CM_SITE=" + site.name, "CM_JOB=" + parts_.front().job,
                  "CM_ERROR=" + r.error, "CM_STATE=" + std::string(push::ServerStateName(r.state))};
        auto res = RunProcess({"/bin/sh", "-c", opts_.on_fail}, po);
        if (!res.ok() || res->exit_code != 0) log::Warn("--on-fail for " + s.name + " failed");
      }
    }
  }
  out.exit_code = out.failed == 0 ? kExitOk : out.ok > 0 ? kExitPartial : kExitFailure;
  double secs = std::chrono::duration<double>(Clock::now() - started_).count();
  char sum[256];
  std::snprintf(sum, sizeof sum, "job %s: %zu of %zu servers %s in %.1f s", parts_.front().job.c_str(), out.ok,
                out.servers, push::ServerStateName(want), secs);
  out.summary = sum;
  std::string report = JsonObject()
                           .Str("job", parts_.front().job)
                           .Str("result", out.exit_code == 0 ? "ok" : out.exit_code == kExitPartial ? "partial" : "failed")
                           .Uint("servers", out.servers)
                           .Uint("ok", out.ok)
                           .Uint("failed", out.failed)
                           .Double("seconds", secs)
                           .Raw("table", servers.Build())
                           .Build();
  if (!opts_.report_file.empty()) {
    std::string tmp = opts_.report_file + ".tmp";
    std::ofstream f(tmp);
    f << report << "\n";
    f.close();
    if (!f || std::rename(tmp.c_str(), opts_.report_file.c_str()) != 0) log::Warn(opts_.report_file + ": cannot write");
  }
  if (opts_.json) {
    std::lock_guard<std::mutex> l(out_mu_);
    std::fprintf(stdout, "%s\n", JsonObject().Str("event", "done").Raw("report", report).Build().c_str());
  } else if (opts_.verbosity > 0) {
    std::fputs(table.c_str(), stdout);
  }
  std::fflush(stdout);
  if (opts_.verbosity > 0) log::Info(out.summary);
  if (db_) {
    pushdb::JobState js = out.exit_code == 0 ? pushdb::JobState::kDone
                          : out.exit_code == kExitPartial ? pushdb::JobState::kPartial
                                                          : pushdb::JobState::kFailed;
    db_->FinishJob(job_id_, js, out.summary);
  }
  return out;
}

Result<PushOutcome> Job::Run() {
  CM_RETURN_IF_ERROR(Setup());
  CM_RETURN_IF_ERROR(BeginInDb());
  // Targets: every server of every site.
  std::map<std::string, std::vector<std::string>> targets;
  for (const auto& site : sites_.sites)
    for (const auto& s : site.servers) targets[site.name].push_back(s.name);
  auto ok_servers = [&](ServerState state) {
    std::map<std::string, std::vector<std::string>> t;
    for (const auto& [site, servers] : targets)
      for (const auto& s : servers)
        if (final_.count(s) && final_[s].state == state) t[site].push_back(s);
    return t;
  };
  for (const auto& part : parts_) {
    if (opts_.sequential) {
      for (const auto& [site, servers] : targets)
        for (const auto& s : servers) CM_RETURN_IF_ERROR(RunPhase(files_[part.serial], TransferKind::kStage, {{site, {s}}}));
    } else {
      CM_RETURN_IF_ERROR(RunPhase(files_[part.serial], TransferKind::kStage, targets));
    }
    targets = ok_servers(ServerState::kStaged);
  }
  size_t staged = 0, total = 0;
  for (const auto& site : sites_.sites) total += site.servers.size();
  for (const auto& [site, servers] : targets) staged += servers.size();
  if (opts_.commit) {
    auto req = push::ParseRequire(opts_.require);
    if (!req.ok()) return req.status();
    if (staged > 0 && push::CommitAllowed(*req, staged, total)) {
      auto commit = MakeCommitAssignment();
      if (!commit.ok()) return commit.status();
      Event("commit", JsonObject().Uint("staged", staged).Uint("servers", total));
      CM_RETURN_IF_ERROR(RunPhase(*commit, TransferKind::kCommit, targets));
      if (!opts_.shadow.empty()) {
        std::vector<std::string> argv{opts_.cm_apply};
        for (const auto& f : opts_.assignments) argv.push_back(f);
        for (const std::string& a : {std::string("--root"), opts_.shadow, std::string("--commit"), std::string("-q")})
          argv.push_back(a);
        auto r = RunProcess(argv);
        if (!r.ok() || r->exit_code != 0) log::Warn("shadow copy not updated: " + (r.ok() ? LastLine(r->err) : r.status().message()));
      }
    } else {
      log::Error("commit not sent: " + std::to_string(staged) + " of " + std::to_string(total) +
                 " servers staged, --require " + opts_.require);
      for (auto& [name, r] : final_)
        if (r.state == ServerState::kStaged) r.error = "staged, not committed (--require " + opts_.require + ")";
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    phase_.reset();
  }
  if (reports_) reports_->Stop();
  PushOutcome out = Finish();
  if (server_) server_->Stop();
  return out;
}

}  // namespace

Result<PushOutcome> RunPush(const PushOptions& opts) {
  Job job(opts);
  return job.Run();
}

}  // namespace cm::pushrun
