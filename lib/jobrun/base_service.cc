#include "jobrun/base_service.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "jobrun/job_edge.h"
#include "push/job_book.h"
#include "pushrun/auth_edge.h"
#include "pushrun/edge_loop.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/subprocess.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/json_value.h"

namespace cm::jobrun {
namespace fs = std::filesystem;

namespace {

http::Response JsonError(int status, const std::string& msg) {
  return http::Response::Json(status, JsonObject().Str("error", msg).Build());
}

using http::QueryParam;

bool ClientOk(const std::string& c) {
  if (c.empty() || c.size() > 40) return false;
  for (char ch : c) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-';
    if (!ok) return false;
  }
  return c != "." && c != "..";
}

}  // namespace

Result<std::string> ReadBaseToken(const std::string& state_dir) {
  CM_ASSIGN_OR_RETURN(std::string t, ReadFileToString(state_dir + "/base.token"));
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  if (t.size() < 32) return Error(Code::kAuth, state_dir + "/base.token: too short");
  return t;
}

struct BaseService::Impl {
  BaseServiceOptions opts;
  std::string token;
  std::unique_ptr<JobEdge> edge;
  std::mutex write_mu;  // the clients' writes to the logs, one at a time (held while the edge appends)
  std::mutex book_mu;   // the book; never held while calling the edge (its callbacks take it)
  push::JobBook book;
  // Notices for the `notify` program, run one at a time on its own thread.
  std::mutex notify_mu;
  std::condition_variable notify_cv;
  std::deque<push::JobNotice> to_notify;
  bool stopping = false;
  std::thread notifier, ticker;
  // Each site's upload rate as the last job that measured it saw it
  // (STATE/rates.json): the next jobs' objects carry it, so the first
  // approach already goes to the fastest sites (docs/protocol/jobs.md).
  std::vector<std::string> to_measure;  // finished jobs (book_mu)
  // A finished job's last transfer state, kept when the edge retires it.
  struct Final {
    std::vector<push::JobNodeState> nodes;
    uint64_t log_size = 0;
  };
  std::map<std::string, Final> finals;  // book_mu
  std::mutex rates_mu;
  std::map<std::string, double> site_rates;
  static constexpr uint64_t kMinMeasuredBytes = 1 << 20;  // a smaller job's rates are not kept

  static constexpr size_t kMaxQueuedNotices = 100000;

  bool Authorized(const http::Request& req) const {
    const std::string* t = req.header("x-cm-token");
    return t && t->size() == token.size() && sodium_memcmp(t->data(), token.data(), token.size()) == 0;
  }

  static std::string NoticeJson(const push::JobNotice& n) {
    JsonObject o;
    o.Str("notice", push::JobNoticeKindName(n.kind)).Str("job", n.job);
    if (!n.node.empty()) o.Str("node", n.node);
    if (n.entry) o.Uint("entry", n.entry);
    if (!n.error.empty()) o.Str("error", n.error);
    if (n.kind == push::JobNotice::Kind::kFinished) o.Uint("ok", n.count).Uint("total", n.total);
    o.Int("time", pushrun::WallSeconds());
    return o.Build();
  }

