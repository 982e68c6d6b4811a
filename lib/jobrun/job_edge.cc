#include "jobrun/job_edge.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "http/client.h"
#include "push/auth.h"
#include "jobrun/record_log.h"
#include "pushrun/auth_edge.h"
#include "pushrun/edge_loop.h"
#include "util/file_util.h"
#include "util/json.h"
#include "util/json_value.h"
#include "util/log.h"

namespace cm::jobrun {

using proto::Micros;
using pushrun::SteadyNow;

namespace {

using http::QueryParam;

bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}


http::Response JsonError(int status, const std::string& msg) {
  return http::Response::Json(status, JsonObject().Str("error", msg).Build());
}

namespace auth = push::auth;

using pushrun::NewNonce;
using pushrun::WallSeconds;

// A few threads that run blocking work in order of arrival.
class Workers {
 public:
  explicit Workers(size_t n) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~Workers() { Stop(); }
  void Run(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(fn));
    cv_.notify_one();
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
      queue_.clear();
      cv_.notify_all();
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// A streamed answer: the log's bytes from `from` as they arrive. It promises
// `promise` bytes; when the log ends sooner it fails at its end (the server
// closes the connection, and the reader, holding the whole log, is done).
class LogBody : public http::BodySource {
 public:
  LogBody(std::shared_ptr<RecordLog> log, uint64_t from, uint64_t promise,
          std::function<void(uint64_t pos, bool done)> progress)
      : log_(std::move(log)), from_(from), promise_(promise), progress_(std::move(progress)) {}
  uint64_t size() const override { return promise_; }
  Result<size_t> Read(uint64_t offset, std::span<char> out, std::chrono::steady_clock::time_point deadline) override {
    uint64_t pos = from_ + offset;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (wait.count() < 0) wait = std::chrono::milliseconds(0);
    auto bytes = log_->ReadRaw(pos, out.size(), wait);
    if (!bytes.ok()) return bytes.status();
    if (bytes->empty()) {
      if (log_->complete() && pos >= log_->size()) {
        Report(pos, true);
        return Error(Code::kIo, "the log ends here");
      }
      return size_t{0};
    }
    std::memcpy(out.data(), bytes->data(), bytes->size());
    Report(pos + bytes->size(), log_->complete() && pos + bytes->size() >= log_->size());
    return bytes->size();
  }

 private:
  void Report(uint64_t pos, bool done) {
    if (!progress_) return;
    if (!done && pos < reported_ + (256 << 10)) return;  // about a record at a time
    reported_ = pos;
    progress_(pos, done);
  }
  std::shared_ptr<RecordLog> log_;
  uint64_t from_, promise_, reported_ = 0;
  std::function<void(uint64_t, bool)> progress_;
};

}  // namespace

struct JobEdge::Impl {
  struct Job {
    push::JobObject object;
    std::string object_json;
    push::NodeRef self = push::kNoNode;
    std::unique_ptr<push::JobNodeCore> core;
    std::unique_ptr<push::JobBaseCore> base;
    std::shared_ptr<RecordLog> log;
    std::unique_ptr<RecordWriter> writer;  // the base's
    bool refused = false;                  // the offer's object is not the base's: dropped
    std::shared_ptr<std::atomic<uint64_t>> fetch_gen = std::make_shared<std::atomic<uint64_t>>(0);
    std::map<push::PeerIndex, Micros> child_seen;
    Micros wake = proto::kNever;
    // A node's states of the job's entries (items and commands), what the
    // base has acknowledged, and whether a command of it runs.
    std::map<uint32_t, push::EntryReport> entries;
    uint64_t entries_version = 0, entries_acked = 0;
    bool entries_sending = false, command_running = false;
    Micros entries_retry = 0;
    Micros last_active = 0;  // a fetch, a child or an offer
    uint64_t source_failures = 0;  // fetches that ended before the log's end
  };

  JobEdgeOptions opts;
  std::optional<GroupKey> report_key;
  std::mutex nonce_mu;
  auth::NonceCache nonces;
  std::unique_ptr<pushrun::EdgeLoop> loop;
  std::unique_ptr<Workers> workers;
  std::unique_ptr<Workers> commands;  // one at a time, node-wide
  std::map<std::string, Job> jobs;  // the loop thread's
  std::mutex threads_mu;
  std::vector<std::thread> fetchers;
  std::atomic<bool> stopping{false};

  std::string SelfName() const { return opts.base ? std::string(auth::kCcmName) : opts.name; }

  http::HeaderList Stamp(const std::string& to, const std::string& path, const std::string& body) const {
    if (!report_key) return {};
    auth::Stamp st;
    st.alg = auth::Alg::kMac;
    st.from = SelfName();
    st.to = to;
    st.exp = WallSeconds() + 300;
    st.nonce = NewNonce();
    auth::Mac(&st, *report_key, "POST", path, body);
    return {{auth::kHeader, auth::Format(st)}};
  }

  // A POST's CM-Auth: ok, and *from holds the sender; else the refusal.
  std::optional<http::Response> Check(const http::Request& req, std::string* from) {
    if (!report_key) return std::nullopt;
    auth::Expectation want;
    want.alg = auth::Alg::kMac;
    std::string self = SelfName();
    want.to = self;
    want.report_key = &*report_key;
    auth::Stamp st;
    auth::Verdict v;
    {
      std::lock_guard<std::mutex> lock(nonce_mu);
      v = auth::Verify(req.header(auth::kHeaderLower), "POST", req.path(), req.body, want, WallSeconds(), &nonces, &st);
    }
    if (v != auth::Verdict::kOk) return JsonError(auth::VerdictStatus(v), auth::VerdictText(v));
    *from = st.from;
    return std::nullopt;
  }

