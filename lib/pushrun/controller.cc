// The controller is the edge of push::JobCore (lib/push/job_core.h): it
// loads the sites file and the assignments, records the job in the state
// database, serves the content and the relays' requests over HTTP, and runs
// what the core decides. Every event reaches the core on one EdgeLoop
// thread; HTTP handlers wait only for the core's immediate Reply; Calls run
// on CallRunner's workers; the database is written by its own thread; cm-pack
// runs off the loop and posts its result back.
#include "pushrun/controller.h"
#include "pushrun/converge_run.h"
#include "ckpt/store.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <mutex>
#include <thread>

#include "apply/layout.h"
#include "http/server.h"
#include "pack/packer.h"
#include "push/job_core.h"
#include "push/messages.h"
#include "push/require.h"
#include "push/sites.h"
#include "pushdb/render.h"
#include "pushdb/state_db.h"
#include "pushdb/wait.h"
#include "pushrun/assignment_info.h"
#include "pushrun/auth_edge.h"
#include "pushrun/content_body.h"
#include "pushrun/edge_loop.h"
#include "pushrun/joined.h"
#include "pushrun/leader_reports.h"
#include "pushrun/live_view.h"
#include "pushrun/site_probe.h"
#include "util/config_dir.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/json.h"
#include "util/json_value.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::pushrun {

using push::JobEvent;
using push::ServerState;
using std::chrono::milliseconds;

namespace {

http::Response ToHttp(const push::Reply& r) { return http::Response::Json(r.status, r.body); }
http::Response JsonError(int status, const std::string& msg) { return http::Response::Json(status, push::EncodeError(msg)); }

push::JobPart PartOf(const AssignmentInfo& a) { return {a.serial, a.job, a.size, a.covered, a.chunk_size}; }

// The serial in a release name (pack::ParseReleaseName; 0 if not one): what
// a server that runs the release is shown at, everywhere (not the commit's).
uint64_t ReleaseSerial(const std::string& release) {
  uint64_t serial = 0;
  std::string job;
  return pack::ParseReleaseName(release, &serial, &job).ok() ? serial : 0;
}

// Writes the core's state records to the database on its own thread, so
// that no handler ever waits for SQLite.
class DbWriter {
 public:
  // release: what a switch of this job makes live; rollback: its switches are rollbacks.
  DbWriter(pushdb::StateDb* db, int64_t job, std::string release, bool rollback)
      : db_(db), job_(job), release_(std::move(release)), rollback_(rollback), thread_([this] { Loop(); }) {}
  ~DbWriter() { Drain(); }
  void Add(const push::StateRecord& r) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(r);
    }
    cv_.notify_one();
  }
  // Writes what is queued and ends the thread.
  void Drain() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      push::StateRecord r = std::move(queue_.front());
      queue_.pop_front();
      l.unlock();
      ServerState state = rollback_ && r.state == ServerState::kCommitted ? ServerState::kRolledBack : r.state;
      // A switch is recorded as the release the server says it runs now
      // (cm-apply's report: a no-op job leaves the release it had), at
      // that release's serial; a server that does not say: what was sent.
      const std::string& release = r.release.empty() ? release_ : r.release;
      uint64_t serial = r.state == ServerState::kCommitted && ReleaseSerial(release) ? ReleaseSerial(release) : r.serial;
      Status s = db_->UpdateServer(job_, r.server, state, serial, r.error, release, r.manifest);
      if (!s.ok()) log::Warn("state: " + s.message());
      l.lock();
    }
  }
  pushdb::StateDb* db_;
  int64_t job_;
  std::string release_;
  bool rollback_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<push::StateRecord> queue_;
  bool stop_ = false;
  std::thread thread_;
};

class Controller {
 public:
  explicit Controller(const PushOptions& o) : opts_(o) {}
  ~Controller() { Shutdown(); }
  Result<PushOutcome> Run();

 private:
  Status Setup();
  Status BeginInDb();
  Status Listen();
  void Probe();
  Result<push::JobPlan> Plan() const;
  http::Response Handle(const http::Request& req);
  http::Response Dispatch(push::Endpoint ep, const std::string& from, const std::string& body);
  template <typename Parse, typename Sender, typename On>
  http::Response Dispatch(const std::string& body, Parse parse, Sender sender, On on);
  void Apply(push::JobActions& a);  // on the loop thread
  void Emit(const JobEvent& e);
  void Event(const std::string& name, JsonObject fields);
  void MakeCommit();
  Result<std::string> MakeCommitAssignment();
  void UpdateShadow();
  PushOutcome Finish();
  void Shutdown();

  PushOptions opts_;
  push::SitesConfig sites_;
  std::string ccm_url_;
  std::vector<AssignmentInfo> parts_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<LeaderReports> reports_;
  std::unique_ptr<pushdb::StateDb> db_;
  std::unique_ptr<DbWriter> writer_;
  int64_t job_id_ = 0;
  std::unique_ptr<LiveView> view_;  // loop thread only
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::mutex files_mu_;
  std::map<uint64_t, std::string> files_;  // serial -> path served

