// The relay's edge: HTTP requests become RelayCore events on one EdgeLoop,
// the core's actions run here (calls on CallRunner, fetch attempts and child
// processes on threads of their own that post their ends back). Serving
// content is data plane and never touches the core.
#include "pushrun/relay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "http/server.h"
#include "push/relay_core.h"
#include "pushrun/auth_edge.h"
#include "pushrun/content_body.h"
#include "pushrun/edge_loop.h"
#include "pushrun/fetch.h"
#include "pushrun/leader_state.h"
#include "pushrun/live_tree.h"
#include "pushrun/relay_children.h"
#include "pushrun/relay_metrics.h"
#include "pushrun/spool_retention.h"
#include "util/file_util.h"
#include "util/json.h"
#include "util/log.h"

namespace cm::pushrun {

using push::ChildKind;
using push::RelayActions;

namespace {

namespace fs = std::filesystem;

constexpr Micros kFetchUpdateEvery = 100 * proto::kMillis;  // progress posted to the core at most this often

http::Response ToResponse(const push::Reply& r) {
  http::Response resp;
  resp.status = r.status;
  resp.body = r.body;
  return resp;
}
http::Response JsonError(int status, const std::string& msg) { return ToResponse({status, push::EncodeError(msg)}); }

// The value of `key` in the request target's query ("" when absent).
using http::QueryParam;

// A refusal's reason for the metrics: the verdict's name.
const char* VerdictReason(push::auth::Verdict v) {
  using push::auth::Verdict;
  switch (v) {
    case Verdict::kOk: return "ok";
    case Verdict::kMissing: return "unauthenticated";
    case Verdict::kMalformed: return "malformed";
    case Verdict::kWrongAlg: return "wrong_alg";
    case Verdict::kBadTag: return "bad_signature";
    case Verdict::kWrongSender: return "not_from_ccm";
    case Verdict::kWrongRecipient: return "wrong_relay";
    case Verdict::kExpired: return "expired";
    case Verdict::kTooFarAhead: return "too_far_ahead";
    case Verdict::kReplayed: return "replayed";
  }
  return "other";
}

Micros Seconds(double s) { return static_cast<Micros>(s * proto::kSeconds); }

push::RelayCoreOptions CoreOptions(const RelayOptions& o, const std::string& url) {
  push::RelayCoreOptions c;
  c.name = o.name;
  c.url = url;
  c.member_wait = Seconds(o.member_wait_s);
  c.member_retry = Seconds(o.member_retry_s);
  return c;
}

using CancelFlag = std::shared_ptr<std::atomic<bool>>;

}  // namespace

struct Relay::Impl {
  RelayOptions opts;
  std::string url;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<push::RelayCore> core;
  std::unique_ptr<EdgeLoop> loop;
  std::unique_ptr<CallRunner> runner;
  std::unique_ptr<AuthEdge> auth;
  std::unique_ptr<LiveTreeProbe> live_probe;  // the live tree for the CCM's start probe
  std::atomic<bool> stopping{false};
  RelayMetrics metrics;

  // Data plane (any thread): the held bytes of every serial in use. A
  // serial's file is closed as soon as nothing uses it (its part ended, no
  // fetch or child holds it); a reader that comes later opens it again, and
  // one reading keeps its own handle (HeldContent) until it is done.
  struct FetcherSlot {
    std::shared_ptr<Fetcher> fetcher;
    std::once_flag opened;  // the spool's file for the serial checked (Fetcher::OpenExisting)
  };
  std::mutex mu;
  std::map<uint64_t, std::shared_ptr<FetcherSlot>> fetchers;