  // ---- on the loop thread ----

  void OnTimer(Micros now) {
    for (auto& [id, j] : jobs) {
      // Children that stopped asking have left (switched, or died).
      for (auto it = j.child_seen.begin(); it != j.child_seen.end();) {
        if (now - it->second >= opts.child_idle) {
          push::JobNodeActions out;
          j.core->OnChildProgress(now, it->first, 0, false, true, &out);
          it = j.child_seen.erase(it);
          Apply(id, j, out);
        } else {
          ++it;
        }
      }
      if (now >= j.wake) {
        push::JobNodeActions out;
        j.core->OnTimer(now, &out);
        Apply(id, j, out);
      }
      if (j.base) {
        for (push::PeerIndex p : j.base->DueProbes(now)) Probe(id, j, p);
      } else {
        // A fetcher tells the loop of its records at most every 100 ms; the
        // last ones before a pause (a command queued after an item, a quiet
        // stream) are taken up here.
        if (!j.refused && j.core->View().in_job && j.log->size() > j.core->View().pos) {
          push::JobNodeActions out;
          j.core->OnFetchProgress(now, j.log->size(), j.log->complete(), false, &out);
          Apply(id, j, out);
          UpdateEntries(id, j);
        }
        if (j.entries_acked != j.entries_version && now >= j.entries_retry) SendEntries(id, j);
      }
    }
    ForgetIdle(now);
    Rearm(now);
  }

  // ---- entries: items received, commands run (docs/protocol/jobs.md, "Commands") ----

  std::string EntriesPath(const std::string& id) const { return opts.dir + "/" + id + ".entries"; }

  std::vector<push::EntryReport> EntryList(const Job& j) const {
    std::vector<push::EntryReport> list;
    for (const auto& [e, r] : j.entries) list.push_back(r);
    return list;
  }

  // After a restart: what the node had done. A command that was running
  // when it stopped runs again.
  void LoadEntries(const std::string& id, Job& j) {
    auto text = ReadFileToString(EntriesPath(id));
    if (!text.ok()) return;
    auto b = push::ParseJobEntries(*text);
    if (!b.ok() || b->job != id) return;
    for (push::EntryReport r : b->entries) {
      if (r.state == push::EntryState::kInProgress) r.state = push::EntryState::kNew;
      j.entries[r.entry] = r;
    }
    if (!j.entries.empty()) ++j.entries_version;
  }

  void EntriesChanged(const std::string& id, Job& j) {
    ++j.entries_version;
    push::JobEntriesBody b{id, static_cast<push::PeerIndex>(j.self), EntryList(j)};
    if (Status s = WriteFileAtomic(EntriesPath(id), push::Encode(b), 0600); !s.ok()) {
      log::Warn("job " + id + ": " + s.ToString());
    }
    SendEntries(id, j);
  }

  void SendEntries(const std::string& id, Job& j) {
    if (j.entries_sending || j.self < 0 || j.object.base_url.empty()) return;
    j.entries_sending = true;
    uint64_t version = j.entries_version;
    std::string url = j.object.base_url + "/v1/job-entries";
    std::string body = push::Encode(push::JobEntriesBody{id, static_cast<push::PeerIndex>(j.self), EntryList(j)});
    http::HeaderList stamp = Stamp(auth::kCcmName, "/v1/job-entries", body);
    auto timeout = opts.call_timeout;
    workers->Run([this, id, version, url, body, stamp, timeout] {
      thread_local http::Client client;
      auto resp = client.Call("POST", url, body, timeout, "application/json", stamp);
      // 404: the base has retired the job (it is over there): nothing to send any more.
      bool ok = resp.ok() && (resp->status == 200 || resp->status == 404);
      loop->Post([this, id, version, ok] {
        auto it = jobs.find(id);
        if (it == jobs.end()) return;
        Job& j = it->second;
        j.entries_sending = false;
        if (ok) j.entries_acked = std::max(j.entries_acked, version);
        else j.entries_retry = SteadyNow() + proto::kSeconds;
        if (j.entries_acked != j.entries_version && ok) SendEntries(id, j);
      });
    });
  }

  // Items whose END record is in are received; the next command whose
  // record is in runs when no command of the job runs.
  void UpdateEntries(const std::string& id, Job& j) {
    if (opts.base || j.refused) return;
    bool changed = false;
    std::string failed;  // a failed command: the ones after it are not run
    std::vector<JobItemRef> since_stage;
    for (const RecordLog::ItemInfo& it : j.log->Items()) {
      push::EntryReport& e = j.entries[it.id];
      e.entry = it.id;
      if (it.kind != "command") {
        if (it.ended && e.state == push::EntryState::kNew) {
          e.state = push::EntryState::kDone;
          changed = true;
        }
        if (it.kind == "assignment") since_stage.push_back({it.id, it.kind, it.name, it.path});
        continue;
      }
      if (e.state == push::EntryState::kDone) {
        if (it.name == "stage") since_stage.clear();
        continue;
      }
      if (e.state == push::EntryState::kFailed) {
        if (failed.empty()) failed = std::to_string(it.id);
        continue;
      }
      if (e.state == push::EntryState::kInProgress || j.command_running) break;
      if (!failed.empty()) {
        e.state = push::EntryState::kFailed;
        e.error = "not run: command " + failed + " failed";
        changed = true;
        continue;
      }
      if (!it.ended) break;
      e.state = push::EntryState::kInProgress;
      changed = true;
      j.command_running = true;
      JobCommand c{id, it.id, it.name, it.arg, it.name == "stage" ? since_stage : std::vector<JobItemRef>{}};
      commands->Run([this, c] {
        Status st = opts.run_command ? opts.run_command(c, &stopping)
                                     : Error(Code::kUsage, "this node runs no commands");
        loop->Post([this, c, st] { CommandDone(c.job, c.entry, st); });
      });
      break;
    }
    if (changed) EntriesChanged(id, j);
  }

