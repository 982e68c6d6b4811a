#include "pushrun/relay.h"

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "http/client.h"
#include "http/server.h"
#include "pushrun/content_body.h"
#include "pushrun/fetch.h"
#include "pushrun/messages.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::pushrun {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

constexpr milliseconds kCallTimeout{5000};
constexpr milliseconds kProgressEvery{500};

http::Response Json(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}
http::Response JsonError(int status, const std::string& msg) {
  return Json(status, JsonObject().Str("error", msg).Build());
}

// POSTs `body` to base+path, retrying on connection errors `tries` times.
Result<JsonValue> Post(const std::string& base, const std::string& path, const std::string& body, int tries = 1,
                       milliseconds timeout = kCallTimeout) {
  Status last;
  for (int i = 0; i < tries; ++i) {
    if (i) std::this_thread::sleep_for(milliseconds(300 * i));
    auto r = http::Call("POST", base + path, body, timeout);
    if (!r.ok()) {
      last = r.status();
      continue;
    }
    if (r->status / 100 != 2) {
      auto v = ParseJson(r->body);
      std::string why = v.ok() ? v->Str("error") : r->body;
      return Error(Code::kFailure, base + path + ": HTTP " + std::to_string(r->status) + ": " + why);
    }
    auto v = ParseJson(r->body.empty() ? "{}" : r->body);
    if (!v.ok()) return Error(Code::kCorrupt, base + path + ": " + v.status().message());
    return v;
  }
  return last;
}

}  // namespace

// One assignment this relay handles, as a leader (order) or member (expect).
struct Transfer {
  uint64_t serial = 0;
  std::mutex mu;
  std::condition_variable cv;
  FetchOrder order;                 // leader role (serial 0 = not a leader for it)
  std::optional<Expect> expect;     // member role
  std::string source, source_name;  // current source (leader role)
  std::atomic<bool> switch_source{false};
  std::unique_ptr<Fetcher> fetcher;
  bool leader_started = false, member_started = false, none_left = false;
  std::map<std::string, ServerResult> results;  // members' (and our own) results
  std::string state = "new";                     // for /v1/status
  std::vector<std::thread> threads;
};

struct Relay::Impl {
  RelayOptions opts;
  std::string url;
  std::unique_ptr<http::Server> server;
  std::mutex mu;
  std::map<uint64_t, std::shared_ptr<Transfer>> transfers;
  std::atomic<bool> stopping{false};

  std::string SpoolPath(uint64_t serial) const { return opts.spool + "/" + std::to_string(serial) + ".cma"; }

  std::shared_ptr<Transfer> Get(uint64_t serial, bool create) {
    std::lock_guard<std::mutex> l(mu);
    auto it = transfers.find(serial);
    if (it != transfers.end()) return it->second;
    if (!create) return nullptr;
    auto t = std::make_shared<Transfer>();
    t->serial = serial;
    FetchTarget ft;
    ft.serial = serial;
    ft.path = SpoolPath(serial);
    ft.pub_key = opts.pub_key;
    ft.idle_timeout_s = opts.idle_timeout_s;
    t->fetcher = std::make_unique<Fetcher>(ft);
    t->fetcher->OpenExisting();
    transfers[serial] = t;
    return t;
  }

  void Spawn(const std::shared_ptr<Transfer>& t, std::function<void()> fn) {
    std::lock_guard<std::mutex> l(t->mu);
    t->threads.emplace_back(std::move(fn));
  }

  // ---- HTTP ---------------------------------------------------------------

  http::Response Handle(const http::Request& req) {
    std::string path = req.target.substr(0, req.target.find('?'));
    if ((req.method == "GET" || req.method == "HEAD") && path.rfind("/v1/content/", 0) == 0)
      return Content(path.substr(12));
    if (req.method == "GET" && path == "/v1/status") return StatusJson();
    if (req.method != "POST") return JsonError(404, "no such resource: " + req.method + " " + path);
    if (path == "/v1/fetch") return OnFetch(req.body);
    if (path == "/v1/expect") return OnExpect(req.body);
    if (path == "/v1/member-report") return OnMemberReport(req.body);
    return JsonError(404, "no such resource: POST " + path);
  }

