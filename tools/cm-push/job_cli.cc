// `cm-push base` and `cm-push job ...`. See job_cli.h.
#include "job_cli.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "http/client.h"
#include "http/server.h"
#include "jobrun/base_service.h"
#include "pack/keys.h"
#include "push/sites.h"
#include "util/command_template.h"
#include "util/config_dir.h"
#include "util/exit_codes.h"
#include "util/group_key.h"
#include "util/json.h"
#include "util/json_value.h"
#include "util/log.h"

namespace cm {
namespace {

using namespace std::chrono_literals;

int Fail(const Status& st) {
  log::Error(st.message());
  return ExitCodeFor(st);
}

struct Client {
  std::string url, token;
  http::Client http;

  Result<JsonValue> Call(const std::string& method, const std::string& path, const std::string& body,
                         std::string* raw = nullptr, std::chrono::milliseconds timeout = 30s) {
    auto r = http.Call(method, url + path, body, timeout, "application/json", {{"X-CM-Token", token}});
    if (!r.ok()) return r.status();
    if (raw) *raw = r->body;
    auto v = ParseJson(r->body);
    if (r->status != 200) {
      std::string msg = v.ok() && v->is_object() ? v->Str("error") : r->body;
      Code c = r->status == 404                       ? Code::kNotFound
               : r->status == 403                     ? Code::kAuth
               : r->status == 400 || r->status == 409 ? Code::kUsage
                                                      : Code::kFailure;
      return Error(c, "base: " + msg);
    }
    if (!v.ok()) return Error(Code::kCorrupt, "base: not JSON: " + r->body.substr(0, 200));
    return v;
  }
};

Result<Client> Connect(const JobCli& cli) {
  if (cli.sites_file.empty()) return Error(Code::kUsage, "--to sites.toml is required (the base's address)");
  if (cli.state_dir.empty()) return Error(Code::kUsage, "--state DIR is required (the base's token)");
  CM_ASSIGN_OR_RETURN(push::SitesConfig sites, push::LoadSites(cli.sites_file));
  Client c;
  c.url = sites.ccm.url;
  CM_ASSIGN_OR_RETURN(c.token, jobrun::ReadBaseToken(cli.state_dir));
  return c;
}

int RunBase(JobCli& cli) {
  if (cli.sites_file.empty() || cli.state_dir.empty()) return Fail(Error(Code::kUsage, "base: --to and --state are required"));
  auto sites = push::LoadSites(cli.sites_file);
  if (!sites.ok()) return Fail(sites.status());
  auto key = pack::LoadSigningKey(DefaultFile(cli.sign_key, "ccm.key"));
  if (!key.ok()) return Fail(key.status());
  auto group = LoadGroupKey(DefaultFile(cli.group_key, "group.key"));
  if (!group.ok()) return Fail(group.status());
  std::string listen = cli.listen.empty() ? sites->ccm.listen.ToString() : cli.listen;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  jobrun::BaseServiceOptions bo;
  bo.sites = *sites;
  bo.state_dir = cli.state_dir;
  bo.key = *key;
  bo.group_key = *group;
  bo.url = sites->ccm.url;
  bo.hooks = std::set<std::string>(cli.hooks.begin(), cli.hooks.end());
  if (!cli.notify.empty()) {
    auto argv = SplitCommand(cli.notify);
    if (!argv.ok()) return Fail(Error(Code::kUsage, "base: --notify: " + argv.status().message()));
    bo.notify = std::move(argv).value();
  }
  auto service = jobrun::BaseService::Start(bo);
  if (!service.ok()) return Fail(service.status());
  jobrun::BaseService* raw = service->get();
  http::ServerOptions so;
  so.listen = listen;
  so.body_limit = [](const std::string&, const std::string& path) -> uint64_t {
    return path == "/v1/client/stream-data" ? 4 << 20 : 1 << 20;
  };
  auto server = http::Server::Start(so, [raw](const http::Request& req) { return raw->Handle(req); });
  if (!server.ok()) return Fail(server.status());
  log::UseTimestamps(true);
  log::Info("base listening at " + listen + " (nodes are told " + sites->ccm.url + "); clients use " + cli.state_dir +
            "/base.token");
  for (int sig = 0; sigwait(&set, &sig) == 0 && sig == SIGHUP;) log::Warn("SIGHUP ignored");
  (*server)->Stop();
  (*service)->Stop();
  return kExitOk;
}

void PrintStatus(const JsonValue& v) {
  const char* phase = v.Bool("finished") ? "over" : v.Bool("ended") ? "ended" : "open";
  std::string failed = v.Uint("failed") ? ", " + std::to_string(v.Uint("failed")) + " failed or given up" : "";
  std::printf("job %s (%s): %llu of %llu servers finished every entry%s; log %llu bytes\n", v.Str("job").c_str(), phase,
              static_cast<unsigned long long>(v.Uint("ok")), static_cast<unsigned long long>(v.Uint("total")),
              failed.c_str(), static_cast<unsigned long long>(v.Uint("size")));
  for (const JsonValue& e : v["entries"].items()) {
    std::string what = e.Str("kind") == "command" ? e.Str("command") + (e.Str("arg").empty() ? "" : " " + e.Str("arg"))
                                                  : e.Str("kind") + " " + e.Str("name");
    std::printf("  entry %llu: %s\n", static_cast<unsigned long long>(e.Uint("entry")), what.c_str());
  }
  for (const JsonValue& s : v["servers"].items()) {
    std::string states;
    for (const JsonValue& x : s["entries"].items()) states += (states.empty() ? "" : ", ") + x.AsString();
    std::printf("  %-20s %-10s %12llu bytes  %s\n", s.Str("name").c_str(), s.Str("state").c_str(),
                static_cast<unsigned long long>(s.Uint("pos")), states.c_str());
  }
}

int RunStream(Client& c, const std::string& job, const std::string& name, int in) {
  auto s = c.Call("POST", "/v1/client/stream", JsonObject().Str("job", job).Str("name", name).Build());
  if (!s.ok()) return Fail(s.status());
  uint64_t entry = s->Uint("entry");
  std::string path = "/v1/client/stream-data?job=" + job + "&entry=" + std::to_string(entry);
  std::string buf;
  auto last = std::chrono::steady_clock::now();
  bool eof = false;
  while (!eof) {
    // Cut by size (64 KiB) or by time (100 ms): a live stream's delay stays small.
    pollfd p{in, POLLIN, 0};
    int r = ::poll(&p, 1, 20);
    if (r > 0) {
      char tmp[65536];
      ssize_t n = ::read(in, tmp, sizeof tmp);
      if (n <= 0) eof = true;
      else buf.append(tmp, static_cast<size_t>(n));
    }
    auto now = std::chrono::steady_clock::now();
    if (!buf.empty() && (buf.size() >= 65536 || now - last >= 100ms || eof)) {
      auto d = c.http.Call("POST", c.url + path, buf, 30s, "application/octet-stream", {{"X-CM-Token", c.token}});
      if (!d.ok()) return Fail(d.status());
      if (d->status != 200) return Fail(Error(Code::kFailure, "base: " + d->body));
      buf.clear();
      last = now;
    }
  }
  auto e = c.Call("POST", "/v1/client/stream-end", JsonObject().Str("job", job).Uint("entry", entry).Build());
  if (!e.ok()) return Fail(e.status());
  return kExitOk;
}

}  // namespace

void AddJobCommands(CLI::App& app, JobCli* cli) {
  cli->base = app.add_subcommand("base", "Run job mode's base: jobs opened by clients spread from relay to relay");
  cli->base->add_option("--to", cli->sites_file, "Sites file: the servers, and [ccm] listen/url for the base")->required();
  cli->base->add_option("--state", cli->state_dir, "State directory: base.token, jobs/")->required();
  cli->base->add_option("--sign-key", cli->sign_key, "The key that signs every record (default CONF/ccm.key)");
  cli->base->add_option("--group-key", cli->group_key, "Group key: authenticates relays' calls (default CONF/group.key)");
  cli->base->add_option("--listen", cli->listen, "HTTP ADDR:PORT (default: [ccm] listen)");
  cli->base->add_option("--hook", cli->hooks, "A hook name jobs may run ('job cmd J -- hook NAME'; repeatable)");
  cli->base->add_option("--notify", cli->notify,
                        "PROGRAM [ARGS] run per notice (received, completed, failed, given-up, finished), CM_* in its environment");

  cli->job_cmd = app.add_subcommand("job", "Job mode's client: open a job at the base, queue content and commands, wait");
  cli->job_cmd->require_subcommand(1);
  auto common = [cli](CLI::App* c) {
    c->add_option("--to", cli->sites_file, "Sites file (the base's address)")->required();
    c->add_option("--state", cli->state_dir, "The base's state directory (its token)")->required();
    c->add_flag("--json", cli->json, "JSON on stdout");
  };
  cli->open = cli->job_cmd->add_subcommand("open", "Open a job; prints its id, then its servers");
  common(cli->open);
  cli->open->add_option("--client", cli->client, "Your name: job ids are <client>-<n> (default cli)");
  cli->open->add_option("--servers", cli->servers, "Only these servers: NAME[,NAME...]")->delimiter(',');
  cli->open->add_option("--timeout", cli->job_timeout_s,
                        "Seconds until the base gives up servers that stopped moving (default 3600)")
      ->check(CLI::Range(1.0, 2592000.0));
  cli->add = cli->job_cmd->add_subcommand("add", "Queue a file (or an assignment) into the job");
  common(cli->add);
  cli->add->add_option("job", cli->job, "Job id")->required();
  cli->add->add_option("file", cli->file, "File")->required();
  cli->cmd = cli->job_cmd->add_subcommand(
      "cmd", "Queue a command every server runs in order: stage | commit | rollback [RELEASE] | hook NAME");
  common(cli->cmd);
  cli->cmd->add_option("job", cli->job, "Job id")->required();
  cli->cmd->add_option("command", cli->command, "After --: the command and its argument")->required();
  cli->stream = cli->job_cmd->add_subcommand("stream", "Queue standard input as a live stream until it ends");
  common(cli->stream);
  cli->stream->add_option("job", cli->job, "Job id")->required();
  cli->stream->add_option("input", cli->input, "'-' (standard input, the default) or a file or FIFO to read until it ends");
  cli->stream->add_option("--name", cli->file, "The stream's file name on the servers (default: the input's name, or stream)");
  // The same, in the form `producer | cm-push stream - --job JOB`.
  cli->stream_top = app.add_subcommand("stream", "Queue standard input into a job as a live stream (as 'job stream')");
  common(cli->stream_top);
  cli->stream_top->add_option("input", cli->input, "'-' (standard input, the default) or a file or FIFO");
  cli->stream_top->add_option("--job", cli->job, "Job id")->required();
  cli->stream_top->add_option("--name", cli->file, "The stream's file name on the servers");
  cli->end = cli->job_cmd->add_subcommand("end", "No more entries: the job is over once every server finished every entry");
  common(cli->end);
  cli->end->add_option("job", cli->job, "Job id")->required();
  cli->status = cli->job_cmd->add_subcommand("status", "The job's entries and every server's state of each");
  common(cli->status);
  cli->status->add_option("job", cli->job, "Job id")->required();
  cli->wait = cli->job_cmd->add_subcommand(
      "wait", "Wait until the job is over: exit 0 when every server finished every entry, else 11");
  common(cli->wait);
  cli->wait->add_option("job", cli->job, "Job id")->required();
  cli->wait->add_option("--timeout", cli->timeout_s, "Seconds (default 3600)");
}

int RunJobCommands(JobCli& cli) {
  if (cli.base->parsed()) return RunBase(cli);
  if (!cli.job_cmd->parsed() && !cli.stream_top->parsed()) return -1;
  auto c = Connect(cli);
  if (!c.ok()) return Fail(c.status());
  if (cli.open->parsed()) {
    JsonArray servers;
    for (const std::string& s : cli.servers) servers.Str(s);
    auto r = c->Call("POST", "/v1/client/open",
                     JsonObject()
                         .Str("client", cli.client)
                         .Raw("servers", servers.Build())
                         .Double("timeout", cli.job_timeout_s)
                         .Build());
    if (!r.ok()) return Fail(r.status());
    if (cli.json) {
      JsonArray names;
      for (const JsonValue& s : (*r)["servers"].items()) names.Str(s.AsString());
      std::printf("%s\n", JsonObject().Str("job", r->Str("job")).Raw("servers", names.Build()).Build().c_str());
    } else {
      std::printf("%s\n", r->Str("job").c_str());
      for (const JsonValue& s : (*r)["servers"].items()) std::printf("%s\n", s.AsString().c_str());
    }
    return kExitOk;
  }
  if (cli.add->parsed()) {
    std::error_code ec;
    std::string path = std::filesystem::absolute(cli.file, ec).string();
    auto r = c->Call("POST", "/v1/client/add", JsonObject().Str("job", cli.job).Str("path", path).Build(), nullptr, 600s);
    if (!r.ok()) return Fail(r.status());
    if (cli.json)
      std::printf("%s\n",
                  JsonObject().Str("job", cli.job).Uint("entry", r->Uint("entry")).Str("kind", r->Str("kind")).Build().c_str());
    return kExitOk;
  }
  if (cli.cmd->parsed()) {
    if (cli.command.size() > 2) return Fail(Error(Code::kUsage, "cmd: a command and at most one argument"));
    auto r = c->Call("POST", "/v1/client/cmd",
                     JsonObject()
                         .Str("job", cli.job)
                         .Str("command", cli.command[0])
                         .Str("arg", cli.command.size() > 1 ? cli.command[1] : "")
                         .Build());
    if (!r.ok()) return Fail(r.status());
    if (cli.json) std::printf("%s\n", JsonObject().Str("job", cli.job).Uint("entry", r->Uint("entry")).Build().c_str());
    else std::printf("%llu\n", static_cast<unsigned long long>(r->Uint("entry")));
    return kExitOk;
  }
  if (cli.stream->parsed() || cli.stream_top->parsed()) {
    int fd = 0;
    if (cli.input != "-") {
      fd = ::open(cli.input.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Fail(ErrnoError(cli.input, errno));
    }
    std::string name = !cli.file.empty() ? cli.file
                       : cli.input != "-" ? std::filesystem::path(cli.input).filename().string()
                                          : "stream";
    int rc = RunStream(*c, cli.job, name, fd);
    if (fd != 0) ::close(fd);
    return rc;
  }
  if (cli.end->parsed()) {
    auto r = c->Call("POST", "/v1/client/end", JsonObject().Str("job", cli.job).Build());
    return r.ok() ? kExitOk : Fail(r.status());
  }
  std::string raw;
  if (cli.status->parsed()) {
    auto r = c->Call("GET", "/v1/client/status?job=" + cli.job, "", &raw);
    if (!r.ok()) return Fail(r.status());
    if (cli.json) std::printf("%s\n", raw.c_str());
    else PrintStatus(*r);
    return kExitOk;
  }
  if (cli.wait->parsed()) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(cli.timeout_s * 1000));
    for (;;) {
      auto r = c->Call("GET", "/v1/client/status?job=" + cli.job, "", &raw);
      if (!r.ok()) return Fail(r.status());
      bool finished = r->Bool("finished");
      if (finished || std::chrono::steady_clock::now() >= until) {
        if (cli.json) std::printf("%s\n", raw.c_str());
        else PrintStatus(*r);
        bool all = finished && r->Uint("ok") == r->Uint("total");
        if (!finished) {
          log::Error("job " + cli.job + ": not over after " + std::to_string(static_cast<int>(cli.timeout_s)) + " s");
        } else if (!all) {
          log::Error("job " + cli.job + ": " + std::to_string(r->Uint("total") - r->Uint("ok")) + " of " +
                     std::to_string(r->Uint("total")) + " servers did not finish every entry");
        }
        return all ? kExitOk : kExitPartial;
      }
      std::this_thread::sleep_for(200ms);  // the client's poll; the base keeps no waiting request
    }
  }
  return -1;
}

}  // namespace cm