  void CommandDone(const std::string& id, uint32_t entry, const Status& st) {
    auto it = jobs.find(id);
    if (it == jobs.end()) return;
    Job& j = it->second;
    j.command_running = false;
    push::EntryReport& e = j.entries[entry];
    e.entry = entry;
    e.state = st.ok() ? push::EntryState::kDone : push::EntryState::kFailed;
    e.error = st.ok() ? "" : st.message();
    if (!st.ok()) log::Warn("job " + id + ": command " + std::to_string(entry) + " failed: " + st.message());
    j.last_active = SteadyNow();
    EntriesChanged(id, j);
    UpdateEntries(id, j);
  }

  // Jobs that are over here: dropped from memory (their files stay).
  void ForgetIdle(Micros now) {
    if (opts.base) return;
    for (auto it = jobs.begin(); it != jobs.end();) {
      Job& j = it->second;
      bool final = !j.command_running && j.entries_acked == j.entries_version &&
                   std::all_of(j.entries.begin(), j.entries.end(), [](const auto& e) {
                     return e.second.state == push::EntryState::kDone || e.second.state == push::EntryState::kFailed;
                   });
      bool idle = j.child_seen.empty() && now - j.last_active >= opts.forget_after;
      if ((j.refused || (j.log->complete() && final)) && idle) {
        j.fetch_gen->fetch_add(1);
        j.log->Wake();
        it = jobs.erase(it);
      } else {
        ++it;
      }
    }
  }

  void Rearm(Micros now) {
    Micros w = now + 250 * proto::kMillis;  // children's idleness and the base's probes
    for (auto& [id, j] : jobs) w = std::min(w, j.wake);
    loop->SetTimer(w);
  }

  void Apply(const std::string& id, Job& j, const push::JobNodeActions& a) {
    j.wake = a.wake_at;  // each event's wake-up replaces the last
    for (const push::JobCall& c : a.calls) MakeCall(id, j, c);
    if (a.stop_fetch) j.fetch_gen->fetch_add(1);
    if (a.fetch) StartFetch(id, j, *a.fetch);
  }

  std::string UrlOf(const Job& j, push::NodeRef r) const {
    if (r == push::kBaseNode) return j.object.base_url;
    if (r >= 0 && static_cast<size_t>(r) < j.object.servers.size()) return j.object.servers[r].url;
    return {};
  }

  void Done(const std::string& id, push::JobCallResult r) {
    loop->Post([this, id, r] {
      auto it = jobs.find(id);
      if (it == jobs.end()) return;
      push::JobNodeActions out;
      it->second.core->OnCallDone(SteadyNow(), r, &out);
      Apply(id, it->second, out);
    });
  }

  // The base answers its own core's calls here, on the loop.
  push::JobCallResult AnswerLocally(Job& j, const push::JobCall& c) {
    Micros now = SteadyNow();
    push::JobCallResult r{c.id, true};
    switch (c.kind) {
      case push::JobCall::Kind::kProgress: j.base->OnProgress(now, c.progress); break;
      case push::JobCall::Kind::kHelp: {
        auto h = j.base->OnHelp(now, push::kBaseNode, c.help);
        r.target = h.target;
        r.finished = h.finished;
        r.relieve = h.relieve;
        r.rate_bps = h.rate_bps;
        break;
      }
      case push::JobCall::Kind::kSourceFailed: r.source = j.base->OnSourceFailed(now, c.source_failed); break;
      case push::JobCall::Kind::kUnreachable: j.base->OnUnreachable(now, c.unreachable); break;
      case push::JobCall::Kind::kOffer: r.ok = false; break;
    }
    return r;
  }