  // Loop thread only.
  struct FetchSlot {
    std::thread thread;
    CancelFlag cancel;
    bool running = false;
    std::optional<push::StartFetch> next;  // replaces the running attempt once it ended
  };
  struct ChildSlot {
    std::thread thread;
    CancelFlag cancel;            // polled by the child's thread (also set by a failed site copy)
    bool cancelled_by_core = false;
  };
  std::map<uint64_t, FetchSlot> fetch_slots;
  std::map<push::ChildId, ChildSlot> child_slots;
  std::set<uint64_t> told;     // serials whose held state the core knows
  std::set<uint64_t> closing;  // serials whose part ended: their files close once nothing uses them
  RelayActions actions;
  Micros next_housekeeping = 0;

  std::string SpoolPath(uint64_t serial) const { return opts.spool + "/" + std::to_string(serial) + ".cma"; }

  // The serial's fetcher; a new one first checks what the spool holds (the
  // whole file is hashed: outside `mu`, so serving other serials goes on).
  // Every caller waits until that check is done (call_once).
  std::shared_ptr<Fetcher> FetcherFor(uint64_t serial) {
    std::shared_ptr<FetcherSlot> slot;
    {
      std::lock_guard<std::mutex> l(mu);
      auto& s = fetchers[serial];
      if (!s) {
        FetchTarget ft;
        ft.serial = serial;
        ft.path = SpoolPath(serial);
        ft.pub_key = opts.pub_key;
        ft.allow_unsigned = opts.allow_unsigned;
        ft.idle_timeout_s = opts.idle_timeout_s;
        s = std::make_shared<FetcherSlot>();
        s->fetcher = std::make_shared<Fetcher>(ft);
      }
      slot = s;
    }
    std::call_once(slot->opened, [&] { slot->fetcher->OpenExisting(); });
    return slot->fetcher;
  }

  // The serial's fetcher if one is open (none is made: GET /v1/status must
  // not re-check files).
  std::shared_ptr<Fetcher> PeekFetcher(uint64_t serial) {
    std::lock_guard<std::mutex> l(mu);
    auto it = fetchers.find(serial);
    return it == fetchers.end() ? nullptr : it->second->fetcher;
  }

  push::FetchUpdate Snapshot(uint64_t serial, uint64_t attempt) {
    auto f = FetcherFor(serial);
    push::FetchUpdate u;
    u.serial = serial;
    u.attempt = attempt;
    u.table_known = f->held() != nullptr;
    u.verified = f->verified();
    u.size = f->size();
    u.complete = f->complete();
    return u;
  }

  // ---- the loop: events into the core, actions out ------------------------

  // Before the first event naming `serial`: what we hold of it already.
  void Tell(uint64_t serial) {
    if (!told.insert(serial).second) return;
    core->OnFetchUpdate(SteadyNow(), Snapshot(serial, 0), &actions);
    Run();
  }

  // Runs the core's actions; none once stopping (Stop() has collected the
  // threads to join, so no new one may start).
  void Run() {
    RelayActions a = std::move(actions);
    actions.Clear();
    if (stopping) return;
    for (auto& c : a.calls) runner->Start(std::move(c));
    for (uint64_t s : a.stop_fetches) StopFetch(s);
    for (auto& f : a.fetches) StartFetch(f);
    for (push::ChildId id : a.cancel_children)
      if (auto it = child_slots.find(id); it != child_slots.end()) {
        it->second.cancelled_by_core = true;
        *it->second.cancel = true;
      }
    for (auto& c : a.children) StartChild(c);
    for (const auto& n : a.notes) Note(n);
    for (const auto& o : a.outcomes) metrics.Transfer(o.leader ? "leader" : "member", o.outcome);
    closing.insert(a.ended.begin(), a.ended.end());
    if (!a.ended.empty()) {
      Housekeep(SteadyNow());
    } else if (!closing.empty()) {
      CloseIdle();
    }
    loop->SetTimer(std::min(a.wake_at, next_housekeeping));
  }

  // ---- housekeeping (loop thread): idle files, retention, metrics -----------

  bool FetchRunning(uint64_t serial) const {
    auto it = fetch_slots.find(serial);
    return it != fetch_slots.end() && (it->second.running || it->second.thread.joinable());
  }

