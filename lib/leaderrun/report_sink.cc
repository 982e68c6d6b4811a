// cm-leader report-sink: a stand-in for the CCM's report endpoint. A tiny
// HTTP server (lib/http) that takes POST /v1/leader-report, prints each body
// as one JSON line on stdout and answers 200. With the group key it checks
// the CM-Auth stamp as the CCM does (to = "ccm", mac with the report key,
// fresh, not replayed) and refuses the rest (401/403/409, a line on stderr).
#include <pthread.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cstdio>
#include <mutex>

#include "http/server.h"
#include "leaderrun/run.h"
#include "util/cm_auth.h"
#include "util/json.h"
#include "util/log.h"

namespace cm::leaderrun {
namespace {

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

http::Response Error(int status, const std::string& why) {
  return http::Response::Json(status, JsonObject().Str("error", why).Build());
}

}  // namespace

Code ReportSink(proto::Address listen, std::optional<GroupKey> key) {
  // Blocked before the server's threads start, so only sigwait below takes
  // them: TERM/INT end the sink with exit 0 like every daemon; HUP is ignored.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::mutex mu;
  cm_auth::NonceCache cache;
  std::optional<GroupKey> report_key;
  if (key) report_key = cm_auth::ReportKey(*key);
  http::ServerOptions so;
  so.listen = listen.ToString();
  auto srv = http::Server::Start(so, [&](const http::Request& req) {
    if (req.path() != "/v1/leader-report") return Error(404, "no such resource");
    if (req.method != "POST") return Error(405, "POST only");
    std::lock_guard<std::mutex> l(mu);
    if (report_key) {
      cm_auth::Expectation want;
      want.alg = cm_auth::Alg::kMac;
      want.to = cm_auth::kCcmName;
      want.report_key = &*report_key;
      const auto v = cm_auth::Verify(req.header(cm_auth::kHeaderLower), req.method, req.path(), req.body, want,
                                     WallSeconds(), &cache);
      if (v != cm_auth::Verdict::kOk) {
        log::Warn("refused a report from " + req.peer_ip + ": " + cm_auth::VerdictText(v));
        return Error(cm_auth::VerdictStatus(v), cm_auth::VerdictText(v));
      }
    }
    std::string line = req.body;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    return http::Response::Json(200, "{\"ok\":true}");
  });
  if (!srv.ok()) return log::Error("report-sink: " + srv.status().message()), Code::kFailure;
  for (int sig = 0; sigwait(&set, &sig) == 0 && sig == SIGHUP;) {
  }
  (*srv)->Stop();
  return Code::kOk;
}

}  // namespace cm::leaderrun