  void MakeCall(const std::string& id, Job& j, const push::JobCall& c) {
    if (c.kind != push::JobCall::Kind::kOffer && j.base) {
      push::JobCallResult r = AnswerLocally(j, c);
      Done(id, r);
      return;
    }
    std::string url, body, to = auth::kCcmName, path;
    switch (c.kind) {
      case push::JobCall::Kind::kOffer: {
        url = UrlOf(j, c.to) + "/v1/job-offer";
        if (c.to >= 0 && static_cast<size_t>(c.to) < j.object.servers.size()) to = j.object.servers[c.to].name;
        push::JobOfferBody ob{id, c.offer, opts.url};
        body = JsonObject().Str("object", j.object_json).Str("offer", push::Encode(ob)).Build();
        break;
      }
      case push::JobCall::Kind::kProgress: {
        push::JobProgressBody pb{id, c.progress, {}};
        url = j.object.base_url + "/v1/job-progress";
        body = push::Encode(pb);
        break;
      }
      case push::JobCall::Kind::kHelp:
        url = j.object.base_url + "/v1/job-help";
        body = push::Encode(push::JobHelpBody{id, c.help});
        break;
      case push::JobCall::Kind::kSourceFailed:
        url = j.object.base_url + "/v1/job-source-failed";
        body = push::Encode(push::JobSourceFailedBody{id, c.source_failed});
        break;
      case push::JobCall::Kind::kUnreachable:
        url = j.object.base_url + "/v1/job-unreachable";
        body = push::Encode(push::JobUnreachableBody{id, c.unreachable});
        break;
    }
    push::JobCall call = c;
    auto timeout = opts.call_timeout;
    path = url.substr(url.find("/v1/"));
    http::HeaderList stamp = Stamp(to, path, body);
    workers->Run([this, id, call, url, body, timeout, stamp] {
      thread_local http::Client client;
      push::JobCallResult r{call.id, false};
      auto resp = client.Call("POST", url, body, timeout, "application/json", stamp);
      if (resp.ok() && resp->status == 200) {
        r.ok = true;
        switch (call.kind) {
          case push::JobCall::Kind::kOffer: {
            auto a = push::ParseOfferAnswer(resp->body);
            r.ok = a.ok();
            if (a.ok()) r.offer = *a;
            break;
          }
          case push::JobCall::Kind::kHelp: {
            auto h = push::ParseJobHelpReply(resp->body);
            r.ok = h.ok();
            if (h.ok()) {
              r.target = h->target;
              r.finished = h->finished;
              r.relieve = h->relieve;
              r.rate_bps = h->rate_bps;
            }
            break;
          }
          case push::JobCall::Kind::kSourceFailed: {
            auto s = push::ParseSourceReply(resp->body);
            r.ok = s.ok();
            if (s.ok()) r.source = *s;
            break;
          }
          default: break;
        }
      }
      Done(id, r);
    });
  }

  void Probe(const std::string& id, Job& j, push::PeerIndex p) {
    std::string url = UrlOf(j, p) + "/v1/jobs/" + id + "/status";
    auto timeout = opts.call_timeout;
    workers->Run([this, id, p, url, timeout] {
      thread_local http::Client client;
      bool reachable = false, in_job = false, complete = false;
      uint64_t pos = 0;
      auto resp = client.Call("GET", url, "", timeout);
      if (resp.ok() && (resp->status == 200 || resp->status == 404)) {
        reachable = true;
        if (resp->status == 200) {
          auto v = ParseJson(resp->body);
          if (v.ok() && v->is_object()) {
            in_job = v->Bool("in_job");
            pos = v->Uint("pos");
            complete = v->Bool("complete");
          }
        }
      }
      loop->Post([this, id, p, reachable, in_job, pos, complete] {
        auto it = jobs.find(id);
        if (it == jobs.end() || !it->second.base) return;
        it->second.base->OnProbeDone(SteadyNow(), p, reachable, in_job, pos, complete);
      });
    });
  }

  void StartFetch(const std::string& id, Job& j, const push::JobFetch& f) {
    if (j.refused) return;
    uint64_t gen = j.fetch_gen->fetch_add(1) + 1;
    std::string source = UrlOf(j, f.source);
    auto log = j.log;
    auto gen_ptr = j.fetch_gen;
    std::string self = std::to_string(j.self);
    std::string object = j.object_json;
    std::lock_guard<std::mutex> lock(threads_mu);
    if (stopping) return;
    fetchers.emplace_back(
        [this, id, gen, gen_ptr, source, log, self, object] { Fetch(id, gen, gen_ptr, source, log, self, object); });
  }

  void PostFetchEvent(const std::string& id, uint64_t gen, std::shared_ptr<std::atomic<uint64_t>> gen_ptr, uint64_t pos,
                      bool complete, bool ended, bool refused) {
    loop->Post([this, id, gen, gen_ptr, pos, complete, ended, refused] {
      if (gen_ptr->load() != gen) return;
      auto it = jobs.find(id);
      if (it == jobs.end()) return;
      if (refused) {
        it->second.refused = true;
        gen_ptr->fetch_add(1);
        return;
      }
      push::JobNodeActions out;
      if (ended && !complete) ++it->second.source_failures;
      it->second.core->OnFetchProgress(SteadyNow(), pos, complete, ended, &out);
      it->second.last_active = SteadyNow();
      Apply(id, it->second, out);
      UpdateEntries(id, it->second);
    });
  }