  // Whether nothing uses `serial`: no transfer, call or child in the core,
  // no fetch attempt, no reader of its file.
  bool Idle(uint64_t serial) {
    if (core->InUse(serial) || FetchRunning(serial)) return false;
    std::lock_guard<std::mutex> l(mu);
    auto it = fetchers.find(serial);
    return it == fetchers.end() || it->second->fetcher.use_count() == 1;
  }

  void Drop(uint64_t serial) {
    {
      std::lock_guard<std::mutex> l(mu);
      fetchers.erase(serial);
    }
    told.erase(serial);
    closing.erase(serial);
  }

  // Closes the files of ended serials nothing uses any more (a call still in
  // flight for one keeps it open until its answer: every answer runs this).
  void CloseIdle() {
    const std::vector<uint64_t> ended(closing.begin(), closing.end());
    for (uint64_t serial : ended)
      if (Idle(serial)) Drop(serial);  // also leaves `closing`
  }

  void Housekeep(Micros now) {
    next_housekeeping = now + Seconds(opts.housekeeping_s);
    CloseIdle();
    // And any other open file nothing uses (one a late reader opened).
    std::vector<uint64_t> open;
    {
      std::lock_guard<std::mutex> l(mu);
      for (const auto& [serial, slot] : fetchers) open.push_back(serial);
    }
    for (uint64_t serial : open)
      if (Idle(serial)) Drop(serial);
    // The spool keeps the spool_keep serials written last.
    RetentionPlan plan = PlanRetention(ListSpool(opts.spool), opts.spool_keep);
    for (uint64_t serial : plan.old_serials) {
      if (!Idle(serial) || !core->Forget(serial)) continue;
      Drop(serial);
      ::unlink(SpoolPath(serial).c_str());
      ::unlink((SpoolPath(serial) + ".part").c_str());
      ::unlink((SpoolPath(serial) + ".to").c_str());
    }
    for (const auto& part : plan.stale_parts) {
      uint64_t serial = std::strtoull(fs::path(part).filename().c_str(), nullptr, 10);
      if (Idle(serial)) ::unlink(part.c_str());
    }
    WriteMetrics(true);
  }

  void WriteMetrics(bool up) {
    if (opts.metrics.empty()) return;
    if (Status st = metrics.Write(opts.metrics, up); !st.ok()) log::Warn(opts.name + ": metrics: " + st.message());
  }

  void Note(const push::LogNote& n) {
    switch (n.level) {
      case push::LogNote::Level::kDebug:
        if (opts.verbose) log::Warn(n.text);
        return;
      case push::LogNote::Level::kInfo: return log::Info(n.text);
      case push::LogNote::Level::kWarn: return log::Warn(n.text);
      case push::LogNote::Level::kError: return log::Error(n.text);
    }
  }

  template <typename Event>
  push::Reply Handle(uint64_t serial, Event ev) {
    if (stopping) return {503, push::EncodeError("stopping")};
    auto reply = loop->Run([&] {
      if (!core) return push::Reply{503, push::EncodeError("starting")};
      Tell(serial);
      push::Reply r = ev();
      Run();
      return r;
    });
    if (reply.body.empty()) return {503, push::EncodeError("stopping")};
    return reply;
  }

  // ---- fetch attempts -------------------------------------------------------

  void StartFetch(const push::StartFetch& f) {
    FetchSlot& slot = fetch_slots[f.serial];
    if (slot.running) {
      *slot.cancel = true;
      slot.next = f;
      return;
    }
    if (slot.thread.joinable()) slot.thread.join();  // ended: its end was posted
    slot.running = true;
    slot.cancel = std::make_shared<std::atomic<bool>>(false);
    slot.thread = std::thread([this, f, cancel = slot.cancel] { FetchAttempt(f, cancel); });
  }