  http::Response Content(const std::string& id) {
    uint64_t serial = std::strtoull(id.c_str(), nullptr, 10);
    auto t = Get(serial, false);
    std::shared_ptr<push::HeldContent> held;
    if (t) held = t->fetcher->held();
    if (!held && serial > 0 && fs::exists(SpoolPath(serial))) {
      // A complete file from an earlier run.
      t = Get(serial, true);
      held = t->fetcher->held();
    }
    if (!held) return JsonError(404, "serial " + id + " not held here");
    http::Response r;
    r.content_type = "application/octet-stream";
    r.stream = MakeContentBody(held);
    return r;
  }

  http::Response StatusJson() {
    JsonArray arr;
    std::lock_guard<std::mutex> l(mu);
    for (auto& [serial, t] : transfers) {
      std::lock_guard<std::mutex> tl(t->mu);
      arr.Raw(JsonObject()
                  .Uint("serial", serial)
                  .Str("state", t->state)
                  .Uint("verified", t->fetcher->verified())
                  .Uint("size", t->fetcher->size())
                  .Bool("complete", t->fetcher->complete())
                  .Str("source", t->source)
                  .Build());
    }
    return Json(200, JsonObject().Str("name", opts.name).Raw("transfers", arr.Build()).Build());
  }

  http::Response OnFetch(const std::string& body) {
    auto o = ParseFetchOrder(body);
    if (!o.ok()) return JsonError(400, o.status().message());
    auto t = Get(o->serial, true);
    bool start = false;
    {
      std::lock_guard<std::mutex> l(t->mu);
      if (t->leader_started && t->source != o->source) t->switch_source = true;
      t->order = *o;
      t->source = o->source;
      t->source_name = o->source_name;
      start = !t->leader_started;
      t->leader_started = true;
      if (start) t->state = "fetching";
    }
    if (start) Spawn(t, [this, t] { LeaderRun(t); });
    return Json(200, JsonObject()
                         .Bool("ok", true)
                         .Uint("verified", t->fetcher->verified())
                         .Bool("complete", t->fetcher->complete())
                         .Build());
  }

  http::Response OnExpect(const std::string& body) {
    auto e = ParseExpect(body);
    if (!e.ok()) return JsonError(400, e.status().message());
    auto t = Get(e->serial, true);
    bool start = false;
    {
      std::lock_guard<std::mutex> l(t->mu);
      t->expect = *e;
      start = !t->member_started;
      t->member_started = true;
      if (start) t->state = "receiving";
    }
    if (start) Spawn(t, [this, t] { MemberRun(t); });
    return Json(200, JsonObject().Bool("ok", true).Build());
  }

  http::Response OnMemberReport(const std::string& body) {
    auto r = ParseMemberReport(body);
    if (!r.ok()) return JsonError(400, r.status().message());
    auto t = Get(r->serial, false);
    if (!t) return JsonError(404, "no transfer " + std::to_string(r->serial));
    {
      std::lock_guard<std::mutex> l(t->mu);
      t->results[r->result.name] = r->result;
    }
    t->cv.notify_all();
    return Json(200, JsonObject().Bool("ok", true).Build());
  }

  // ---- leader role ---------------------------------------------------------

  // Fetches from the current source until complete; on a failed source asks
  // the CCM for another one and resumes from the verified watermark.
  Status FetchAsLeader(const std::shared_ptr<Transfer>& t) {
    std::string ccm;
    {
      std::lock_guard<std::mutex> l(t->mu);
      ccm = t->order.ccm;
    }
    Clock::time_point last_report{};
    auto progress = [&] {
      if (Clock::now() - last_report < kProgressEvery) return;
      last_report = Clock::now();
      ReportProgress(t, false);
    };
    int failures = 0;
    while (!stopping && !t->fetcher->complete()) {
      std::string src;
      {
        std::lock_guard<std::mutex> l(t->mu);
        src = t->source;
        t->switch_source = false;
      }
      Status st = t->fetcher->FetchFrom(src, &t->switch_source, progress);
      if (t->fetcher->complete()) break;
      if (stopping) return Error(Code::kFailure, "stopped");
      if (t->switch_source) continue;  // a new order moved us; resume from the watermark
      log::Warn(opts.name + ": serial " + std::to_string(t->serial) + ": source " + src + ": " + st.message());
      if (++failures > 30) return Error(Code::kFailure, "gave up after 30 failed sources: " + st.message());
      // Ask the CCM for a source further ahead.
      std::string src_name;
      {
        std::lock_guard<std::mutex> l(t->mu);
        src_name = t->source_name;
      }
      auto ans = Post(ccm, "/v1/source-failed",
                      JsonObject()
                          .Uint("serial", t->serial)
                          .Str("relay", opts.name)
                          .Str("source", src_name)
                          .Str("source_url", src)
                          .Uint("verified", t->fetcher->verified())
                          .Str("error", st.message())
                          .Build(),
                      3);
      if (ans.ok() && !ans->Str("source").empty()) {
        std::lock_guard<std::mutex> l(t->mu);
        t->source = ans->Str("source");
        t->source_name = ans->Str("source_name");
      } else {
        std::this_thread::sleep_for(milliseconds(500));
      }
    }
    return t->fetcher->complete() ? Status::Ok() : Error(Code::kFailure, "stopped");
  }