  // On a fetcher thread: pull the log from `source` until it is whole, the
  // fetch is replaced, or the source fails (unreachable, or a record that
  // does not verify).
  void Fetch(const std::string& id, uint64_t gen, std::shared_ptr<std::atomic<uint64_t>> gen_ptr, std::string source,
             std::shared_ptr<RecordLog> log, std::string self, std::string object) {
    bool failed = false;
    std::string why;
    // One streamed answer carries the log as it arrives; records are checked
    // and kept as they complete, and the answer resumes where it broke.
    while (!stopping && gen_ptr->load() == gen && !log->complete()) {
      uint64_t from = log->size();
      std::string url = source + "/v1/jobs/" + id + "/log?from=" + std::to_string(from) + "&node=" + self + "&stream=1";
      std::string buf;
      Status sink_error = Status::Ok();
      bool refused = false;
      auto last_post = std::chrono::steady_clock::now() - std::chrono::seconds(1);
      auto sink = [&](std::string_view bytes) -> Status {
        if (gen_ptr->load() != gen) return Error(Code::kBusy, "replaced");
        buf.append(bytes);
        size_t whole = 0;
        while (whole < buf.size()) {
          auto n = push::NextChunkRecordSize(std::string_view(buf).substr(whole));
          if (!n.ok()) return n.status();
          if (*n == 0 || whole + *n > buf.size()) break;
          whole += *n;
        }
        if (whole == 0) return Status::Ok();
        Status s = log->Accept(log->size(), std::string_view(buf).substr(0, whole));
        buf.erase(0, whole);
        if (!s.ok()) return s;
        std::string signed_object = log->object_json();
        if (!signed_object.empty() && signed_object != object) {
          refused = true;
          return Error(Code::kAuth, "the offer's job object is not the one the base signed");
        }
        auto now = std::chrono::steady_clock::now();
        if (log->complete() || now - last_post >= std::chrono::milliseconds(100)) {
          last_post = now;
          PostFetchEvent(id, gen, gen_ptr, log->size(), log->complete(), log->complete(), false);
        }
        if (log->complete()) return Error(Code::kBusy, "whole");  // done: stop reading
        return Status::Ok();
      };
      http::FetchOptions fo;
      fo.connect_timeout = opts.call_timeout;
      fo.idle_timeout = opts.poll * 10;  // a source that sends nothing this long has failed
      fo.cancel = &stopping;
      Status st = http::FetchRange(url, 0, std::nullopt, sink, fo);
      if (refused) {
        log::Warn("job " + id + ": the offer's job object is not the one the base signed: dropped");
        PostFetchEvent(id, gen, gen_ptr, 0, false, false, true);
        return;
      }
      if (log->complete() || gen_ptr->load() != gen || stopping) break;
      if (st.code() == Code::kBusy) continue;  // a replaced fetch appended first: ask again from the end
      if (st.ok() || (st.code() == Code::kIo && log->size() > from)) continue;  // it broke after some bytes: resume
      // Nothing came for a while: a live stream may just be quiet. A source
      // that answers and holds no more than we do has not failed.
      if (log->size() == from && SourceHasNoMore(source, id, from)) continue;
      failed = true;
      why = st.ok() ? "the answer ended early" : st.ToString();
      break;
    }
    if (log->complete()) PostFetchEvent(id, gen, gen_ptr, log->size(), true, true, false);
    if (failed && !stopping) {
      log::Warn("job " + id + ": source " + source + " failed at " + std::to_string(log->size()) + ": " + why);
      PostFetchEvent(id, gen, gen_ptr, log->size(), false, true, false);
    }
  }

  // On a fetcher thread: the source answers its status and is at `pos` (a
  // quiet stream), not ahead of us and not at the log's end.
  bool SourceHasNoMore(const std::string& source, const std::string& id, uint64_t pos) {
    thread_local http::Client client;
    auto resp = client.Call("GET", source + "/v1/jobs/" + id + "/status", "", opts.call_timeout);
    if (!resp.ok() || resp->status != 200) return false;
    auto v = ParseJson(resp->body);
    return v.ok() && v->is_object() && v->Bool("in_job") && !v->Bool("complete") && v->Uint("pos") <= pos;
  }

  Status NewJob(const push::JobObject& object, std::string object_json, push::NodeRef self, Job** out) {
    Job j;
    j.object = object;
    j.object_json = std::move(object_json);
    j.self = self;
    std::error_code ec;
    std::filesystem::create_directories(opts.dir, ec);
    auto log = RecordLog::Open(opts.dir + "/" + object.job + ".log", object.job, opts.key,
                               opts.base ? std::string() : opts.dir + "/" + object.job);
    if (!log.ok()) return log.status();
    j.log = std::move(log).value();
    if (opts.base) {
      if (!opts.sign_key) return Error(Code::kUsage, "the base needs its signing key");
      j.writer = std::make_unique<RecordWriter>(*opts.sign_key, object.job);
    }
    std::vector<push::FanPeer> peers = push::PeersOf(object);
    // Our upload rate: configured, else what the base measured for our site in earlier jobs.
    double up = opts.up_bps;
    if (up <= 0 && self >= 0 && static_cast<size_t>(self) < object.servers.size()) up = object.servers[self].up_bps;
    j.core = std::make_unique<push::JobNodeCore>(peers, self, up, opts.node);
    if (opts.base) {
      j.base = std::make_unique<push::JobBaseCore>(peers, opts.base_opts);
      j.base->Start(SteadyNow());
    } else {
      j.core->Restore(j.log->size(), j.log->complete());
      LoadEntries(object.job, j);
    }
    j.last_active = SteadyNow();
    Job* added = &jobs.emplace(object.job, std::move(j)).first->second;
    UpdateEntries(object.job, *added);
    if (added->entries_acked != added->entries_version) SendEntries(object.job, *added);
    *out = added;
    return Status::Ok();
  }

  // ---- HTTP handlers (connection threads) ----