  void StopFetch(uint64_t serial) {
    auto it = fetch_slots.find(serial);
    if (it == fetch_slots.end()) return;
    it->second.next.reset();
    if (it->second.cancel) *it->second.cancel = true;
  }

  // On its own thread: one attempt, progress posted (throttled), its end posted.
  void FetchAttempt(const push::StartFetch& f, const CancelFlag& cancel) {
    auto fetcher = FetcherFor(f.serial);
    Micros last = 0;
    bool table_known = fetcher->held() != nullptr;
    auto progress = [&] {
      Micros now = SteadyNow();
      bool known = fetcher->held() != nullptr;
      if (now - last < kFetchUpdateEvery && known == table_known && !fetcher->complete()) return;
      last = now;
      table_known = known;
      loop->Post([this, u = Snapshot(f.serial, f.attempt)] { Event(u); });
    };
    const uint64_t verified_before = fetcher->verified();
    push::FetchFault fault = push::FetchFault::kNone;
    Status st = fetcher->FetchFrom(f.source_url, cancel.get(), progress, &fault);
    push::FetchUpdate u = Snapshot(f.serial, f.attempt);
    u.ended = true;
    metrics.Fetched(u.verified > verified_before ? u.verified - verified_before : 0);
    if (!u.complete) {
      u.error = st.ok() ? "cancelled" : st.message();
      u.fault = st.ok() || *cancel ? push::FetchFault::kNone : fault;
      if (u.fault == push::FetchFault::kSource) metrics.SourceFailure();
    }
    fetcher.reset();  // before the end is posted: the loop may close the file then
    loop->Post([this, u] { FetchEnded(u); });
  }

  void Event(const push::FetchUpdate& u) {
    core->OnFetchUpdate(SteadyNow(), u, &actions);
    Run();
  }

  void FetchEnded(const push::FetchUpdate& u) {
    if (stopping) return;
    FetchSlot& slot = fetch_slots[u.serial];
    slot.running = false;
    if (slot.thread.joinable()) slot.thread.join();  // it posted this as its last act
    Event(u);
    if (slot.next) {
      push::StartFetch next = *slot.next;
      slot.next.reset();
      StartFetch(next);
    } else if (!slot.running) {
      fetch_slots.erase(u.serial);
    }
  }

  // ---- children -------------------------------------------------------------

  void StartChild(const push::StartChild& c) {
    ChildSlot& slot = child_slots[c.id];
    slot.cancel = std::make_shared<std::atomic<bool>>(false);
    slot.thread = std::thread([this, c, cancel = slot.cancel] {
      push::ChildDone d = RunChild(c, cancel.get());
      d.id = c.id;
      loop->Post([this, d] { ChildEnded(d); });
    });
  }

  void ChildEnded(push::ChildDone d) {
    if (stopping) return;
    if (auto it = child_slots.find(d.id); it != child_slots.end()) {
      d.cancelled = it->second.cancelled_by_core;
      if (it->second.thread.joinable()) it->second.thread.join();
      child_slots.erase(it);
    }
    core->OnChildDone(SteadyNow(), d, &actions);
    Run();
  }

  push::ChildDone RunChild(const push::StartChild& c, std::atomic<bool>* cancel) {
    RelayChildEnv env{&opts, [this](uint64_t serial) { return SpoolPath(serial); },
                      [this](uint64_t serial) { return FetcherFor(serial); }, &stopping};
    return RunRelayChild(env, c, cancel);
  }

  // ---- HTTP -----------------------------------------------------------------

  // A refused request: one log line and a one-line answer that says why.
  http::Response Refuse(int status, const std::string& reason, const std::string& text, const http::Request& req,
                        bool duplicate = false) {
    metrics.Refusal(reason);
    log::Warn(opts.name + ": refused " + req.method + " " + req.path() + " from " + req.peer_ip + ": " + text);
    return ToResponse({status, duplicate ? push::EncodeDuplicate(text) : push::EncodeError(text)});
  }