  void ReportProgress(const std::shared_ptr<Transfer>& t, bool complete) {
    std::string ccm;
    {
      std::lock_guard<std::mutex> l(t->mu);
      ccm = t->order.ccm;
    }
    auto r = Post(ccm, "/v1/progress",
                  JsonObject()
                      .Uint("serial", t->serial)
                      .Str("relay", opts.name)
                      .Uint("verified", t->fetcher->verified())
                      .Uint("size", t->fetcher->size())
                      .Bool("complete", complete)
                      .Build(),
                  complete ? 5 : 1, milliseconds(2000));
    if (!r.ok() && opts.verbose) log::Warn("progress to CCM: " + r.status().message());
  }

  // Asks the CCM whom to serve next until it answers "none left".
  void ServeLoop(const std::shared_ptr<Transfer>& t) {
    FetchOrder order;
    {
      std::lock_guard<std::mutex> l(t->mu);
      order = t->order;
    }
    if (!order.serve) return;
    while (!stopping) {
      if (t->fetcher->held() == nullptr || t->fetcher->verified() == 0) {
        std::this_thread::sleep_for(milliseconds(50));
        continue;
      }
      auto ans = Post(order.ccm, "/v1/next",
                      JsonObject()
                          .Uint("serial", t->serial)
                          .Str("relay", opts.name)
                          .Uint("verified", t->fetcher->verified())
                          .Bool("complete", t->fetcher->complete())
                          .Build(),
                      2);
      if (!ans.ok()) {
        std::this_thread::sleep_for(milliseconds(500));
        continue;
      }
      if (ans->Bool("none_left")) {
        std::lock_guard<std::mutex> l(t->mu);
        t->none_left = true;
        return;
      }
      const JsonValue& next = (*ans)["next"];
      if (next.is_object()) {
        // Tell the next leader to fetch from us; the CCM wrote its order.
        std::string to_url = next.Str("url"), to = next.Str("relay");
        auto parsed = FetchOrderFromJson(next["order"]);
        if (!parsed.ok()) {
          log::Warn(opts.name + ": bad next order from the CCM: " + parsed.status().message());
          std::this_thread::sleep_for(milliseconds(500));
          continue;
        }
        FetchOrder child = *parsed;
        child.source = url;
        child.source_name = opts.name;
        auto r = Post(to_url, "/v1/fetch", Encode(child), 2);
        if (!r.ok()) {
          Post(order.ccm, "/v1/notify-failed",
               JsonObject()
                   .Uint("serial", t->serial)
                   .Str("from", opts.name)
                   .Str("to", to)
                   .Str("error", r.status().message())
                   .Build(),
               2);
        }
        continue;
      }
      int64_t ms = ans->Int("retry_ms", 500);
      std::this_thread::sleep_for(milliseconds(std::clamp<int64_t>(ms, 20, 5000)));
    }
  }