  // With book_mu held: the notices go to the job's notices file and to the
  // notify program ("executing" only to the file: it is news on query).
  void Deliver(const std::vector<push::JobNotice>& out) {
    std::map<std::string, std::string> lines;
    for (const push::JobNotice& n : out) {
      lines[n.job] += NoticeJson(n) + "\n";
      if (n.kind == push::JobNotice::Kind::kFinished) to_measure.push_back(n.job);
    }
    for (const auto& [job, text] : lines) {
      std::string path = opts.state_dir + "/jobs/" + job + ".notices";
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd < 0 || !WriteFull(fd, text.data(), text.size()).ok()) log::Warn("job " + job + ": cannot append to " + path);
      if (fd >= 0) ::close(fd);
    }
    if (opts.notify.empty()) return;
    std::lock_guard<std::mutex> lock(notify_mu);
    for (const push::JobNotice& n : out) {
      if (n.kind == push::JobNotice::Kind::kExecuting) continue;
      if (to_notify.size() >= kMaxQueuedNotices) {
        log::Warn("notify: " + std::to_string(kMaxQueuedNotices) + " notices wait already; one for " + n.job + " dropped");
        continue;
      }
      to_notify.push_back(n);
    }
    notify_cv.notify_all();
  }

  void Notifier() {
    for (;;) {
      push::JobNotice n;
      {
        std::unique_lock<std::mutex> lock(notify_mu);
        notify_cv.wait(lock, [&] { return stopping || !to_notify.empty(); });
        if (stopping) return;
        n = std::move(to_notify.front());
        to_notify.pop_front();
      }
      ProcessOptions po;
      po.timeout = std::chrono::seconds(60);
      po.env = {"CM_JOB=" + n.job, std::string("CM_NOTICE=") + push::JobNoticeKindName(n.kind), "CM_NODE=" + n.node,
                "CM_ENTRY=" + std::to_string(n.entry), "CM_ERROR=" + n.error, "CM_OK=" + std::to_string(n.count),
                "CM_TOTAL=" + std::to_string(n.total), "CM_NOTICE_JSON=" + NoticeJson(n)};
      auto r = RunProcess(opts.notify, po);
      if (!r.ok()) log::Warn("notify: " + r.status().message());
      else if (r->exit_code != 0) log::Warn("notify: " + opts.notify[0] + " exited " + std::to_string(r->exit_code) + ": " + LastLine(r->err));
    }
  }

  void Ticker() {
    std::unique_lock<std::mutex> lock(notify_mu);
    while (!stopping) {
      notify_cv.wait_for(lock, std::chrono::milliseconds(250));
      if (stopping) return;
      lock.unlock();
      std::vector<std::string> measured;
      {
        std::lock_guard<std::mutex> b(book_mu);
        std::vector<push::JobNotice> out;
        book.OnTimer(pushrun::SteadyNow(), &out);
        Deliver(out);
        measured.swap(to_measure);
      }
      for (const std::string& job : measured) Retire(job);
      lock.lock();
    }
  }

  static std::string RatesPath(const std::string& state_dir) { return state_dir + "/rates.json"; }

  void LoadRates() {
    auto text = ReadFileToString(RatesPath(opts.state_dir));
    if (!text.ok()) return;
    auto v = ParseJson(*text);
    if (!v.ok() || !v->is_object() || !(*v)["sites"].is_object()) {
      log::Warn(RatesPath(opts.state_dir) + ": not what the base writes; measuring again");
      return;
    }
    for (const auto& [site, rate] : (*v)["sites"].members()) {
      double r = rate.AsNumber();
      if (r > 0 && r < 1e12) site_rates[site] = r;
    }
  }

  // A finished job's measured site rates replace the kept ones (links
  // change; a job too small to measure changes nothing).
  void KeepRates(const std::string& job) {
    if (edge->View(job).log_size < kMinMeasuredBytes) return;
    std::map<std::string, double> rates = edge->SiteRates(job);
    if (rates.empty()) return;
    std::lock_guard<std::mutex> lock(rates_mu);
    JsonObject sites;
    for (const auto& [site, r] : rates) site_rates[site] = r;
    for (const auto& [site, r] : site_rates) sites.Uint(site, static_cast<uint64_t>(r));
    Status s = WriteFileAtomic(RatesPath(opts.state_dir), JsonObject().Raw("sites", sites.Build()).Str("from", job).Build() + "\n", 0600);
    if (!s.ok()) log::Warn("rates: " + s.ToString());
  }

  // A job that is over: its rates kept, its last state kept for status,
  // and the edge stops probing and repairing its servers.
  void Retire(const std::string& job) {
    KeepRates(job);
    Final f{edge->BaseView(job), edge->View(job).log_size};
    {
      std::lock_guard<std::mutex> lock(book_mu);
      finals[job] = std::move(f);
    }
    edge->Retire(job);
  }

  double SiteRate(const std::string& site) {
    std::lock_guard<std::mutex> lock(rates_mu);
    auto it = site_rates.find(site);
    return it == site_rates.end() ? 0 : it->second;
  }

  void OnEntries(const std::string& job, const std::string& node, const std::vector<push::EntryReport>& entries,
                 bool progress) {
    std::lock_guard<std::mutex> lock(book_mu);
    std::vector<push::JobNotice> out;
    book.OnReport(pushrun::SteadyNow(), job, node, entries, progress, &out);
    Deliver(out);
  }

  http::Response Open(const http::Request& req) {
    auto v = ParseJson(req.body);
    if (!v.ok() || !v->is_object()) return JsonError(400, "open: not a JSON object");
    std::string client = v->Str("client", "cli");
    if (!ClientOk(client)) return JsonError(400, "open: client name must be 1-40 of [A-Za-z0-9._-]");
    std::vector<std::string> wanted;
    const JsonValue& sv = (*v)["servers"];
    if (sv.is_array()) {
      for (const JsonValue& s : sv.items()) wanted.push_back(s.AsString());
    }
    push::JobOpenOptions jo;
    double timeout = v->Num("timeout", 3600);
    if (!(timeout >= 1 && timeout <= 30 * 86400)) return JsonError(400, "open: timeout takes 1 to 2592000 seconds");
    jo.timeout = static_cast<proto::Micros>(timeout * 1e6);
    push::JobObject object;
    object.base_url = opts.url;
    for (const push::Site& site : opts.sites.sites) {
      // The site's preferred leader first: the entry other sites feed.
      std::vector<const push::Server*> order;
      for (const push::Server& s : site.servers) {
        if (s.name == site.leader) order.insert(order.begin(), &s);
        else order.push_back(&s);
      }
      for (const push::Server* s : order) {
        if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), s->name) == wanted.end()) continue;
        object.servers.push_back({s->name, site.name, s->url, SiteRate(site.name)});
      }
    }
    for (const std::string& w : wanted) {
      if (!opts.sites.FindServer(w)) return JsonError(400, "open: no server " + w + " in " + opts.sites.source);
    }
    if (object.servers.empty()) return JsonError(400, "open: no servers");
    std::vector<std::string> names;
    for (const auto& srv : object.servers) names.push_back(srv.name);
    std::lock_guard<std::mutex> writes(write_mu);
    {
      std::lock_guard<std::mutex> lock(book_mu);
      for (uint64_t n = 1;; ++n) {
        std::string id = client + "-" + std::to_string(n);
        if (book.View(id) || fs::exists(opts.state_dir + "/jobs/" + id + ".log")) continue;
        object.job = id;
        break;
      }
      auto opened = book.Open(pushrun::SteadyNow(), client, names, jo, object.job);
      if (!opened.ok()) return JsonError(400, "open: " + opened.status().message());
    }
    Status s = edge->OpenJob(object);
    if (!s.ok()) return JsonError(500, s.ToString());
    JsonArray list;
    for (const std::string& n : names) list.Str(n);
    return http::Response::Json(200, JsonObject().Str("job", object.job).Raw("servers", list.Build()).Build());
  }

  static http::Response Refused(const Status& s) {
    return JsonError(s.code() == Code::kNotFound ? 404 : s.code() == Code::kUsage ? 409 : 500, s.message());
  }

  http::Response Add(const http::Request& req) {
    auto v = ParseJson(req.body);
    if (!v.ok() || !v->is_object()) return JsonError(400, "add: not a JSON object");
    std::string id = v->Str("job"), path = v->Str("path");
    if (path.empty() || path[0] != '/') return JsonError(400, "add: the file's absolute path");
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return JsonError(400, "add: " + ErrnoError(path, errno).message());
    UniqueFd file(fd);
    char magic[4] = {};
    bool assignment = ::pread(fd, magic, 4, 0) == 4 && std::memcmp(magic, "CMAS", 4) == 0;
    push::EntryKind kind = assignment ? push::EntryKind::kAssignment : push::EntryKind::kFile;
    std::string name = fs::path(path).filename().string();
    std::lock_guard<std::mutex> writes(write_mu);
    Result<uint32_t> entry = Error(Code::kFailure, "");
    {
      std::lock_guard<std::mutex> lock(book_mu);
      entry = book.AddItem(id, kind, name);
    }
    if (!entry.ok()) return Refused(entry.status());
    std::string buf(1 << 20, '\0');
    Status st = edge->BeginItem(id, *entry, push::EntryKindName(kind), name);
    while (st.ok()) {
      auto n = ReadFull(fd, buf.data(), buf.size());
      if (!n.ok()) {
        st = n.status();
        break;
      }
      if (*n == 0) break;
      st = edge->AddData(id, *entry, std::string_view(buf.data(), *n));
      if (!st.ok() || *n < buf.size()) break;
    }
    if (st.ok()) st = edge->EndItem(id, *entry);
    if (!st.ok()) return JsonError(500, st.ToString());
    return http::Response::Json(200, JsonObject().Uint("entry", *entry).Str("kind", push::EntryKindName(kind)).Build());
  }

  http::Response Cmd(const http::Request& req) {
    auto v = ParseJson(req.body);
    if (!v.ok() || !v->is_object()) return JsonError(400, "cmd: not a JSON object");
    std::string id = v->Str("job"), arg = v->Str("arg");
    auto command = push::ParseCommandName(v->Str("command"));
    if (!command) return JsonError(400, "cmd: the command is one of stage, commit, rollback, hook");
    if (*command == push::CommandName::kHook && arg.empty()) return JsonError(400, "cmd: hook needs the hook's name");
    if (arg.size() > 200) return JsonError(400, "cmd: argument too long");
    std::lock_guard<std::mutex> writes(write_mu);
    Result<uint32_t> entry = Error(Code::kFailure, "");
    {
      std::lock_guard<std::mutex> lock(book_mu);
      entry = book.AddCommand(id, *command, arg);
    }
    if (!entry.ok()) return Refused(entry.status());
    Status st = edge->BeginItem(id, *entry, "command", push::CommandNameText(*command), arg);
    if (st.ok()) st = edge->EndItem(id, *entry);
    if (!st.ok()) return JsonError(500, st.ToString());
    return http::Response::Json(200, JsonObject().Uint("entry", *entry).Build());
  }

  // The job's stream `entry` while it is open.
  bool OpenStream(const std::string& id, uint64_t entry) {
    std::lock_guard<std::mutex> lock(book_mu);
    auto view = book.View(id);
    return view && !view->finished && entry >= 1 && entry <= view->entries.size() &&
           view->entries[entry - 1].kind == push::EntryKind::kStream && !view->entries[entry - 1].closed;
  }

  http::Response Stream(const http::Request& req, const std::string& what) {
    std::lock_guard<std::mutex> writes(write_mu);
    if (what == "stream") {
      auto v = ParseJson(req.body);
      if (!v.ok() || !v->is_object()) return JsonError(400, "stream: not a JSON object");
      std::string id = v->Str("job"), name = v->Str("name", "stream");
      Result<uint32_t> entry = Error(Code::kFailure, "");
      {
        std::lock_guard<std::mutex> lock(book_mu);
        entry = book.AddItem(id, push::EntryKind::kStream, name);
      }
      if (!entry.ok()) return Refused(entry.status());
      if (Status b = edge->BeginItem(id, *entry, "stream", name); !b.ok()) return JsonError(500, b.ToString());
      return http::Response::Json(200, JsonObject().Uint("entry", *entry).Build());
    }
    std::string id;
    uint64_t entry = 0;
    if (what == "stream-data") {
      id = QueryParam(req.target, "job");
      entry = std::strtoull(QueryParam(req.target, "entry").c_str(), nullptr, 10);
    } else {
      auto v = ParseJson(req.body);
      if (!v.ok() || !v->is_object()) return JsonError(400, "stream-end: not a JSON object");
      id = v->Str("job");
      entry = v->Uint("entry");
    }
    if (!OpenStream(id, entry)) return JsonError(409, "no open stream " + std::to_string(entry) + " in job " + id);
    uint32_t e = static_cast<uint32_t>(entry);
    if (what == "stream-data") {
      Status st = req.body.empty() ? Status::Ok() : edge->AddData(id, e, req.body);
      return st.ok() ? http::Response::Json(200, "{}") : JsonError(500, st.ToString());
    }
    if (Status st = edge->EndItem(id, e); !st.ok()) return JsonError(500, st.ToString());
    std::lock_guard<std::mutex> lock(book_mu);
    (void)book.CloseStream(id, e);
    return http::Response::Json(200, "{}");
  }

  http::Response End(const http::Request& req) {
    auto v = ParseJson(req.body);
    if (!v.ok() || !v->is_object()) return JsonError(400, "end: not a JSON object");
    std::string id = v->Str("job");
    std::lock_guard<std::mutex> writes(write_mu);
    std::optional<push::JobView> view;
    {
      std::lock_guard<std::mutex> lock(book_mu);
      view = book.View(id);
    }
    if (!view) return JsonError(404, "no job " + id);
    if (view->ended) return http::Response::Json(200, "{}");
    for (const push::JobEntry& e : view->entries) {
      if (e.kind != push::EntryKind::kStream || e.closed) continue;
      if (Status s = edge->EndItem(id, e.id); !s.ok()) return JsonError(500, s.ToString());
      std::lock_guard<std::mutex> lock(book_mu);
      (void)book.CloseStream(id, e.id);
    }
    if (Status s = edge->Finish(id); !s.ok()) return JsonError(500, s.ToString());
    std::lock_guard<std::mutex> lock(book_mu);
    std::vector<push::JobNotice> out;
    (void)book.End(pushrun::SteadyNow(), id, &out);
    Deliver(out);
    return http::Response::Json(200, "{}");
  }

  // The job as the base sees it: its entries, every server's distribution
  // state and its state of each entry.
  std::string StatusJson(const std::string& id) {
    std::optional<push::JobView> view;
    std::optional<Final> final;
    {
      std::lock_guard<std::mutex> lock(book_mu);
      view = book.View(id);
      if (auto f = finals.find(id); f != finals.end()) final = f->second;
    }
    if (!view) return {};
    std::vector<push::JobNodeState> nodes = final ? final->nodes : edge->BaseView(id);
    uint64_t log_size = final ? final->log_size : edge->View(id).log_size;
    JsonArray entries;
    for (const push::JobEntry& e : view->entries) {
      JsonObject o;
      o.Uint("entry", e.id).Str("kind", push::EntryKindName(e.kind));
      if (e.kind == push::EntryKind::kCommand) {
        o.Str("command", push::CommandNameText(e.command));
        if (!e.name.empty()) o.Str("arg", e.name);
      } else {
        o.Str("name", e.name);
      }
      if (e.kind == push::EntryKind::kStream) o.Bool("open", !e.closed);
      entries.Raw(o.Build());
    }
    JsonArray arr;
    size_t holding = 0, ok = 0, failed = 0;
    for (size_t i = 0; i < view->servers.size(); ++i) {
      const std::string& name = view->servers[i];
      push::JobNodeState n = i < nodes.size() ? nodes[i] : push::JobNodeState{};
      const std::vector<push::EntryState>& states = view->states.at(name);
      bool given_up = view->given_up.count(name) > 0;
      bool all_done = !given_up && std::all_of(states.begin(), states.end(), [](push::EntryState s) {
        return s == push::EntryState::kDone;
      });
      bool any_failed = std::any_of(states.begin(), states.end(), [](push::EntryState s) {
        return s == push::EntryState::kFailed;
      });
      ok += all_done && view->ended;
      failed += any_failed || given_up;
      // Two channels tell the base: progress reports (the log) and entry
      // states; a server that reported every entry of an ended job holds it
      // even if its last progress report is still on the way.
      bool holds = n.complete || (all_done && view->ended);
      holding += holds;
      JsonArray st;
      for (size_t k = 0; k < states.size(); ++k) st.Str(push::EntryStateName(states[k], view->entries[k].kind));
      const char* state = given_up ? "given-up" : holds ? "received" : n.down ? "down" : n.heard ? "receiving" : "pending";
      arr.Raw(JsonObject()
                  .Str("name", name)
                  .Str("state", state)
                  .Uint("pos", n.pos)
                  .Int("source", n.source)
                  .Uint("rx_bps", static_cast<uint64_t>(n.rx_bps))
                  .Raw("entries", st.Build())
                  .Build());
    }
    return JsonObject()
        .Str("job", id)
        .Str("client", view->client)
        .Bool("ended", view->ended)
        .Bool("finished", view->finished)
        .Bool("done", view->finished)
        .Uint("size", log_size)
        .Uint("complete", holding)
        .Uint("ok", ok)
        .Uint("failed", failed)
        .Uint("total", view->servers.size())
        .Raw("entries", entries.Build())
        .Raw("servers", arr.Build())
        .Build();
  }

  http::Response StatusReq(const http::Request& req) {
    std::string body = StatusJson(QueryParam(req.target, "job"));
    if (body.empty()) return JsonError(404, "no job " + QueryParam(req.target, "job"));
    return http::Response::Json(200, body);
  }
};