  http::Response Refuse(push::auth::Verdict v, const http::Request& req, bool order) {
    namespace auth = push::auth;
    std::string text = auth::VerdictText(v);
    const std::string* header = req.header(auth::kHeaderLower);
    auto stamp = header ? auth::Parse(*header) : Result<auth::Stamp>(Error(Code::kCorrupt, "none"));
    switch (v) {
      case auth::Verdict::kWrongRecipient:
        if (stamp.ok())
          text = "forbidden: this relay is '" + opts.name + "', the " + (order ? "order" : "report") + " is for '" +
                 stamp->to + "'";
        break;
      case auth::Verdict::kBadTag:
        text += order ? " with this relay's CCM key (" + opts.pub_key + ")"
                      : " with this relay's group key (" + opts.group_key + ")";
        break;
      case auth::Verdict::kExpired:
      case auth::Verdict::kTooFarAhead:
        if (stamp.ok())
          text += " (exp " + std::to_string(stamp->exp) + ", this relay's clock " + std::to_string(WallSeconds()) +
                  ")";
        break;
      default: break;
    }
    return Refuse(auth::VerdictStatus(v), VerdictReason(v), text, req, v == auth::Verdict::kReplayed);
  }

  http::Response Handle(const http::Request& req) {
    std::string path = req.path();
    if (opts.extra_handler) {
      http::Response extra;
      if (opts.extra_handler(req, &extra)) return extra;
    }
    if ((req.method == "GET" || req.method == "HEAD") && path.rfind("/v1/content/", 0) == 0)
      return Content(path.substr(12));
    if (req.method == "GET" && path == "/v1/status") return StatusJson(req);
    if (req.method == "GET" && path.rfind("/v1/targets/", 0) == 0) return Targets(path.substr(12));
    if (req.method != "POST") return JsonError(404, "no such resource: " + req.method + " " + path);
    if (path == "/v1/fetch") {
      if (auto v = auth->CheckOrder(req); v != push::auth::Verdict::kOk) return Refuse(v, req, true);
      auto o = push::ParseFetchOrder(req.body);
      if (!o.ok()) return Refuse(400, "bad_body", o.status().message(), req);
      if (o->relay != opts.name)
        return Refuse(403, "wrong_relay", "forbidden: this relay is '" + opts.name + "', the order is for '" +
                                              o->relay + "'", req);
      metrics.Serial(o->serial);
      WriteTargets(*o);
      return ToResponse(Handle(o->serial, [&] { return core->OnFetchOrder(SteadyNow(), *o, &actions); }));
    }
    if (path == "/v1/expect") {
      if (auto v = auth->CheckOrder(req); v != push::auth::Verdict::kOk) return Refuse(v, req, true);
      auto e = push::ParseExpect(req.body);
      if (!e.ok()) return Refuse(400, "bad_body", e.status().message(), req);
      if (e->name != opts.name)
        return Refuse(403, "wrong_relay", "forbidden: this relay is '" + opts.name + "', the order is for '" +
                                              e->name + "'", req);
      metrics.Serial(e->serial);
      // A hint outside the seal: the leader's multicast is over (it can only
      // make us fetch from the leader the CCM named, over HTTP).
      const bool unicast = QueryParam(req.target, "unicast") == "1";
      return ToResponse(Handle(e->serial, [&] { return core->OnExpect(SteadyNow(), *e, &actions, unicast); }));
    }
    if (path == "/v1/member-report") {
      std::string from;
      if (auto v = auth->CheckReport(req, &from); v != push::auth::Verdict::kOk) return Refuse(v, req, false);
      auto r = push::ParseMemberReport(req.body);
      if (!r.ok()) return Refuse(400, "bad_body", r.status().message(), req);
      if (r->result.name != from)
        return Refuse(403, "wrong_sender", "forbidden: " + from + " reports for " + r->result.name, req);
      return ToResponse(Handle(r->serial, [&] { return core->OnMemberReport(SteadyNow(), *r, &actions); }));
    }
    return JsonError(404, "no such resource: POST " + path);
  }