  http::Response HandleOffer(const http::Request& req) {
    std::string sender;
    if (auto refused = Check(req, &sender)) return *refused;
    auto v = ParseJson(req.body);
    if (!v.ok() || !v->is_object()) return JsonError(400, "job offer: not a JSON object");
    auto object = push::ParseJobObject(v->Str("object"));
    if (!object.ok()) return JsonError(400, object.status().message());
    auto offer = push::ParseJobOffer(v->Str("offer"));
    if (!offer.ok()) return JsonError(400, offer.status().message());
    if (offer->job != object->job || !push::IsValidChunkJobId(object->job)) return JsonError(400, "job offer: bad job name");
    if (opts.base) return JsonError(409, "the base takes no offers");
    push::NodeRef self = push::kNoNode;
    for (size_t i = 0; i < object->servers.size(); ++i) {
      if (object->servers[i].name == opts.name) self = static_cast<push::NodeRef>(i);
    }
    if (self == push::kNoNode) return JsonError(403, "job offer: " + opts.name + " is not a server of " + object->job);
    if (report_key) {
      push::NodeRef f = offer->offer.from;
      std::string claimed = f == push::kBaseNode ? std::string(auth::kCcmName)
                            : f >= 0 && static_cast<size_t>(f) < object->servers.size() ? object->servers[f].name
                                                                                         : std::string();
      if (claimed != sender) return JsonError(403, "forbidden: " + sender + " offers as " + claimed);
    }
    std::string object_json = push::Encode(*object);
    return loop->Run([&]() -> http::Response {
      auto it = jobs.find(object->job);
      Job* j = nullptr;
      if (it == jobs.end()) {
        if (jobs.size() >= opts.max_jobs) return JsonError(503, "job offer: this node takes part in too many jobs");
        Status s = NewJob(*object, object_json, self, &j);
        if (!s.ok()) return JsonError(500, s.ToString());
      } else {
        j = &it->second;
      }
      push::JobNodeActions out;
      j->last_active = SteadyNow();
      push::OfferAnswer a = j->core->OnOffer(SteadyNow(), offer->offer, &out);
      Apply(object->job, *j, out);
      Rearm(SteadyNow());
      return http::Response::Json(200, push::Encode(a));
    });
  }

  http::Response HandleLog(const http::Request& req, const std::string& job) {
    uint64_t from = 0, node = UINT64_MAX;
    if (!ParseU64(QueryParam(req.target, "from"), &from)) return JsonError(400, "log: bad or missing from=");
    std::string n = QueryParam(req.target, "node");
    if (!n.empty() && n != "-1" && !ParseU64(n, &node)) return JsonError(400, "log: bad node=");
    std::shared_ptr<RecordLog> log = loop->Run([&]() -> std::shared_ptr<RecordLog> {
      auto it = jobs.find(job);
      return it == jobs.end() || it->second.refused ? nullptr : it->second.log;
    });
    if (!log) return JsonError(404, "no job " + job);
    if (QueryParam(req.target, "stream") == "1") {
      // The bytes as they arrive, on one answer (up to 1 TiB promised).
      auto report = [this, job, node](uint64_t pos, bool done) { ChildProgress(job, node, pos, done); };
      http::Response r;
      r.content_type = "application/octet-stream";
      r.stream = std::make_shared<LogBody>(log, from, uint64_t{1} << 40, node == UINT64_MAX ? nullptr
                                                                                            : std::function<void(uint64_t, bool)>(report));
      return r;
    }
    uint64_t max = opts.max_read;
    if (uint64_t asked = 0; ParseU64(QueryParam(req.target, "max"), &asked) && asked > 0) max = std::min(max, asked);
    auto bytes = log->Read(from, static_cast<size_t>(max), opts.poll);
    if (!bytes.ok()) return JsonError(416, bytes.status().message());
    uint64_t pos = from + bytes->size();
    bool done = log->complete() && pos == log->size();
    if (node != UINT64_MAX) ChildProgress(job, node, pos, done);
    http::Response r;
    r.content_type = "application/octet-stream";
    r.body = std::move(bytes).value();
    return r;
  }

  void ChildProgress(const std::string& job, uint64_t node, uint64_t pos, bool done) {
    loop->Post([this, job, node, pos, done] {
      auto it = jobs.find(job);
      if (it == jobs.end() || node >= it->second.object.servers.size()) return;
      Job& j = it->second;
      Micros now = SteadyNow();
      push::JobNodeActions out;
      j.core->OnChildProgress(now, static_cast<push::PeerIndex>(node), pos, done, done, &out);
      j.last_active = now;
      if (done) {
        j.child_seen.erase(static_cast<push::PeerIndex>(node));
      } else {
        j.child_seen[static_cast<push::PeerIndex>(node)] = now;
      }
      Apply(job, j, out);
    });
  }

  http::Response HandleStatus(const std::string& job) {
    return loop->Run([&]() -> http::Response {
      auto it = jobs.find(job);
      if (it == jobs.end()) return JsonError(404, "no job " + job);
      push::JobNodeView v = it->second.core->View();
      uint64_t pos = std::max(v.pos, it->second.log->size());  // the log is ahead of the core's last event
      return http::Response::Json(
          200, JsonObject().Bool("in_job", v.in_job).Uint("pos", pos).Bool("complete", v.complete).Build());
    });
  }

  // The sender a stamp names must be the node the body speaks for.
  std::optional<http::Response> Speaks(const std::string& job, uint64_t node, const std::string& sender) {
    if (!report_key) return std::nullopt;
    bool ok = loop->Run([&] {
      auto it = jobs.find(job);
      return it != jobs.end() && node < it->second.object.servers.size() &&
             it->second.object.servers[node].name == sender;
    });
    if (!ok) return JsonError(403, "forbidden: " + sender + " speaks for another node of " + job);
    return std::nullopt;
  }