  ServerResult ApplyHere(const std::string& file, const std::string& kind, const std::string& via) {
    ServerResult r;
    r.name = opts.name;
    r.via = via;
    if (opts.root.empty()) {
      r.state = kind == "commit" ? "committed" : "staged";
      return r;
    }
    std::vector<std::string> argv{opts.cm_apply, file, "--root", opts.root, "-q"};
    if (!opts.pub_key.empty()) {
      argv.push_back("--pub-key");
      argv.push_back(opts.pub_key);
    }
    ProcessOptions po;
    po.timeout = std::chrono::minutes(30);
    auto res = RunProcess(argv, po);
    if (!res.ok()) {
      r.state = "failed";
      r.error = "cm-apply: " + res.status().message();
    } else if (res->exit_code != 0) {
      r.state = "failed";
      std::string line = LastLine(res->err);
      r.error = line.empty() ? "cm-apply exit " + std::to_string(res->exit_code) : line;
    } else {
      r.state = kind == "commit" ? "committed" : "staged";
    }
    return r;
  }

  void LeaderRun(const std::shared_ptr<Transfer>& t) {
    std::thread serve([this, t] { ServeLoop(t); });
    Status st = FetchAsLeader(t);
    FetchOrder order;
    {
      std::lock_guard<std::mutex> l(t->mu);
      order = t->order;
      t->state = st.ok() ? "complete" : "failed";
    }
    if (st.ok()) ReportProgress(t, true);
    if (!st.ok()) {
      // Our own failure: the CCM will notice (no progress, no report).
      log::Error(opts.name + ": serial " + std::to_string(t->serial) + ": " + st.message());
      serve.join();
      return;
    }
    SiteReport rep = SitePhase(t, order);
    Post(order.ccm, "/v1/site-report", Encode(rep), 10);
    {
      std::lock_guard<std::mutex> l(t->mu);
      t->state = "reported";
    }
    serve.join();
  }

  // Stage here, hand the file to the members, collect their results.
  SiteReport SitePhase(const std::shared_ptr<Transfer>& t, const FetchOrder& order) {
    const std::string file = SpoolPath(t->serial);
    SiteReport rep;
    rep.serial = t->serial;
    rep.site = order.site;
    rep.leader = opts.name;
    std::vector<std::string> receivers;
    std::map<std::string, ServerResult> unreachable;
    for (const auto& m : order.members) {
      Expect e;
      e.serial = t->serial;
      e.job = order.job;
      e.kind = order.kind;
      e.size = t->fetcher->size();
      e.name = m.name;
      e.leader = opts.name;
      e.leader_url = url;
      e.group = order.group;
      auto r = Post(m.url, "/v1/expect", Encode(e), 3, milliseconds(3000));
      if (r.ok()) {
        receivers.push_back(m.name);
      } else {
        unreachable[m.name] = ServerResult{m.name, "failed", "unreachable: " + r.status().message(), ""};
      }
    }
    // Our own copy is staged while the multicast runs.
    ServerResult own;
    std::thread self([&] { own = ApplyHere(file, order.kind, "leader"); });
    if (!receivers.empty() && !order.group.empty()) {
      std::vector<std::string> argv{opts.cm_mcast, "send", file, "--group", order.group, "--id", opts.name, "-q"};
      if (!Iface().empty()) {
        argv.push_back("--iface");
        argv.push_back(Iface());
      }
      if (!opts.mcast_rate.empty()) {
        argv.push_back("--rate");
        argv.push_back(opts.mcast_rate);
      }
      if (!opts.group_key.empty()) {
        argv.push_back("--key");
        argv.push_back(opts.group_key);
      }
      argv.push_back("--receivers");
      for (const auto& r : receivers) argv.push_back(r);
      ProcessOptions po;
      po.timeout = milliseconds(static_cast<int64_t>(opts.member_wait_s * 1000));
      po.cancel = &stopping;
      auto res = RunProcess(argv, po);
      if (!res.ok() || (res->exit_code != 0 && opts.verbose))
        log::Warn(opts.name + ": cm-mcast send: " +
                  (res.ok() ? LastLine(res->err) + " (exit " + std::to_string(res->exit_code) + ")"
                            : res.status().message()));
    }
    // Members report when they have applied (multicast or, failing that, HTTP).
    auto deadline = Clock::now() + milliseconds(static_cast<int64_t>(opts.member_wait_s * 1000));
    {
      std::unique_lock<std::mutex> l(t->mu);
      t->cv.wait_until(l, deadline, [&] {
        for (const auto& r : receivers)
          if (!t->results.count(r)) return false;
        return true;
      });
      for (const auto& r : receivers) {
        auto it = t->results.find(r);
        rep.servers.push_back(it != t->results.end() ? it->second
                                                     : ServerResult{r, "failed", "no report from the member", ""});
      }
    }
    self.join();
    rep.servers.push_back(own);
    for (auto& [name, r] : unreachable) rep.servers.push_back(r);
    return rep;
  }