  // <serial>.cma.to beside the spool file: the servers of this site the
  // CCM's order targets (this relay first, then its members), one name a
  // line. cm-leader's SAM edge reads it (here, or from a peer through GET
  // /v1/targets/<serial>) before it applies a serial it repaired from a peer,
  // so ordered delivery never widens a push the CCM restricted (--only, a
  // catch-up for some servers). Orders are authenticated (CM-Auth) before.
  void WriteTargets(const push::FetchOrder& o) {
    std::string names = o.relay + "\n";
    for (const push::Member& m : o.members) names += m.name + "\n";
    const std::string path = SpoolPath(o.serial) + ".to";
    if (auto old = ReadFileToString(path); old.ok() && *old == names) return;
    if (Status st = WriteFileAtomic(path, names); !st.ok()) log::Warn(opts.name + ": targets: " + st.message());
  }

  http::Response Targets(const std::string& id) {
    const uint64_t serial = std::strtoull(id.c_str(), nullptr, 10);
    auto names = serial ? ReadFileToString(SpoolPath(serial) + ".to") : Result<std::string>(Error(Code::kNotFound, ""));
    if (!names.ok()) return JsonError(404, "no targets for serial " + id + " here");
    http::Response r;
    r.content_type = "text/plain";
    r.body = *names;
    return r;
  }

  http::Response Content(const std::string& id) {
    uint64_t serial = std::strtoull(id.c_str(), nullptr, 10);
    std::shared_ptr<Fetcher> f;
    if (PeekFetcher(serial)) f = FetcherFor(serial);
    // Complete from an earlier run or a part that ended: checked again, and
    // closed by the next housekeeping once the reader has its handle.
    if (!f && serial > 0 && fs::exists(SpoolPath(serial))) f = FetcherFor(serial);
    std::shared_ptr<push::HeldContent> held = f ? f->held() : nullptr;
    if (!held) return JsonError(404, "serial " + id + " not held here");
    http::Response r;
    r.content_type = "application/octet-stream";
    r.stream = MakeContentBody(held, metrics.served());
    return r;
  }

  // GET /v1/status[?nonce=HEX]: the transfers, the site's elected leader
  // (cm-leader's state file) and, with a nonce, the nonce echoed and a
  // CM-Auth stamp over the body for the CCM.
  http::Response StatusJson(const http::Request& req) {
    const std::string nonce = QueryParam(req.target, "nonce");
    if (req.target.find("nonce=") != std::string::npos && !push::IsStatusNonce(nonce))
      return JsonError(400, "bad nonce: 16 to 64 hex digits");
    auto views = loop->Run([&] { return core ? core->View() : std::vector<push::TransferView>{}; });
    push::RelayStatus st;
    st.name = opts.name;
    st.transfers = push::StatusOf(views);
    for (auto& t : st.transfers) {
      if (auto f = PeekFetcher(t.serial); f && (f->held() || f->complete())) {
        t.verified = f->verified();
        t.size = f->size();
        t.complete = f->complete();
      }
    }
    st.site_leader = ReadLeaderState(opts.leader_state);
    st.nonce = nonce;
    if (QueryParam(req.target, "live") == "1" && live_probe) st.live = live_probe->Get();
    http::Response resp = ToResponse({200, push::Encode(st)});
    if (!nonce.empty()) {
      std::string stamp = auth->StampAnswer(push::auth::kCcmName, "/v1/status", resp.body);
      if (!stamp.empty()) resp.headers.push_back({push::auth::kHeader, std::move(stamp)});
    }
    return resp;
  }

  // ---- stop -----------------------------------------------------------------