  std::unique_ptr<push::JobCore> core_;    // loop thread only
  std::unique_ptr<EdgeLoop> loop_;
  std::atomic<EdgeLoop*> live_loop_{nullptr};  // loop_ once the core runs (for handler threads)
  std::unique_ptr<CallRunner> runner_;
  std::unique_ptr<AuthEdge> auth_;  // this run's name, keys, nonces (thread-safe)
  std::map<std::string, ProbeAnswer> probed_;     // server -> its answer at start (empty: not probed)
  std::map<std::string, std::string> elected_;    // site -> the leader its relays' cm-leader names
  bool switch_job_ = false;         // the parts are commit/rollback assignments (a fleet rollback)
  bool rollback_ = false;
  std::string release_;             // the release this job makes live
  int64_t started_unix_ms_ = 0;
  std::string commit_dir_;          // holds the commit assignment cm-push made; removed at the end
  std::thread commit_thread_;

  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  bool shadow_ = false;
  std::vector<push::FinalVerdict> verdicts_;
  std::mutex out_mu_;
};

void Controller::Event(const std::string& name, JsonObject fields) {
  if (!opts_.json) return;
  fields.Int("v", pushdb::kJsonSchema).Str("event", name).Double("t", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  std::lock_guard<std::mutex> l(out_mu_);
  std::string line = fields.Build();
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

int64_t UnixMillis() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Status Controller::Setup() {
  started_unix_ms_ = UnixMillis();
  auto sites = push::LoadSites(opts_.sites_file);
  if (!sites.ok()) return sites.status();
  sites_ = std::move(*sites);
  // Servers that joined a site's cm-leader membership (pushrun/joined.h).
  CM_RETURN_IF_ERROR(MergeJoined(&sites_, opts_.state_dir));
  CM_RETURN_IF_ERROR(push::RestrictToOnly(&sites_, opts_.only, opts_.sites_file));
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
  auto is_switch = [](const AssignmentInfo& a) { return a.type == "commit" || a.type == "rollback"; };
  switch_job_ = is_switch(parts_.front());
  for (size_t i = 0; i < parts_.size(); ++i)
    if (is_switch(parts_[i]) != switch_job_)
      return Error(Code::kUsage, opts_.assignments[i] + ": a " + parts_[i].type + " assignment cannot be pushed with " +
                                     parts_.front().type + " ones");
  rollback_ = parts_.front().type == "rollback";
  release_ = switch_job_ ? opts_.release : apply::ReleaseId(parts_.back().serial, parts_.back().job);
  if (switch_job_) opts_.commit = false;  // the parts switch by themselves: no commit follows
  if (opts_.serial_file.empty() && !opts_.state_dir.empty()) opts_.serial_file = opts_.state_dir + "/serial";
  if (opts_.commit) CM_RETURN_IF_ERROR(push::ParseRequire(opts_.require).status());
  if (opts_.sign_key.empty())
    return Error(Code::kUsage, "no signing key (--sign-key): every order to a relay is signed with it");
  if (opts_.group_key.empty())
    return Error(Code::kUsage, "no group key (--group-key): relays' reports are checked with it");
  auto sign = pack::LoadSigningKey(opts_.sign_key);
  if (!sign.ok()) return sign.status();
  auto group = LoadGroupKey(opts_.group_key);
  if (!group.ok()) return group.status();
  auth_ = std::make_unique<AuthEdge>(NewCcmId(), *sign, std::nullopt, *group);
  if (opts_.listen.empty() && sites_.ccm.listen.ToString().empty())
    return Error(Code::kUsage, opts_.sites_file + ": [ccm] listen is required (or --listen)");
  // Leader reports: by POST /v1/leader-report (stamped like every report).
  reports_ = std::make_unique<LeaderReports>();
  if (!opts_.sequential) {
    reports_->SetOnReport([this](const LeaderReport& rep) {
      const push::Server* s = sites_.ServerByAddress(rep.leader_ip);
      EdgeLoop* loop = live_loop_.load();
      if (!s || !loop) return;
      std::string site = rep.segment, server = s->name;
      loop->Post([this, site, server] {
        push::JobActions a;
        core_->OnLeaderReport(SteadyNow(), site, server, &a);
        Apply(a);
      });
    });
  }
  if (opts_.live_view) view_ = std::make_unique<LiveView>();
  return Status::Ok();
}

// After the database took the job (a refused or queued job never holds the
// port). The configured port, else (another job of this CCM runs) the next
// free one of kPortTries: orders carry the CCM's URL, so relays follow.
Status Controller::Listen() {
  constexpr int kPortTries = 32;
  std::string listen = opts_.listen.empty() ? sites_.ccm.listen.ToString() : opts_.listen;
  const size_t colon = listen.rfind(':');
  const std::string host = listen.substr(0, colon);
  const int port = std::atoi(listen.c_str() + colon + 1);
  http::ServerOptions so;
  so.max_connections = 512;  // in all; at most ServerOptions::max_connections_per_peer from one address
  so.idle_timeout = milliseconds(20000);
  Status last;
  int tries = port == 0 ? 1 : kPortTries;
  for (int i = 0; i < tries && port + i <= 65535; ++i) {
    so.listen = host + ":" + std::to_string(port + i);
    auto srv = http::Server::Start(so, [this](const http::Request& r) { return Handle(r); });
    if (srv.ok()) {
      server_ = std::move(*srv);
      if (i > 0) log::Warn("port " + std::to_string(port) + " is taken (another job?): listening on " + so.listen);
      break;
    }
    last = srv.status();
    if (last.message().find("in use") == std::string::npos) return last;
  }
  if (!server_) return last;
  const std::string bound = std::to_string(server_->port());
  if (!sites_.ccm.url.empty() && opts_.listen.empty()) {
    ccm_url_ = sites_.ccm.url;
    if (server_->port() != port) {  // the configured URL, with this job's port
      size_t c = ccm_url_.rfind(':');
      ccm_url_ = (c != std::string::npos && c > 5 ? ccm_url_.substr(0, c) : ccm_url_) + ":" + bound;
    }
  } else {
    ccm_url_ = "http://" + host + ":" + bound;
  }
  return Status::Ok();
}

// Every relay at once: who is up, whom cm-leader elected in each site.
void Controller::Probe() {
  if (opts_.sequential || !opts_.probe) return;
  probed_ = ProbeSites(sites_, *auth_);
  elected_ = ElectedLeaders(sites_, probed_);
  size_t down = 0;
  for (const auto& [name, a] : probed_)
    if (!a.up) {
      ++down;
      if (opts_.verbosity > 1) log::Info(name + " does not answer: " + a.error);
    }
  if (down && opts_.verbosity > 0)
    log::Info(std::to_string(down) + " of " + std::to_string(probed_.size()) + " relays do not answer at start");
}

Status Controller::BeginInDb() {
  if (opts_.state_dir.empty()) return Status::Ok();
  std::error_code ec;
  if (std::filesystem::exists(opts_.state_dir, ec) && !std::filesystem::is_directory(opts_.state_dir, ec))
    return Error(Code::kUsage, opts_.state_dir + ": not a directory (--state DIR)");
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
  spec.release = release_;
  spec.invocation = opts_.invocation;
  if (opts_.wait_s < 0) {
    auto h = db_->BeginJob(spec, pushdb::BeginMode::kRefuse);
    if (!h.ok()) return h.status();
    job_id_ = h->id;
  } else {
    pushdb::WaitOptions w;
    w.budget = milliseconds(static_cast<int64_t>(opts_.wait_s * 1000));
    // Said once per blocker, not once per poll.
    w.on_blocked = [this, last = std::string()](const Status& st) mutable {
      if (st.message() == last) return;
      last = st.message();
      if (opts_.verbosity > 0) log::Warn("waiting: " + st.message());
    };
    auto h = pushdb::BeginJobWaiting(db_.get(), spec, w);
    if (!h.ok()) return h.status();
    job_id_ = h->id;
  }
  writer_ = std::make_unique<DbWriter>(db_.get(), job_id_, release_, rollback_);
  return Status::Ok();
}

Result<push::JobPlan> Controller::Plan() const {
  push::JobPlan plan;
  for (const auto& site : sites_.sites) {
    push::JobSite js;
    js.name = site.name;
    if (site.group.ip) js.group = site.group.ToString();
    js.preferred_leader = site.leader;
    for (const auto& s : site.servers) {
      push::JobServer srv{s.name, s.url};
      auto p = probed_.find(s.name);
      srv.down = p != probed_.end() && !p->second.up;
      if (s.facts.rate_mbit) srv.rate_bps = *s.facts.rate_mbit * 1e6;
      if (s.facts.reliability_permille) srv.reliability = *s.facts.reliability_permille / 1000.0;
      if (s.facts.utc_offset_min) srv.tz_offset_minutes = *s.facts.utc_offset_min;
      if (s.facts.cpu_permille) srv.idle_cpu_permille = 1000 - *s.facts.cpu_permille;
      js.servers.push_back(std::move(srv));
    }
    if (auto e = elected_.find(site.name); e != elected_.end()) js.elected_leader = e->second;
    if (!opts_.sequential && js.elected_leader.empty()) {
      if (auto rep = reports_->Latest(site.name)) {
        const push::Server* s = sites_.ServerByAddress(rep->leader_ip);
        if (s && s->site == site.name) js.elected_leader = s->name;
        if (rep->cpu_permille <= 1000) js.idle_cpu_permille = 1000 - static_cast<uint32_t>(rep->cpu_permille);
      }
    }
    plan.sites.push_back(std::move(js));
  }
  for (const auto& p : parts_) plan.parts.push_back(PartOf(p));
  push::JobOptions& o = plan.options;
  if (!switch_job_) o.expect_manifest = opts_.expect_manifest;  // exact reports
  if (opts_.commit) {
    auto req = push::ParseRequire(opts_.require);
    if (!req.ok()) return req.status();
    o.require = *req;
  }
  o.commit = opts_.commit;
  o.switch_job = switch_job_;
  o.star_max = opts_.star_max;
  if (o.star_max == 0) {
    // A chain unless the CCM's uplink is several times the fastest site's.
    uint32_t fastest = 0;
    for (const auto& site : sites_.sites)
      for (const auto& srv : site.servers) fastest = std::max(fastest, srv.facts.rate_mbit.value_or(0));
    o.star_max = sites_.ccm.uplink_mbit && fastest ? std::max<size_t>(1, *sites_.ccm.uplink_mbit / fastest) : 1;
  }
  o.pipeline = opts_.pipeline;
  o.sequential = opts_.sequential;
  o.timeout = static_cast<push::Micros>(opts_.timeout_s * 1e6);
  o.admin_order = sites_.ccm.order;
  o.ccm_url = ccm_url_;
  o.ccm_id = auth_->self();
  // An order is valid for the whole job and a margin (a leader passes
  // /v1/next orders on late in a long transfer).
  const int64_t lifetime = static_cast<int64_t>(opts_.timeout_s) + 600;
  AuthEdge* auth = auth_.get();
  o.seal = [auth, lifetime](const std::string& to, push::Endpoint ep, const std::string& body) {
    return auth->Seal(to, ep, body, lifetime);
  };
  return plan;
}

// ---- HTTP: decoded into core events on the loop ----------------------------

template <typename Parse, typename Sender, typename On>
http::Response Controller::Dispatch(const std::string& body, Parse parse, Sender sender, On on) {
  auto msg = parse(body);
  if (!msg.ok()) return JsonError(400, msg.status().message());
  if (!sender(*msg)) return JsonError(403, "forbidden: a server may report only for itself");
  EdgeLoop* loop = live_loop_.load();
  if (!loop) return JsonError(503, "the job has not started");
  std::optional<push::Reply> reply = loop->Run([&]() -> std::optional<push::Reply> {
    if (core_->finished()) return push::Reply{409, push::EncodeError("the job is over")};
    push::JobActions a;
    push::Reply r = on(*msg, &a);
    Apply(a);
    return r;
  });
  if (!reply) return JsonError(503, "the job is over");
  return ToHttp(*reply);
}

http::Response Controller::Handle(const http::Request& req) {
  std::string path = req.target.substr(0, req.target.find('?'));
  if ((req.method == "GET" || req.method == "HEAD") && path.rfind("/v1/content/", 0) == 0) {
    uint64_t serial = std::strtoull(path.c_str() + 12, nullptr, 10);
    std::string file;
    {
      std::lock_guard<std::mutex> l(files_mu_);
      auto it = files_.find(serial);
      if (it == files_.end()) return JsonError(404, "serial not served here");
      file = it->second;
    }
    auto held = push::CompleteFile::Open(file);
    if (!held.ok()) return JsonError(500, held.status().message());
    http::Response r;
    r.content_type = "application/octet-stream";
    r.stream = MakeContentBody(std::shared_ptr<push::HeldContent>(std::move(*held)));
    return r;
  }
  if (req.method == "GET" && path == "/v1/status") {
    EdgeLoop* loop = live_loop_.load();
    if (!loop) return http::Response::Json(200, JsonObject().Str("role", "ccm").Build());
    auto status = loop->Run([this] { return std::make_pair(core_->serial(), core_->SiteStatus()); });
    JsonObject o;
    o.Str("role", "ccm");
    if (status.first) {
      JsonArray sites;
      for (const auto& s : status.second)
        sites.Raw(JsonObject().Str("site", s.site).Str("leader", s.leader).Uint("verified", s.verified).Bool("done", s.done).Build());
      o.Uint("serial", status.first).Raw("sites", sites.Build());
    }
    return http::Response::Json(200, o.Build());
  }
  if (req.method != "POST") return JsonError(404, "no such resource");
  if (path == "/v1/leader-report") {
    if (auto v = auth_->CheckReport(req, nullptr, push::auth::kCcmName); v != push::auth::Verdict::kOk)
      return AuthEdge::Refuse(v, req);
    auto rep = LeaderReports::Parse(req.body);
    if (!rep) return JsonError(400, "not a cm-leader segment report");
    // "latest": whether it became its segment's latest (an older term does not).
    const bool latest = reports_->Add(std::move(*rep));
    return http::Response::Json(200, JsonObject().Bool("ok", true).Bool("latest", latest).Build());
  }
  push::Endpoint ep;
  if (!push::ParseEndpoint(path, &ep)) return JsonError(404, "no such resource");
  std::string from;
  if (auto v = auth_->CheckReport(req, &from); v != push::auth::Verdict::kOk) {
    // A genuine relay's report for another run of the CCM (a job before this
    // one, or the run a rerun replaced, at the same address): refused, but
    // no warning: it is the expected tail of a rerun, not an attack (the
    // group key's MAC verified).
    if (v == push::auth::Verdict::kWrongRecipient) {
      if (opts_.verbosity > 1) log::Info("ignored " + req.method + " " + path + " from " + req.peer_ip + ": for another CCM run");
      return JsonError(push::auth::VerdictStatus(v), push::auth::VerdictText(v));
    }
    return AuthEdge::Refuse(v, req);
  }
  http::Response resp = Dispatch(ep, from, req.body);
  if (resp.status / 100 == 2 && (ep == push::Endpoint::kNext || ep == push::Endpoint::kSourceFailed))
    resp.headers.push_back({push::auth::kHeader, auth_->SealAnswer(from, path, resp.body)});
  return resp;
}

// A report whose stamp verified, from `from`: the body must speak for the
// same server.
http::Response Controller::Dispatch(push::Endpoint ep, const std::string& from, const std::string& body) {
  push::Micros now = 0;
  auto at = [&now] { return now = SteadyNow(); };
  auto as = [&from](const std::string& who) { return who == from; };
  const std::string& path = push::EndpointPath(ep);
  if (path == "/v1/site-report")
    return Dispatch(body, push::ParseSiteReport, [&](const push::SiteReport& m) { return as(m.leader); },
                    [&](const push::SiteReport& m, push::JobActions* a) { return core_->OnSiteReport(at(), m, a); });
  if (path == "/v1/progress")
    return Dispatch(body, push::ParseProgress, [&](const push::Progress& m) { return as(m.relay); },
                    [&](const push::Progress& m, push::JobActions* a) { return core_->OnProgress(at(), m, a); });
  if (path == "/v1/next")
    return Dispatch(body, push::ParseNextAsk, [&](const push::NextAsk& m) { return as(m.relay); },
                    [&](const push::NextAsk& m, push::JobActions* a) { return core_->OnNext(at(), m, a); });
  if (path == "/v1/notify-failed")
    return Dispatch(body, push::ParseNotifyFailed, [&](const push::NotifyFailed& m) { return as(m.from); },
                    [&](const push::NotifyFailed& m, push::JobActions* a) { return core_->OnNotifyFailed(at(), m, a); });
  if (path == "/v1/relay-failed")  // a relay cannot do its part for a reason of its own
    return Dispatch(body, push::ParseRelayFailed, [&](const push::RelayFailed& m) { return as(m.relay); },
                    [&](const push::RelayFailed& m, push::JobActions* a) {
                      return core_->OnRelayFailed(at(), m.relay, m.serial, m.error, m.apply_exit, a);
                    });
  if (path == "/v1/source-failed")
    return Dispatch(body, push::ParseSourceFailed, [&](const push::SourceFailed& m) { return as(m.relay); },
                    [&](const push::SourceFailed& m, push::JobActions* a) { return core_->OnSourceFailed(at(), m, a); });
  return JsonError(404, "no such resource");
}

// ---- the core's actions (loop thread) -----------------------------------------

void Controller::Apply(push::JobActions& a) {
  for (auto& c : a.calls) runner_->Start(std::move(c));
  if (writer_)
    for (const auto& r : a.records) writer_->Add(r);
  for (const auto& e : a.events) Emit(e);
  if (view_) view_->Draw();
  if (a.make_commit) MakeCommit();
  if (a.update_shadow) shadow_ = true;
  if (a.finished) {
    {
      std::lock_guard<std::mutex> l(done_mu_);
      done_ = true;
      verdicts_ = std::move(a.verdicts);
    }
    done_cv_.notify_all();
    return;
  }
  loop_->SetTimer(a.wake_at);
}

void Controller::Emit(const JobEvent& e) {
  auto ccm_or = [](const std::string& s) { return s.empty() ? std::string("ccm") : s; };
  switch (e.kind) {
    case JobEvent::Kind::kPhase:
      Event("phase", JsonObject()
                         .Uint("serial", e.serial)
                         .Str("kind", push::TransferKindName(e.transfer))
                         .Uint("size", e.bytes)
                         .Uint("sites", e.count));
      break;
    case JobEvent::Kind::kSiteStarted:
      if (view_) view_->AddSite(e.site, e.relay, e.count);
      break;
    case JobEvent::Kind::kOrder:
      Event("order", JsonObject().Uint("serial", e.serial).Str("relay", e.relay).Str("site", e.site).Str("source", ccm_or(e.from)));
      break;
    case JobEvent::Kind::kProgress:
      if (view_) view_->SetBytes(e.site, e.relay, e.bytes, e.size);
      break;
    case JobEvent::Kind::kReceived:
      Event("received", JsonObject().Str("relay", e.relay).Str("site", e.site));
      break;
    case JobEvent::Kind::kServer: {
      JsonObject o;
      o.Str("server", e.server).Str("site", e.site).Str("state", push::ServerStateName(e.state)).Str("error", e.error).Str(
          "via", push::ViaName(e.via));
      if (e.apply_exit) o.Int("apply_exit", e.apply_exit);
      Event("server", std::move(o));
      if (view_) view_->SetServer(e.site, e.server, push::ServerStateName(e.state));
      // Every failure on stderr with its reason, when it happens.
      if (e.state == ServerState::kFailed && opts_.verbosity > 0 && !view_)
        log::Warn(e.server + " (" + e.site + ") failed: " + e.error +
                  (e.apply_exit ? " (cm-apply exit " + std::to_string(e.apply_exit) + ")" : ""));
      break;
    }
    case JobEvent::Kind::kSiteReport:
      Event("site-report", JsonObject().Str("site", e.site).Str("leader", e.relay).Uint("serial", e.serial));
      break;
    case JobEvent::Kind::kSiteFailed:
      Event("site-failed", JsonObject().Str("site", e.site).Str("error", e.error));
      break;
    case JobEvent::Kind::kLeaderChanged:
      Event("leader-changed", JsonObject().Str("site", e.site).Str("old", e.from).Str("new", e.to).Str("why", e.error));
      if (opts_.verbosity > 1) log::Info(e.site + ": leader " + e.from + " -> " + e.to + " (" + e.error + ")");
      break;
    case JobEvent::Kind::kReparent:
      Event("reparent",
            JsonObject().Str("relay", e.relay).Str("from", ccm_or(e.from)).Str("to", ccm_or(e.to)).Uint("resume_at", e.bytes));
      break;
    case JobEvent::Kind::kCommit:
      Event("commit", JsonObject().Uint("staged", e.count).Uint("servers", e.total));
      break;
    case JobEvent::Kind::kCommitRefused:
      log::Error("commit not sent: " + std::to_string(e.count) + " of " + std::to_string(e.total) +
                 " servers staged, --require " + opts_.require);
      break;
    case JobEvent::Kind::kTimedOut:
      log::Warn("serial " + std::to_string(e.serial) + ": timed out after " + std::to_string(opts_.timeout_s) + " s");
      Event("timed-out", JsonObject().Uint("serial", e.serial));
      break;
  }
}

// cm-pack runs off the loop; its result comes back as an event.
void Controller::MakeCommit() {
  if (commit_thread_.joinable()) commit_thread_.join();
  commit_thread_ = std::thread([this] {
    Result<push::JobPart> part = Error(Code::kFailure, "no commit assignment");
    auto file = MakeCommitAssignment();
    if (!file.ok()) {
      part = file.status();
    } else if (auto info = ReadAssignmentInfo(*file); !info.ok()) {
      part = info.status();
    } else {
      {
        std::lock_guard<std::mutex> l(files_mu_);
        files_[info->serial] = *file;
      }
      part = PartOf(*info);
    }
    if (!part.ok()) log::Error("commit: " + part.status().message());
    loop_->Post([this, part] {
      push::JobActions a;
      core_->OnCommitReady(SteadyNow(), part, &a);
      Apply(a);
    });
  });
}

Result<std::string> Controller::MakeCommitAssignment() {
  if (!opts_.commit_file.empty()) return opts_.commit_file;
  // A private directory (0700, unpredictable name) that ends with the run.
  if (commit_dir_.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = (opts_.state_dir.empty() ? std::string(tmp && *tmp ? tmp : "/tmp") : opts_.state_dir) +
                       "/commit-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return ErrnoError(tmpl, errno);
    commit_dir_ = tmpl;
  }
  std::string out = commit_dir_ + "/commit-" + std::to_string(job_id_) + ".cma";
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

void Controller::UpdateShadow() {
  if (!shadow_ || opts_.shadow.empty()) return;
  std::vector<std::string> argv{opts_.cm_apply};
  for (const auto& f : opts_.assignments) argv.push_back(f);
  argv.insert(argv.end(), {"--root", opts_.shadow, "-q"});
  if (!switch_job_) argv.push_back("--commit");  // a commit or rollback assignment switches by itself
  // The job's assignments are checked with the public half of our key.
  std::string pub = opts_.sign_key + ".pub";
  if (::access(pub.c_str(), R_OK) != 0) pub = DefaultFile("", "ccm.pub");
  if (!pub.empty()) argv.insert(argv.end(), {"--pub-key", pub});
  auto r = RunProcess(argv);
  if (!r.ok() || r->exit_code != 0)
    log::Warn("shadow copy not updated: " + (r.ok() ? LastLine(r->err) : r.status().message()));
}

// ---- the end --------------------------------------------------------------------

// Runs `command` (sh -c) once per server in `who`, with the server's
// environment; a failure is a warning.
void RunPerServer(const std::string& flag, const std::string& command, const std::vector<push::FinalVerdict>& who,
                  const std::string& job, const std::string& release) {
  for (const auto& v : who) {
    ProcessOptions po;
    po.capture_stderr = false;
    po.timeout = std::chrono::minutes(5);
    po.env = {"CM_SERVER=" + v.server, "CM_SITE=" + v.site, "CM_JOB=" + job, "CM_ERROR=" + v.error,
              "CM_STATE=" + std::string(push::ServerStateName(v.state)),
              "CM_RELEASE=" + (v.release.empty() ? release : v.release),
              "CM_SERIAL=" + std::to_string(v.serial)};
    auto res = RunProcess({"/bin/sh", "-c", command}, po);
    if (!res.ok() || res->exit_code != 0) log::Warn(flag + " for " + v.server + " failed");
  }
}

PushOutcome Controller::Finish() {
  PushOutcome out;
  ServerState want = opts_.commit || switch_job_ ? ServerState::kCommitted : ServerState::kStaged;
  auto shown = [&](ServerState st) {
    return rollback_ && st == ServerState::kCommitted ? ServerState::kRolledBack : st;
  };
  JsonArray servers;
  std::string table;
  char line[512];
  std::snprintf(line, sizeof line, "%-16s %-12s %-11s %-20s %s\n", "SERVER", "SITE", "STATE", "SERIAL", "ERROR");
  table += line;
  std::vector<push::FinalVerdict> failed, committed;
  for (const auto& v : verdicts_) {
    ++out.servers;
    if (v.ok) ++out.ok;
    else ++out.failed;
    (v.ok ? committed : failed).push_back(v);
    // What the server says it runs (else, for a switch, what was sent).
    const std::string release = !v.release.empty() ? v.release : v.state == ServerState::kCommitted ? release_ : "";
    const uint64_t serial =
        v.state == ServerState::kCommitted && ReleaseSerial(release) ? ReleaseSerial(release) : v.serial;
    JsonObject o;
    o.Str("server", v.server).Str("site", v.site).Str("state", push::ServerStateName(shown(v.state))).Uint(
        "serial", serial);
    o.Str("release", release).Str("manifest", v.manifest).Str("error", v.error);
    if (v.apply_exit) o.Int("apply_exit", v.apply_exit);
    servers.Raw(o.Build());
    std::snprintf(line, sizeof line, "%-16s %-12s %-11s %-20s %s\n", v.server.c_str(), v.site.c_str(),
                  push::ServerStateName(shown(v.state)), serial ? std::to_string(serial).c_str() : "-",
                  v.error.c_str());
    table += line;
  }
  if (!opts_.on_fail.empty()) RunPerServer("--on-fail", opts_.on_fail, failed, parts_.front().job, release_);
  if (want == ServerState::kCommitted && !opts_.on_commit.empty())
    RunPerServer("--on-commit", opts_.on_commit, committed, parts_.front().job, release_);
  out.exit_code = out.failed == 0 ? kExitOk : out.ok > 0 ? kExitPartial : kExitFailure;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  char sum[256];
  std::snprintf(sum, sizeof sum, "job %s: %zu of %zu servers %s in %.1f s", parts_.front().job.c_str(), out.ok,
                out.servers, push::ServerStateName(shown(want)), secs);
  out.summary = sum;
  const int64_t finished_ms = UnixMillis();
  JsonArray serials;
  for (const auto& p : parts_) serials.Raw(std::to_string(p.serial));
  JsonObject job;
  if (job_id_) job.Int("id", job_id_);
  else job.Null("id");
  job.Str("name", parts_.front().job).Str("kind", rollback_ ? "rollback" : switch_job_ ? "commit" : "publish");
  job.Str("release", release_).Raw("serials", serials.Build());
  job.Str("started", pushdb::FormatTimeRfc3339(started_unix_ms_)).Str("finished", pushdb::FormatTimeRfc3339(finished_ms));
  const char* result = out.exit_code == 0 ? "ok" : out.exit_code == kExitPartial ? "partial" : "failed";
  std::string report = JsonObject()
                           .Int("v", pushdb::kJsonSchema)
                           .Raw("job", job.Build())
                           .Str("result", result)
                           .Int("exit", out.exit_code)
                           .Double("seconds", secs)
                           .Uint("server_count", out.servers)
                           .Uint("servers_ok", out.ok)
                           .Uint("servers_failed", out.failed)
                           .Raw("servers", servers.Build())
                           .Build();
  if (!opts_.report_file.empty()) {
    // The one atomic writer (a temporary name, then rename): a killed run never leaves half a report.
    Status w = WriteFileAtomic(opts_.report_file, report + "\n", 0644);
    if (!w.ok()) log::Warn(opts_.report_file + ": cannot write: " + w.message());
  }
  if (!opts_.metrics_file.empty()) {
    // node_exporter's textfile collector: one file, replaced atomically.
    std::string m;
    auto metric = [&](const std::string& name, const std::string& help, double value) {
      char v[64];
      std::snprintf(v, sizeof v, "%.17g", value);
      m += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + v + "\n";
    };
    metric("cm_push_last_run_timestamp_seconds", "When the last cm-push job ended (Unix seconds).", finished_ms / 1000.0);
    metric("cm_push_last_run_duration_seconds", "How long the last job took.", secs);
    metric("cm_push_last_run_exit_code", "The last job's exit code (0 ok, 11 partial, 1 failed).", out.exit_code);
    metric("cm_push_last_run_servers", "Servers the last job targeted.", static_cast<double>(out.servers));
    metric("cm_push_last_run_servers_ok", "Servers that reached the job's goal.", static_cast<double>(out.ok));
    metric("cm_push_last_run_servers_failed", "Servers that failed in the last job.", static_cast<double>(out.failed));
    Status w = WriteFileAtomic(opts_.metrics_file, m, 0644);
    if (!w.ok()) log::Warn(opts_.metrics_file + ": cannot write: " + w.message());
  }
  if (opts_.json) {
    std::lock_guard<std::mutex> l(out_mu_);
    std::fprintf(stdout, "%s\n", JsonObject().Int("v", pushdb::kJsonSchema).Str("event", "done").Raw("report", report).Build().c_str());
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

void Controller::Shutdown() {
  if (runner_) runner_->Stop();
  if (loop_) loop_->Stop();
  if (commit_thread_.joinable()) commit_thread_.join();
  if (server_) server_->Stop();
  if (writer_) writer_->Drain();
  if (!commit_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(commit_dir_, ec);
    commit_dir_.clear();
  }
}

Result<PushOutcome> Controller::Run() {
  CM_RETURN_IF_ERROR(Setup());
  CM_RETURN_IF_ERROR(BeginInDb());
  if (Status st = Listen(); !st.ok()) {
    if (db_) db_->FinishJob(job_id_, pushdb::JobState::kFailed, st.message());
    return st;
  }
  Probe();
  auto plan = Plan();
  if (!plan.ok()) return plan.status();
  auto core = push::JobCore::Create(std::move(*plan));
  if (!core.ok()) return core.status();
  core_ = std::move(*core);
  loop_ = std::make_unique<EdgeLoop>([this](push::Micros now) {
    push::JobActions a;
    core_->OnTimer(now, &a);
    Apply(a);
  });
  runner_ = std::make_unique<CallRunner>(loop_.get(), [this](const push::CallResult& r) {
    push::JobActions a;
    core_->OnCallDone(SteadyNow(), r, &a);
    Apply(a);
  }, 16, auth_.get());
  live_loop_ = loop_.get();
  loop_->Post([this] {
    push::JobActions a;
    core_->Start(SteadyNow(), &a);
    Apply(a);
  });
  {
    std::unique_lock<std::mutex> l(done_mu_);
    done_cv_.wait(l, [&] { return done_; });
  }
  // The core is finished; the loop answers every late request as over.
  runner_->Stop();
  if (commit_thread_.joinable()) commit_thread_.join();
  loop_->Run([this] {
    if (view_) view_->Draw();
    return 0;
  });
  if (writer_) writer_->Drain();
  UpdateShadow();
  PushOutcome out = Finish();
  Shutdown();
  return out;
}

}  // namespace

Result<PushOutcome> RunPush(const PushOptions& given) {
  PushOptions opts = given;
  // The BASE of the job (cm-pack inspect, once per file): the tree it makes
  // (exact reports) and, for convergence, the tree it applies to.
  std::optional<AssignmentBase> first, last;
  if (!opts.assignments.empty()) {
    if (auto b = InspectBase(opts.cm_pack, opts.assignments.front()); b.ok()) first = *b;
    if (opts.assignments.size() == 1) last = first;
    else if (auto b = InspectBase(opts.cm_pack, opts.assignments.back()); b.ok()) last = *b;
  }
  if (last && opts.expect_manifest.empty()) opts.expect_manifest = last->result;
  // Convergence first (converge_run.h): a failure there is a warning; the
  // push itself then fails, with cm-apply's reason, where a base is wrong.
  if (opts.converge && !opts.sequential && !opts.state_dir.empty() && first) {
    auto base = BaseReleaseOf(opts, *first);
    if (!base.ok()) {
      log::Warn("convergence skipped: " + base.status().message());
    } else if (!base->empty()) {
      ConvergeJob cj;
      cj.below_serial = first->serial;
      cj.name = first->job.empty() ? "converge" : first->job;
      cj.done_manifest = last ? last->result : "";
      cj.encrypt = first->encrypted;
      if (auto c = ConvergeTo(opts, *base, cj); !c.ok()) log::Warn("convergence: " + c.status().message());
    }
  }
  Controller c(opts);
  auto out = c.Run();
  // A server that could not switch back to the rollback's release (it never
  // had it: it caught up later, or was new) gets that release's tree from
  // its checkpoint.
  if (out.ok() && out->failed > 0 && opts.converge && !opts.release.empty() && !opts.state_dir.empty()) {
    auto store = ckpt::Store::Open(CheckpointDir(opts.state_dir));
    if (store.ok() && (*store)->Info(opts.release).ok()) {
      auto c2 = ConvergeTo(opts, opts.release);
      if (!c2.ok()) {
        log::Warn("convergence: " + c2.status().message());
      } else if (c2->caught_up > 0 && opts.verbosity > 0) {
        // The rollback job's report stays what it was; the catch-up jobs are
        // recorded on their own (cm-push servers shows where each server is).
        log::Info(std::to_string(c2->caught_up) + " server(s) that could not switch got " + opts.release +
                  "'s tree from its checkpoint");
      }
    }
  }
  if (out.ok() && out->ok > 0)
    if (Status st = KeepCheckpoint(opts); !st.ok()) log::Warn("checkpoint not kept: " + st.message());
  return out;
}

}  // namespace cm::pushrun