  http::Response HandleBaseCall(const std::string& path, const http::Request& req) {
    if (!opts.base) return JsonError(404, "not the base: " + path);
    std::string sender;
    if (auto refused = Check(req, &sender)) return *refused;
    Micros now = SteadyNow();
    if (path == "/v1/job-progress") {
      auto b = push::ParseJobProgress(req.body);
      if (!b.ok()) return JsonError(400, b.status().message());
      if (auto refused = Speaks(b->job, b->progress.node, sender)) return *refused;
      std::string moved;  // the node's name when it moved forward
      http::Response r = loop->Run([&]() -> http::Response {
        auto it = jobs.find(b->job);
        if (it == jobs.end()) return JsonError(404, "no job " + b->job);
        std::vector<push::JobNodeState> before = it->second.base->nodes();
        size_t n = static_cast<size_t>(b->progress.node);
        if (n < before.size() && (b->progress.pos > before[n].pos || (b->progress.complete && !before[n].complete))) {
          moved = it->second.object.servers[n].name;
        }
        it->second.base->OnProgress(now, b->progress);
        return http::Response::Json(200, "{}");
      });
      if (!moved.empty() && opts.on_entries) opts.on_entries(b->job, moved, {}, true);
      return r;
    }
    if (path == "/v1/job-entries") {
      auto b = push::ParseJobEntries(req.body);
      if (!b.ok()) return JsonError(400, b.status().message());
      if (auto refused = Speaks(b->job, b->node, sender)) return *refused;
      std::string name = loop->Run([&]() -> std::string {
        auto it = jobs.find(b->job);
        if (it == jobs.end() || static_cast<size_t>(b->node) >= it->second.object.servers.size()) return {};
        return it->second.object.servers[b->node].name;
      });
      if (name.empty()) return JsonError(404, "no job " + b->job + " with node " + std::to_string(b->node));
      if (opts.on_entries) opts.on_entries(b->job, name, b->entries, false);
      return http::Response::Json(200, "{}");
    }
    if (path == "/v1/job-help") {
      auto b = push::ParseJobHelp(req.body);
      if (!b.ok()) return JsonError(400, b.status().message());
      if (auto refused = Speaks(b->job, b->ask.node, sender)) return *refused;
      return loop->Run([&]() -> http::Response {
        auto it = jobs.find(b->job);
        if (it == jobs.end()) return JsonError(404, "no job " + b->job);
        auto h = it->second.base->OnHelp(now, b->ask.node, b->ask);
        return http::Response::Json(200, push::Encode(push::JobHelpReply{h.target, h.finished, h.relieve, h.rate_bps}));
      });
    }
    if (path == "/v1/job-source-failed") {
      auto b = push::ParseJobSourceFailed(req.body);
      if (!b.ok()) return JsonError(400, b.status().message());
      if (auto refused = Speaks(b->job, b->msg.node, sender)) return *refused;
      return loop->Run([&]() -> http::Response {
        auto it = jobs.find(b->job);
        if (it == jobs.end()) return JsonError(404, "no job " + b->job);
        return http::Response::Json(200, push::EncodeSourceReply(it->second.base->OnSourceFailed(now, b->msg)));
      });
    }
    if (path == "/v1/job-unreachable") {
      auto b = push::ParseJobUnreachable(req.body);
      if (!b.ok()) return JsonError(400, b.status().message());
      if (b->msg.from >= 0) {
        if (auto refused = Speaks(b->job, static_cast<uint64_t>(b->msg.from), sender)) return *refused;
      }
      return loop->Run([&]() -> http::Response {
        auto it = jobs.find(b->job);
        if (it == jobs.end()) return JsonError(404, "no job " + b->job);
        it->second.base->OnUnreachable(now, b->msg);
        return http::Response::Json(200, "{}");
      });
    }
    return JsonError(404, "no such resource: " + path);
  }
};

JobEdge::JobEdge(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<JobEdge>> JobEdge::Start(JobEdgeOptions opts) {
  if (opts.url.empty()) return Error(Code::kUsage, "job edge: no url");
  if (!opts.base && opts.name.empty()) return Error(Code::kUsage, "job edge: a node needs its name");
  if (opts.dir.empty()) return Error(Code::kUsage, "job edge: no directory for the logs");
  auto impl = std::make_unique<Impl>();
  if (opts.group_key) impl->report_key = auth::ReportKey(*opts.group_key);
  impl->opts = std::move(opts);
  Impl* raw = impl.get();
  impl->loop = std::make_unique<pushrun::EdgeLoop>([raw](Micros now) { raw->OnTimer(now); });
  impl->workers = std::make_unique<Workers>(impl->opts.workers);
  impl->commands = std::make_unique<Workers>(1);
  impl->loop->SetTimer(SteadyNow() + 250 * proto::kMillis);
  return std::unique_ptr<JobEdge>(new JobEdge(std::move(impl)));
}

JobEdge::~JobEdge() { Stop(); }

void JobEdge::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  // Wake readers and fetchers, end the loop, join everything.
  impl_->loop->Run([this] {
    for (auto& [id, j] : impl_->jobs) {
      j.fetch_gen->fetch_add(1);
      j.log->Wake();
    }
    return 0;
  });
  impl_->workers->Stop();
  impl_->commands->Stop();
  std::vector<std::thread> fetchers;
  {
    std::lock_guard<std::mutex> lock(impl_->threads_mu);
    fetchers.swap(impl_->fetchers);
  }
  for (std::thread& t : fetchers) t.join();
  impl_->loop->Stop();
}

bool JobEdge::Owns(const std::string& path) {
  return path == "/v1/job-offer" || path.rfind("/v1/jobs/", 0) == 0 || path == "/v1/job-progress" ||
         path == "/v1/job-help" || path == "/v1/job-source-failed" || path == "/v1/job-unreachable" ||
         path == "/v1/job-entries";
}

http::Response JobEdge::Handle(const http::Request& req) {
  if (impl_->stopping) return JsonError(503, "shutting down");
  const std::string path = req.path();
  if (req.method == "POST" && path == "/v1/job-offer") return impl_->HandleOffer(req);
  if (req.method == "POST") return impl_->HandleBaseCall(path, req);
  if ((req.method == "GET" || req.method == "HEAD") && path.rfind("/v1/jobs/", 0) == 0) {
    std::string rest = path.substr(9);
    size_t slash = rest.find('/');
    if (slash == std::string::npos) return JsonError(404, "no such resource: " + path);
    std::string job = rest.substr(0, slash), what = rest.substr(slash + 1);
    if (!push::IsValidChunkJobId(job)) return JsonError(400, "bad job name");
    if (what == "log") return impl_->HandleLog(req, job);
    if (what == "status") return impl_->HandleStatus(job);
  }
  return JsonError(404, "no such resource: " + req.method + " " + path);
}

Status JobEdge::OpenJob(const push::JobObject& object) {
  if (!impl_->opts.base) return Error(Code::kUsage, "only the base opens jobs");
  if (!push::IsValidChunkJobId(object.job)) return Error(Code::kUsage, "bad job name: " + object.job);
  return impl_->loop->Run([&]() -> Status {
    if (impl_->jobs.count(object.job)) return Error(Code::kUsage, "job " + object.job + " is open already");
    Impl::Job* j = nullptr;
    CM_RETURN_IF_ERROR(impl_->NewJob(object, push::Encode(object), push::kBaseNode, &j));
    if (j->log->size() == 0) {
      CM_ASSIGN_OR_RETURN(std::string rec, j->writer->Object(j->object_json));
      CM_RETURN_IF_ERROR(j->log->Accept(0, rec));
    }
    push::JobNodeActions out;
    j->core->OnLocalAppend(SteadyNow(), j->log->size(), j->log->complete(), &out);
    impl_->Apply(object.job, *j, out);
    impl_->Rearm(SteadyNow());
    return Status::Ok();
  });
}

namespace {
template <typename F>
Status Write(JobEdge::Impl* impl, const std::string& job, F make) {
  return impl->loop->Run([&]() -> Status {
    auto it = impl->jobs.find(job);
    if (it == impl->jobs.end() || !it->second.writer) return Error(Code::kNotFound, "no job " + job + " of ours");
    auto& j = it->second;
    CM_ASSIGN_OR_RETURN(std::string records, make(*j.writer));
    CM_RETURN_IF_ERROR(j.log->Accept(j.log->size(), records));
    push::JobNodeActions out;
    j.core->OnLocalAppend(SteadyNow(), j.log->size(), j.log->complete(), &out);
    impl->Apply(job, j, out);
    return Status::Ok();
  });
}
}  // namespace

Status JobEdge::BeginItem(const std::string& job, uint32_t item, const std::string& kind, const std::string& name,
                          const std::string& arg) {
  return Write(impl_.get(), job, [&](RecordWriter& w) { return w.Begin(item, kind, name, arg); });
}

Status JobEdge::AddData(const std::string& job, uint32_t item, std::string_view bytes) {
  return Write(impl_.get(), job, [&](RecordWriter& w) { return w.Data(item, bytes); });
}

Status JobEdge::EndItem(const std::string& job, uint32_t item) {
  return Write(impl_.get(), job, [&](RecordWriter& w) { return w.EndItem(item); });
}

Status JobEdge::Finish(const std::string& job) {
  return Write(impl_.get(), job, [&](RecordWriter& w) { return w.EndJob(); });
}

JobEdgeView JobEdge::View(const std::string& job) {
  return impl_->loop->Run([&]() -> JobEdgeView {
    JobEdgeView v;
    auto it = impl_->jobs.find(job);
    if (it == impl_->jobs.end()) return v;
    v.known = true;
    v.node = it->second.core->View();
    v.log_size = it->second.log->size();
    v.complete = it->second.log->complete();
    v.source_failures = it->second.source_failures;
    return v;
  });
}

std::vector<push::JobNodeState> JobEdge::BaseView(const std::string& job) {
  return impl_->loop->Run([&]() -> std::vector<push::JobNodeState> {
    auto it = impl_->jobs.find(job);
    if (it == impl_->jobs.end() || !it->second.base) return {};
    return it->second.base->nodes();
  });
}

void JobEdge::Retire(const std::string& job) {
  impl_->loop->Run([&] {
    auto it = impl_->jobs.find(job);
    if (it == impl_->jobs.end() || !it->second.base) return 0;
    it->second.fetch_gen->fetch_add(1);
    it->second.log->Wake();
    impl_->jobs.erase(it);
    return 0;
  });
}

std::map<std::string, double> JobEdge::SiteRates(const std::string& job) {
  return impl_->loop->Run([&]() -> std::map<std::string, double> {
    std::map<std::string, double> out;
    auto it = impl_->jobs.find(job);
    if (it == impl_->jobs.end() || !it->second.base) return out;
    for (const push::JobServerInfo& s : it->second.object.servers) {
      double r = it->second.base->SiteRxEstimate(s.site);
      if (r > 0) out[s.site] = r;
    }
    return out;
  });
}

}  // namespace cm::jobrun