  void Stop() {
    if (stopping.exchange(true)) return;
    if (server) server->Stop();
    std::vector<std::thread> threads;
    loop->Run([&] {
      for (auto& [s, slot] : fetch_slots) {
        if (slot.cancel) *slot.cancel = true;
        if (slot.thread.joinable()) threads.push_back(std::move(slot.thread));
      }
      for (auto& [id, slot] : child_slots) {
        *slot.cancel = true;
        if (slot.thread.joinable()) threads.push_back(std::move(slot.thread));
      }
      fetch_slots.clear();
      child_slots.clear();
      return 0;
    });
    runner->Stop();
    loop->Stop();
    for (auto& t : threads) t.join();
    WriteMetrics(false);
  }
};

Result<std::unique_ptr<Relay>> Relay::Start(const RelayOptions& opts) {
  if (opts.pub_key.empty())
    return Error(Code::kUsage, "no CCM public key (--pub-key): orders and assignments are checked with it");
  if (opts.group_key.empty())
    return Error(Code::kUsage, "no group key (--group-key): reports are authenticated with it");
  auto pub = pack::LoadPublicKey(opts.pub_key);
  if (!pub.ok()) return pub.status();
  auto group = LoadGroupKey(opts.group_key);
  if (!group.ok()) return group.status();
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  impl->auth = std::make_unique<AuthEdge>(opts.name, std::nullopt, *pub, *group);
  if (!opts.root.empty()) impl->live_probe = std::make_unique<LiveTreeProbe>(opts.cm_apply, opts.root);
  if (opts.spool_keep < 1) return Error(Code::kUsage, "spool_keep must be at least 1");
  std::error_code ec;
  if (fs::create_directories(opts.spool, ec)) ::chmod(opts.spool.c_str(), 0700);  // ours alone
  if (ec) return Error(Code::kIo, opts.spool + ": " + ec.message());
  fs::remove_all(opts.spool + "/site", ec);  // growing copies of an earlier run's multicasts
  Impl* raw = impl.get();
  raw->loop = std::make_unique<EdgeLoop>([raw](Micros now) {
    raw->core->OnTimer(now, &raw->actions);
    if (now >= raw->next_housekeeping) raw->Housekeep(now);
    raw->Run();
  });
  raw->runner = std::make_unique<CallRunner>(raw->loop.get(), [raw](const push::CallResult& r) {
    raw->core->OnCallDone(SteadyNow(), r, &raw->actions);
    raw->Run();
  }, 8, raw->auth.get());
  http::ServerOptions so;
  so.listen = opts.listen;
  so.body_limit = [](const std::string&, const std::string& path) -> uint64_t {
    if (path == "/v1/job-offer") return 16 << 20;  // a job object lists every server of the job
    return path == "/v1/fetch" ? 1 << 20 : 64 << 10;  // a fetch order lists the site's members
  };
  auto server = http::Server::Start(so, [raw](const http::Request& req) { return raw->Handle(req); });
  if (!server.ok()) {
    raw->runner->Stop();
    raw->loop->Stop();
    return server.status();
  }
  std::string host = opts.listen.substr(0, opts.listen.rfind(':'));
  impl->url = !opts.url.empty() ? opts.url : "http://" + host + ":" + std::to_string((*server)->port());
  // The core exists before the first request can reach it: the server's
  // handlers wait for the loop, which runs nothing before this.
  raw->loop->Run([raw] {
    raw->core = std::make_unique<push::RelayCore>(CoreOptions(raw->opts, raw->url));
    raw->Housekeep(SteadyNow());
    raw->loop->SetTimer(raw->next_housekeeping);
    return 0;
  });
  impl->server = std::move(*server);
  return std::unique_ptr<Relay>(new Relay(std::move(impl)));
}

Relay::Relay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Relay::~Relay() { Stop(); }
std::string Relay::url() const { return impl_->url; }
void Relay::Stop() { impl_->Stop(); }

}  // namespace cm::pushrun
