#include "jobrun/base_service.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>

#include "jobrun/job_edge.h"
#include "util/file_util.h"
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
  std::mutex mu;  // jobs below
  struct Job {
    std::string id;
    std::vector<std::string> servers;
    uint32_t next_entry = 1;
    std::map<uint32_t, bool> open_streams;
    bool ended = false;
  };
  std::map<std::string, Job> jobs;

  bool Authorized(const http::Request& req) const {
    const std::string* t = req.header("x-cm-token");
    return t && t->size() == token.size() && sodium_memcmp(t->data(), token.data(), token.size()) == 0;
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
        object.servers.push_back({s->name, site.name, s->url, 0});
      }
    }
    for (const std::string& w : wanted) {
      if (!opts.sites.FindServer(w)) return JsonError(400, "open: no server " + w + " in " + opts.sites.source);
    }
    if (object.servers.empty()) return JsonError(400, "open: no servers");
    std::lock_guard<std::mutex> lock(mu);
    for (uint64_t n = 1;; ++n) {
      std::string id = client + "-" + std::to_string(n);
      if (jobs.count(id) || fs::exists(opts.state_dir + "/jobs/" + id + ".log")) continue;
      object.job = id;
      break;
    }
    Status s = edge->OpenJob(object);
    if (!s.ok()) return JsonError(500, s.ToString());
    Job& j = jobs[object.job];
    j.id = object.job;
    JsonArray names;
    for (const auto& srv : object.servers) {
      j.servers.push_back(srv.name);
      names.Str(srv.name);
    }
    return http::Response::Json(200, JsonObject().Str("job", object.job).Raw("servers", names.Build()).Build());
  }

  Result<Job*> Writable(const std::string& id) {
    auto it = jobs.find(id);
    if (it == jobs.end()) return Error(Code::kNotFound, "no job " + id);
    if (it->second.ended) return Error(Code::kUsage, "job " + id + " was ended");
    return &it->second;
  }

  http::Response Add(const http::Request& req) {
    auto v = ParseJson(req.body);
    if (!v.ok() || !v->is_object()) return JsonError(400, "add: not a JSON object");
    std::string id = v->Str("job"), path = v->Str("path");
    if (path.empty() || path[0] != '/') return JsonError(400, "add: the file's absolute path");
    std::lock_guard<std::mutex> lock(mu);
    auto j = Writable(id);
    if (!j.ok()) return JsonError(j.status().code() == Code::kNotFound ? 404 : 409, j.status().message());
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return JsonError(400, "add: " + ErrnoError(path, errno).message());
    uint32_t entry = (*j)->next_entry++;
    std::string buf(1 << 20, '\0');
    Status st = edge->BeginItem(id, entry, "file", fs::path(path).filename().string());
    while (st.ok()) {
      auto n = ReadFull(fd, buf.data(), buf.size());
      if (!n.ok()) {
        st = n.status();
        break;
      }
      if (*n == 0) break;
      st = edge->AddData(id, entry, std::string_view(buf.data(), *n));
      if (!st.ok() || *n < buf.size()) break;
    }
    ::close(fd);
    if (st.ok()) st = edge->EndItem(id, entry);
    if (!st.ok()) return JsonError(500, st.ToString());
    return http::Response::Json(200, JsonObject().Uint("entry", entry).Build());
  }

  http::Response Stream(const http::Request& req, const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    if (what == "stream") {
      auto v = ParseJson(req.body);
      if (!v.ok() || !v->is_object()) return JsonError(400, "stream: not a JSON object");
      auto j = Writable(v->Str("job"));
      if (!j.ok()) return JsonError(j.status().code() == Code::kNotFound ? 404 : 409, j.status().message());
      uint32_t entry = (*j)->next_entry++;
      std::string name = v->Str("name", "stream");
      if (Status b = edge->BeginItem((*j)->id, entry, "stream", name); !b.ok()) return JsonError(500, b.ToString());
      (*j)->open_streams[entry] = true;
      return http::Response::Json(200, JsonObject().Uint("entry", entry).Build());
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
    auto it = jobs.find(id);
    if (it == jobs.end()) return JsonError(404, "no job " + id);
    auto os = it->second.open_streams.find(static_cast<uint32_t>(entry));
    if (os == it->second.open_streams.end() || !os->second) return JsonError(409, "no open stream " + std::to_string(entry));
    Status st = what == "stream-data" ? (req.body.empty() ? Status::Ok() : edge->AddData(id, os->first, req.body))
                                      : edge->EndItem(id, os->first);
    if (!st.ok()) return JsonError(500, st.ToString());
    if (what == "stream-end") os->second = false;
    return http::Response::Json(200, "{}");
  }

  http::Response End(const http::Request& req) {
    auto v = ParseJson(req.body);
    if (!v.ok() || !v->is_object()) return JsonError(400, "end: not a JSON object");
    std::string id = v->Str("job");
    std::lock_guard<std::mutex> lock(mu);
    auto it = jobs.find(id);
    if (it == jobs.end()) return JsonError(404, "no job " + id);
    if (it->second.ended) return http::Response::Json(200, "{}");
    for (auto& [e, open] : it->second.open_streams) {
      if (open) {
        if (Status s = edge->EndItem(id, e); !s.ok()) return JsonError(500, s.ToString());
        open = false;
      }
    }
    Status s = edge->Finish(id);
    if (!s.ok()) return JsonError(500, s.ToString());
    it->second.ended = true;
    return http::Response::Json(200, "{}");
  }

  // The job as the base sees it; *done when every server holds all of it.
  std::string StatusJson(const std::string& id, bool* done) {
    std::vector<std::string> servers;
    bool ended = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = jobs.find(id);
      if (it == jobs.end()) return {};
      servers = it->second.servers;
      ended = it->second.ended;
    }
    JobEdgeView base = edge->View(id);
    std::vector<push::JobNodeState> nodes = edge->BaseView(id);
    JsonArray arr;
    size_t complete = 0;
    for (size_t i = 0; i < servers.size() && i < nodes.size(); ++i) {
      const push::JobNodeState& n = nodes[i];
      complete += n.complete;
      const char* state = n.complete ? "received" : n.down ? "down" : n.heard ? "receiving" : "pending";
      arr.Raw(JsonObject()
                  .Str("name", servers[i])
                  .Str("state", state)
                  .Uint("pos", n.pos)
                  .Int("source", n.source)
                  .Uint("rx_bps", static_cast<uint64_t>(n.rx_bps))
                  .Build());
    }
    *done = ended && complete == servers.size();
    return JsonObject()
        .Str("job", id)
        .Bool("ended", ended)
        .Uint("size", base.log_size)
        .Uint("complete", complete)
        .Uint("total", servers.size())
        .Bool("done", *done)
        .Raw("servers", arr.Build())
        .Build();
  }

  http::Response StatusReq(const http::Request& req) {
    bool done = false;
    std::string body = StatusJson(QueryParam(req.target, "job"), &done);
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
  CM_ASSIGN_OR_RETURN(impl->edge, JobEdge::Start(eo));
  impl->opts = std::move(opts);
  return std::unique_ptr<BaseService>(new BaseService(std::move(impl)));
}

void BaseService::Stop() {
  if (impl_ && impl_->edge) impl_->edge->Stop();
}

http::Response BaseService::Handle(const http::Request& req) {
  const std::string path = req.path();
  if (path.rfind("/v1/client/", 0) == 0) {
    if (!impl_->Authorized(req)) return JsonError(403, "forbidden: the token from STATE/base.token is needed");
    std::string what = path.substr(11);
    if (req.method == "POST" && what == "open") return impl_->Open(req);
    if (req.method == "POST" && what == "add") return impl_->Add(req);
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
