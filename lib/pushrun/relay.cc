#include "pushrun/relay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "http/client.h"
#include "http/server.h"
#include "pushrun/content_body.h"
#include "pushrun/fetch.h"
#include "push/messages.h"
#include "util/file_util.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::pushrun {

using push::Encode;
using push::Expect;
using push::FetchOrder;
using push::Member;
using push::MemberReport;
using push::ServerResult;
using push::ServerState;
using push::SiteReport;
using push::TransferKind;
using push::Via;

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
  bool fetch_done = false, fetch_ok = false;  // leader role: our own fetch ended (how)
  std::atomic<bool> site_cancel{false};       // stops the site phase's multicast
  // Member role: each /v1/expect bumps expect_gen; one from another leader
  // (the site's leader was replaced) or our own promotion to leader cancels
  // the receive in progress. member_done: what we applied, reported again to
  // a new leader without receiving again.
  uint64_t expect_gen = 0;
  std::atomic<bool> member_cancel{false};
  std::optional<ServerResult> member_done;
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
    auto o = push::ParseFetchOrder(body);
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
      if (start && t->member_started) t->member_cancel = true;  // we lead the site now
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
    auto e = push::ParseExpect(body);
    if (!e.ok()) return JsonError(400, e.status().message());
    auto t = Get(e->serial, true);
    bool start = false;
    {
      std::lock_guard<std::mutex> l(t->mu);
      if (t->expect && t->expect->leader != e->leader) t->member_cancel = true;
      t->expect = *e;
      ++t->expect_gen;
      start = !t->member_started;
      t->member_started = true;
      if (start) t->state = "receiving";
    }
    if (start) Spawn(t, [this, t] { MemberRun(t); });
    return Json(200, JsonObject().Bool("ok", true).Build());
  }

  http::Response OnMemberReport(const std::string& body) {
    auto r = push::ParseMemberReport(body);
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
        auto parsed = push::FetchOrderFromJson(next["order"]);
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

  ServerResult ApplyHere(const std::string& file, TransferKind kind, Via via) {
    ServerResult r;
    r.name = opts.name;
    r.via = via;
    if (opts.root.empty()) {
      r.state = push::SuccessState(kind);
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
      r.state = ServerState::kFailed;
      r.error = "cm-apply: " + res.status().message();
    } else if (res->exit_code != 0) {
      r.state = ServerState::kFailed;
      std::string line = LastLine(res->err);
      r.error = line.empty() ? "cm-apply exit " + std::to_string(res->exit_code) : line;
    } else {
      r.state = push::SuccessState(kind);
    }
    return r;
  }

  void LeaderRun(const std::shared_ptr<Transfer>& t) {
    std::thread serve([this, t] { ServeLoop(t); });
    FetchOrder order;
    {
      std::lock_guard<std::mutex> l(t->mu);
      order = t->order;
    }
    // Streaming: the site phase starts now and multicasts each chunk to the
    // members as soon as it is checked; otherwise once we hold the file.
    SiteReport rep;
    std::thread site;
    if (order.stream) site = std::thread([&] { rep = SitePhase(t, order); });
    Status st = FetchAsLeader(t);
    {
      std::lock_guard<std::mutex> l(t->mu);
      order = t->order;
      t->state = st.ok() ? "complete" : "failed";
      t->fetch_done = true;
      t->fetch_ok = st.ok();
    }
    t->cv.notify_all();
    if (st.ok()) ReportProgress(t, true);
    if (!st.ok()) {
      // Our own failure: the CCM will notice (no progress, no report) and
      // give the site another leader. Our members fall back to HTTP from us
      // and fail too; their reports go nowhere.
      log::Error(opts.name + ": serial " + std::to_string(t->serial) + ": " + st.message());
      t->site_cancel = true;
      if (site.joinable()) site.join();
      serve.join();
      return;
    }
    if (site.joinable())
      site.join();
    else
      rep = SitePhase(t, order);
    Post(order.ccm, "/v1/site-report", Encode(rep), 10);
    {
      std::lock_guard<std::mutex> l(t->mu);
      t->state = "reported";
    }
    serve.join();
  }

  // Waits until our own fetch has ended; true when it completed.
  bool AwaitFetch(const std::shared_ptr<Transfer>& t) {
    std::unique_lock<std::mutex> l(t->mu);
    t->cv.wait(l, [&] { return t->fetch_done || stopping; });
    return t->fetch_ok;
  }

  // Copies the held bytes of the assignment, in order, into `fd` as they
  // become held (header and middle as chunks check, then the tail): the
  // growing file cm-mcast sends while we still receive. Checked bytes only.
  Status Mirror(const std::shared_ptr<Transfer>& t, int fd) {
    std::shared_ptr<push::HeldContent> held = t->fetcher->held();
    if (!held) return Error(Code::kFailure, "nothing held");
    std::vector<char> buf(1 << 20);
    uint64_t pos = 0;
    const uint64_t size = held->size();
    while (pos < size) {
      if (stopping || t->site_cancel) return Error(Code::kFailure, "cancelled");
      auto w = held->WaitFor(pos, Clock::now() + milliseconds(200));
      if (!w.ok()) return w.status();
      if (!*w) continue;
      auto n = held->ReadAt(pos, std::span<char>(buf.data(), buf.size()));
      if (!n.ok()) return n.status();
      for (size_t done = 0; done < *n;) {
        ssize_t k = ::pwrite(fd, buf.data() + done, *n - done, static_cast<off_t>(pos + done));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return ErrnoError("site copy", errno);
        done += static_cast<size_t>(k);
      }
      pos += *n;
    }
    return Status::Ok();
  }

  // Stage here, hand the file to the members, collect their results. With
  // order.stream it runs beside the fetch: it starts as soon as the chunk
  // table is known and multicasts a copy that grows with the checked bytes
  // (<spool>/site/<serial>.cma, same name for the receivers), so the members
  // hold the file moments after we do.
  SiteReport SitePhase(const std::shared_ptr<Transfer>& t, const FetchOrder& order) {
    const std::string file = SpoolPath(t->serial);
    SiteReport rep;
    rep.serial = t->serial;
    rep.site = order.site;
    rep.leader = opts.name;
    if (order.stream) {
      while (!t->fetcher->held() && !stopping && !t->site_cancel) {
        {
          std::lock_guard<std::mutex> l(t->mu);
          if (t->fetch_done) break;
        }
        std::this_thread::sleep_for(milliseconds(20));
      }
      if (!t->fetcher->held()) return rep;  // our fetch failed: LeaderRun sends nothing
    }
    const bool streaming = order.stream && !t->fetcher->complete();
    auto expect = [&](const Member& m) {
      Expect e;
      e.serial = t->serial;
      e.job = order.job;
      e.kind = order.kind;
      e.size = t->fetcher->size();
      e.name = m.name;
      e.leader = opts.name;
      e.leader_url = url;
      e.group = order.group;
      return Post(m.url, "/v1/expect", Encode(e), 1, milliseconds(3000));
    };
    std::vector<std::string> receivers;  // answered at once: the multicast waits for them
    std::map<std::string, ServerResult> unreachable;
    std::vector<Member> retry;
    for (const auto& m : order.members) {
      auto r = expect(m);
      if (r.ok()) {
        receivers.push_back(m.name);
      } else {
        retry.push_back(m);
        unreachable[m.name] = ServerResult{m.name, ServerState::kFailed, "unreachable: " + r.status().message(), Via::kNone};
      }
    }
    // The retry policy (--member-retry): members that did not answer are
    // tried again, backing off, while the others are served. One reached
    // later joins the multicast under way or fetches from us over HTTP.
    std::vector<std::string> late;  // reached by the retries (read after the join)
    std::thread retrier([&] {
      auto deadline = Clock::now() + milliseconds(static_cast<int64_t>(opts.member_retry_s * 1000));
      milliseconds pause{300};
      while (!retry.empty() && !stopping && !t->site_cancel) {
        auto now = Clock::now();
        if (now >= deadline) break;
        std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
        pause = std::min(pause * 2, milliseconds(2000));
        for (auto it = retry.begin(); it != retry.end();) {
          auto r = expect(*it);
          if (r.ok()) {
            late.push_back(it->name);
            unreachable.erase(it->name);
            it = retry.erase(it);
          } else {
            unreachable[it->name].error = "unreachable: " + r.status().message();
            ++it;
          }
        }
      }
    });
    // Our own copy is staged (once we hold it) while the multicast runs.
    ServerResult own;
    std::thread self([&] {
      if (AwaitFetch(t))
        own = ApplyHere(file, order.kind, Via::kLeader);
      else
        own = ServerResult{opts.name, ServerState::kFailed, "the leader's own fetch failed", Via::kLeader};
    });
    if (!receivers.empty() && !order.group.empty()) Multicast(t, order, receivers, streaming);
    retrier.join();
    receivers.insert(receivers.end(), late.begin(), late.end());
    // Members report when they have applied (multicast or, failing that, HTTP).
    auto deadline = Clock::now() + milliseconds(static_cast<int64_t>(opts.member_wait_s * 1000));
    {
      std::unique_lock<std::mutex> l(t->mu);
      t->cv.wait_until(l, deadline, [&] {
        if (t->fetch_done && !t->fetch_ok) return true;  // nobody will get it from us
        for (const auto& r : receivers)
          if (!t->results.count(r)) return false;
        return true;
      });
      for (const auto& r : receivers) {
        auto it = t->results.find(r);
        rep.servers.push_back(it != t->results.end() ? it->second
                                                     : ServerResult{r, ServerState::kFailed, "no report from the member", Via::kNone});
      }
    }
    self.join();
    rep.servers.push_back(own);
    for (auto& [name, r] : unreachable) rep.servers.push_back(r);
    return rep;
  }

  // Multicasts the assignment to `receivers` with cm-mcast send: while it
  // still arrives (streaming: a copy in <spool>/site/ grown with checked
  // bytes, same name for the receivers) or, else, once we hold it.
  void Multicast(const std::shared_ptr<Transfer>& t, const FetchOrder& order,
                 const std::vector<std::string>& receivers, bool streaming) {
    const std::string file = SpoolPath(t->serial);
    std::string send_path = file;
    UniqueFd copy;
    std::thread mirror;
    if (streaming) {
      std::error_code ec;
      fs::create_directories(opts.spool + "/site", ec);
      send_path = opts.spool + "/site/" + std::to_string(t->serial) + ".cma";
      copy = UniqueFd(::open(send_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      if (!copy) {
        log::Warn(opts.name + ": " + send_path + ": " + std::strerror(errno) + "; multicasting once complete");
        send_path = file;
      } else {
        mirror = std::thread([&] {
          Status ms = Mirror(t, copy.get());
          if (!ms.ok()) {
            if (!stopping) log::Warn(opts.name + ": site copy: " + ms.message());
            t->site_cancel = true;  // the multicast can never complete
          }
        });
      }
    }
    if (send_path == file && !AwaitFetch(t)) t->site_cancel = true;
    std::vector<std::string> argv{opts.cm_mcast, "send", send_path, "--group", order.group, "--id", opts.name, "-q"};
    if (send_path != file) {
      argv.push_back("--final-size");
      argv.push_back(std::to_string(t->fetcher->size()));
    }
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
    if (!t->site_cancel) {
      ProcessOptions po;
      po.timeout = milliseconds(static_cast<int64_t>(opts.member_wait_s * 1000));
      po.cancel = &t->site_cancel;
      auto res = RunProcess(argv, po);
      if (!res.ok() || (res->exit_code != 0 && opts.verbose))
        log::Warn(opts.name + ": cm-mcast send: " +
                  (res.ok() ? LastLine(res->err) + " (exit " + std::to_string(res->exit_code) + ")"
                            : res.status().message()));
    }
    if (mirror.joinable()) {
      t->site_cancel = true;  // the copy is no longer needed whatever happened
      mirror.join();
      ::unlink(send_path.c_str());
    }
  }

  std::string Iface() const {
    if (!opts.iface.empty()) return opts.iface;
    std::string host = opts.listen.substr(0, opts.listen.rfind(':'));
    return host == "0.0.0.0" ? "" : host;
  }

  // ---- member role ---------------------------------------------------------

  // Works for the site's current leader until it has reported to it: a new
  // /v1/expect (another leader) while we work or report starts over with it.
  void MemberRun(const std::shared_ptr<Transfer>& t) {
    for (;;) {
      Expect e;
      uint64_t gen;
      std::optional<ServerResult> prior;
      {
        std::lock_guard<std::mutex> l(t->mu);
        e = *t->expect;
        gen = t->expect_gen;
        t->member_cancel = false;
        prior = t->member_done;
      }
      ServerResult r = prior ? *prior : ReceiveAndApply(t, e);
      {
        std::lock_guard<std::mutex> l(t->mu);
        if (r.state != ServerState::kFailed) t->member_done = r;
        if (t->expect_gen != gen) continue;  // another leader asked meanwhile
        if (t->member_cancel || stopping) {  // we lead the site now (or stop): nobody to report to
          t->member_started = false;
          return;
        }
        t->state = push::ServerStateName(r.state);
      }
      MemberReport rep{t->serial, r};
      auto p = Post(e.leader_url, "/v1/member-report", Encode(rep), 10);
      if (!p.ok()) log::Warn(opts.name + ": report to leader: " + p.status().message());
      std::lock_guard<std::mutex> l(t->mu);
      if (t->expect_gen == gen) {
        t->member_started = false;
        return;
      }
    }
  }

  // Receives the assignment (multicast, else HTTP from the leader) and
  // applies it. Failed with "superseded" when member_cancel was set.
  ServerResult ReceiveAndApply(const std::shared_ptr<Transfer>& t, const Expect& e) {
    const std::string file = SpoolPath(t->serial);
    Via via = Via::kMulticast;
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
      po.cancel = &t->member_cancel;
      auto res = RunProcess(argv, po);
      if (t->member_cancel) return ServerResult{opts.name, ServerState::kFailed, "superseded", via};
      if (!res.ok() || res->exit_code != 0)
        log::Warn(opts.name + ": multicast receive failed (" +
                  (res.ok() ? LastLine(res->err) : res.status().message()) + "); fetching from the leader");
      t->fetcher->OpenExisting();
    }
    Status st = Status::Ok();
    if (!t->fetcher->complete()) {
      via = Via::kUnicast;
      for (int i = 0; i < 5 && !t->member_cancel && !t->fetcher->complete(); ++i) {
        st = t->fetcher->FetchFrom(e.leader_url, &t->member_cancel);
        if (!t->fetcher->complete() && !t->member_cancel) std::this_thread::sleep_for(milliseconds(500 * (i + 1)));
      }
    }
    if (t->member_cancel) return ServerResult{opts.name, ServerState::kFailed, "superseded", via};
    if (!t->fetcher->complete()) return ServerResult{opts.name, ServerState::kFailed, "could not receive: " + st.message(), via};
    return ApplyHere(file, e.kind, via);
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
    t->site_cancel = true;
    t->member_cancel = true;
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