BaseService::BaseService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BaseService::~BaseService() { Stop(); }

Result<std::unique_ptr<BaseService>> BaseService::Start(BaseServiceOptions opts) {
  std::error_code ec;
  fs::create_directories(opts.state_dir + "/jobs", ec);
  if (ec) return Error(Code::kIo, opts.state_dir + "/jobs: " + ec.message());
  auto impl = std::make_unique<Impl>();
  std::string token_path = opts.state_dir + "/base.token";
  if (!fs::exists(token_path)) {
    InitCrypto();
    uint8_t raw[24];
    randombytes_buf(raw, sizeof raw);
    CM_RETURN_IF_ERROR(WriteFileAtomic(token_path, ToHex(raw, sizeof raw) + "\n", 0600));
  }
  CM_ASSIGN_OR_RETURN(impl->token, ReadBaseToken(opts.state_dir));
  JobEdgeOptions eo;
  eo.base = true;
  eo.url = opts.url;
  eo.dir = opts.state_dir + "/jobs";
  eo.key = opts.key.pub;
  eo.sign_key = opts.key;
  eo.group_key = opts.group_key;
  // The base's uplink, when the sites file says ([ccm] uplink_mbit): it feeds
  // slow-fed relays from what is left of it (jobrun/job_base.h).
  if (opts.sites.ccm.uplink_mbit) {
    eo.up_bps = *opts.sites.ccm.uplink_mbit * 1e6 / 8;
    eo.base_opts.base_up_bps = eo.up_bps;
  }
  Impl* raw = impl.get();
  eo.on_entries = [raw](const std::string& job, const std::string& node, const std::vector<push::EntryReport>& entries,
                        bool progress) { raw->OnEntries(job, node, entries, progress); };
  impl->book = push::JobBook(opts.hooks);
  impl->opts = std::move(opts);
  impl->LoadRates();
  CM_ASSIGN_OR_RETURN(impl->edge, JobEdge::Start(eo));
  impl->ticker = std::thread([raw] { raw->Ticker(); });
  if (!impl->opts.notify.empty()) impl->notifier = std::thread([raw] { raw->Notifier(); });
  return std::unique_ptr<BaseService>(new BaseService(std::move(impl)));
}