  std::string Iface() const {
    if (!opts.iface.empty()) return opts.iface;
    std::string host = opts.listen.substr(0, opts.listen.rfind(':'));
    return host == "0.0.0.0" ? "" : host;
  }

  // ---- member role ---------------------------------------------------------

  void MemberRun(const std::shared_ptr<Transfer>& t) {
    Expect e;
    {
      std::lock_guard<std::mutex> l(t->mu);
      e = *t->expect;
    }
    const std::string file = SpoolPath(t->serial);
    std::string via = "multicast";
    if (!t->fetcher->complete() && !e.group.empty()) {
      std::vector<std::string> argv{opts.cm_mcast, "recv",   "--group", e.group, "--id", opts.name,
                                    "-o",          opts.spool, "--timeout", "15", "-q"};
      if (!Iface().empty()) {
        argv.push_back("--iface");
        argv.push_back(Iface());
      }
      if (!opts.group_key.empty()) {
        argv.push_back("--key");
        argv.push_back(opts.group_key);
      }
      ProcessOptions po;
      po.timeout = milliseconds(static_cast<int64_t>(opts.member_wait_s * 1000));
      po.cancel = &stopping;
      auto res = RunProcess(argv, po);
      if (!res.ok() || res->exit_code != 0)
        log::Warn(opts.name + ": multicast receive failed (" +
                  (res.ok() ? LastLine(res->err) : res.status().message()) + "); fetching from the leader");
      t->fetcher->OpenExisting();
    }
    Status st = Status::Ok();
    if (!t->fetcher->complete()) {
      via = "unicast";
      for (int i = 0; i < 5 && !stopping && !t->fetcher->complete(); ++i) {
        st = t->fetcher->FetchFrom(e.leader_url, nullptr);
        if (!t->fetcher->complete()) std::this_thread::sleep_for(milliseconds(500 * (i + 1)));
      }
    }
    ServerResult r;
    if (!t->fetcher->complete()) {
      r = ServerResult{opts.name, "failed", "could not receive: " + st.message(), via};
    } else {
      r = ApplyHere(file, e.kind, via);
    }
    {
      std::lock_guard<std::mutex> l(t->mu);
      t->state = r.state;
    }
    MemberReport rep{t->serial, r};
    auto p = Post(e.leader_url, "/v1/member-report", Encode(rep), 10);
    if (!p.ok()) log::Warn(opts.name + ": report to leader: " + p.status().message());
  }
};

Result<std::unique_ptr<Relay>> Relay::Start(const RelayOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  std::error_code ec;
  fs::create_directories(opts.spool, ec);
  if (ec) return Error(Code::kIo, opts.spool + ": " + ec.message());
  http::ServerOptions so;
  so.listen = opts.listen;
  Impl* raw = impl.get();
  auto server = http::Server::Start(so, [raw](const http::Request& req) { return raw->Handle(req); });
  if (!server.ok()) return server.status();
  impl->server = std::move(*server);
  std::string host = opts.listen.substr(0, opts.listen.rfind(':'));
  impl->url = !opts.url.empty() ? opts.url : "http://" + host + ":" + std::to_string(impl->server->port());
  return std::unique_ptr<Relay>(new Relay(std::move(impl)));
}

Relay::Relay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Relay::~Relay() { Stop(); }
std::string Relay::url() const { return impl_->url; }

void Relay::Stop() {
  if (impl_->stopping.exchange(true)) return;
  if (impl_->server) impl_->server->Stop();
  std::map<uint64_t, std::shared_ptr<Transfer>> all;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    all = impl_->transfers;
  }
  for (auto& [s, t] : all) {
    t->switch_source = true;
    t->cv.notify_all();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> l(t->mu);
      threads.swap(t->threads);
    }
    for (auto& th : threads)
      if (th.joinable()) th.join();
  }
}

}  // namespace cm::pushrun