void BaseService::Stop() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->notify_mu);
    impl_->stopping = true;
    impl_->notify_cv.notify_all();
  }
  if (impl_->ticker.joinable()) impl_->ticker.join();
  if (impl_->notifier.joinable()) impl_->notifier.join();
  if (impl_->edge) impl_->edge->Stop();
}

http::Response BaseService::Handle(const http::Request& req) {
  const std::string path = req.path();
  if (path.rfind("/v1/client/", 0) == 0) {
    if (!impl_->Authorized(req)) return JsonError(403, "forbidden: the token from STATE/base.token is needed");
    std::string what = path.substr(11);
    if (req.method == "POST" && what == "open") return impl_->Open(req);
    if (req.method == "POST" && what == "add") return impl_->Add(req);
    if (req.method == "POST" && what == "cmd") return impl_->Cmd(req);
    if (req.method == "POST" && (what == "stream" || what == "stream-data" || what == "stream-end"))
      return impl_->Stream(req, what);
    if (req.method == "POST" && what == "end") return impl_->End(req);
    if (req.method == "GET" && what == "status") return impl_->StatusReq(req);
    return JsonError(404, "no such resource: " + req.method + " " + path);
  }
  if (JobEdge::Owns(path)) return impl_->edge->Handle(req);
  return JsonError(404, "no such resource: " + req.method + " " + path);
}

}  // namespace cm::jobrun
