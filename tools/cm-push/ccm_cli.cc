#include "ccm_cli.h"

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "pushdb/render.h"
#include "pushdb/state_db.h"
#include "pushrun/converge_run.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/json.h"
#include "util/json_value.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm {
namespace {

int Fail(const Status& st) {
  log::Error(st.message());
  return ExitCodeFor(st);
}

Result<std::unique_ptr<pushdb::StateDb>> OpenDb(const std::string& dir) {
  if (dir.empty()) return Error(Code::kUsage, "--state DIR is required");
  // Reading must not create: a typo is "no such state directory", not an empty history.
  if (::access(dir.c_str(), F_OK) != 0) return Error(Code::kNotFound, dir + ": no such state directory");
  if (!std::filesystem::is_directory(dir)) return Error(Code::kUsage, dir + ": not a directory (--state DIR)");
  return pushdb::StateDb::Open(dir);
}

}  // namespace

int StatusCommand(const std::string& state_dir, const std::string& job, bool json) {
  auto db = OpenDb(state_dir);
  if (!db.ok()) return Fail(db.status());
  (void)(*db)->ReapDeadControllers();  // a killed cm-push shows as aborted, not running
  std::vector<int64_t> ids;
  if (!job.empty()) {
    auto rec = (*db)->FindJob(job);
    if (!rec.ok()) return Fail(rec.status());
    ids.push_back(rec->id);
  } else {
    // Every job still queued or running, then the newest one.
    auto h = (*db)->History(50);
    if (!h.ok()) return Fail(h.status());
    if (h->empty()) return Fail(Error(Code::kNotFound, "no job yet"));
    for (auto it = h->rbegin(); it != h->rend(); ++it)
      if (pushdb::IsActive(it->state) && it->id != h->front().id) ids.push_back(it->id);
    ids.push_back(h->front().id);
  }
  if (json) {
    // One object: the newest job asked for; other active jobs listed by number.
    auto view = (*db)->JobStatus(ids.back());
    if (!view.ok()) return Fail(view.status());
    std::string text = pushdb::RenderStatusJson(*view);
    if (ids.size() > 1) {
      JsonArray others;
      for (size_t i = 0; i + 1 < ids.size(); ++i) others.Raw(std::to_string(ids[i]));
      text.pop_back();  // "\n"
      text.pop_back();  // "}"
      text += ",\"other_active_jobs\":" + others.Build() + "}\n";
    }
    std::fputs(text.c_str(), stdout);
    return kExitOk;
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    auto view = (*db)->JobStatus(ids[i]);
    if (!view.ok()) return Fail(view.status());
    if (i) std::fputs("\n", stdout);
    std::fputs(pushdb::RenderStatusHuman(*view).c_str(), stdout);
  }
  return kExitOk;
}

int HistoryCommand(const std::string& state_dir, int limit, bool json) {
  auto db = OpenDb(state_dir);
  if (!db.ok()) return Fail(db.status());
  (void)(*db)->ReapDeadControllers();
  auto h = (*db)->History(limit);
  if (!h.ok()) return Fail(h.status());
  std::fputs((json ? pushdb::RenderHistoryJson(*h) : pushdb::RenderHistoryHuman(*h)).c_str(), stdout);
  return kExitOk;
}

int ServersCommand(const std::string& state_dir, bool json) {
  auto db = OpenDb(state_dir);
  if (!db.ok()) return Fail(db.status());
  auto t = (*db)->ServerTable();
  if (!t.ok()) return Fail(t.status());
  std::fputs((json ? pushdb::RenderServerTableJson(*t) : pushdb::RenderServerTableHuman(*t)).c_str(), stdout);
  return kExitOk;
}

std::string InvocationJson(int argc, char** argv) {
  char cwd[4096];
  JsonArray args;
  for (int i = 0; i < argc; ++i) args.Str(argv[i]);
  return JsonObject().Str("cwd", ::getcwd(cwd, sizeof cwd) ? cwd : "/").Raw("argv", args.Build()).Build();
}

int RetryCommand(const std::string& state_dir, const std::string& job) {
  auto db = OpenDb(state_dir);
  if (!db.ok()) return Fail(db.status());
  (void)(*db)->ReapDeadControllers();
  auto rec = job.empty() ? (*db)->LatestJob() : (*db)->FindJob(job);
  if (!rec.ok()) return Fail(rec.status());
  if (pushdb::IsActive(rec->state))
    return Fail(Error(Code::kBusy, "job " + std::to_string(rec->id) + " is still " + pushdb::JobStateName(rec->state)));
  auto inv = ParseJson(rec->invocation);
  if (!inv.ok() || !inv->is_object() || !(*inv)["argv"].is_array() || (*inv)["argv"].items().empty())
    return Fail(Error(Code::kNotFound, "job " + std::to_string(rec->id) + " has no recorded command to run again"));
  auto view = (*db)->JobStatus(rec->id);
  if (!view.ok()) return Fail(view.status());
  // The goal: committed (or rolled back); staged for a --no-commit job.
  bool stage_only = false;
  std::vector<std::string> argv;
  for (const auto& a : (*inv)["argv"].items()) {
    argv.push_back(a.AsString());
    if (a.AsString() == "--no-commit") stage_only = true;
  }
  std::vector<std::string> missing;
  for (const auto& s : view->servers) {
    bool ok = s.state == pushdb::ServerState::kCommitted || s.state == pushdb::ServerState::kRolledBack ||
              (stage_only && s.state == pushdb::ServerState::kStaged);
    if (!ok) missing.push_back(s.server);
  }
  if (missing.empty()) {
    std::printf("job %lld: every server reached the goal; nothing to retry\n", static_cast<long long>(rec->id));
    return kExitOk;
  }
  // The recorded command without its --only, then --only the missing servers.
  std::vector<std::string> run;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--only") {
      ++i;
      continue;
    }
    if (argv[i].rfind("--only=", 0) == 0) continue;
    run.push_back(argv[i]);
  }
  std::string only;
  for (const auto& m : missing) only += (only.empty() ? "" : ",") + m;
  run.push_back("--only");
  run.push_back(only);
  std::string cwd = inv->Str("cwd", "/");
  if (::chdir(cwd.c_str()) != 0) return Fail(ErrnoError(cwd, errno));
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : " ") + m;
  std::printf("retrying job %lld (%s) on %s\n", static_cast<long long>(rec->id), rec->name.c_str(), list.c_str());
  std::fflush(stdout);
  std::vector<char*> cargv;
  for (auto& a : run) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  ::execv("/proc/self/exe", cargv.data());
  return Fail(ErrnoError("/proc/self/exe", errno));
}

int PrepareRollback(pushrun::PushOptions* p, std::string release, std::string* tmp_dir) {
  if (release.empty()) {
    // The release before the one most servers run now, as this CCM recorded them.
    auto db = OpenDb(p->state_dir);
    if (!db.ok()) return Fail(Error(db.status().code(), db.status().message() + " (or give --to-release)"));
    auto servers = (*db)->ServerTable();
    if (!servers.ok()) return Fail(servers.status());
    std::map<std::string, int> votes;
    for (const auto& s : *servers)
      if (!s.live_release.empty()) ++votes[s.live_release];
    std::string current;
    for (const auto& [r, n] : votes)
      if (current.empty() || n > votes[current]) current = r;
    auto h = (*db)->History(0);
    if (!h.ok()) return Fail(h.status());
    bool past_current = current.empty();
    for (const auto& j : *h) {  // newest first
      if (j.kind == pushdb::JobKind::kCommit || j.kind == pushdb::JobKind::kRollback || j.release.empty() ||
          j.servers_ok == 0 || pushrun::IsCatchUpJob(j.options))
        continue;
      if (j.release == current) {
        past_current = true;
        continue;
      }
      if (past_current) {
        release = j.release;
        break;
      }
    }
    if (release.empty())
      return Fail(Error(Code::kNotFound, "no earlier release recorded in " + p->state_dir + " (give --to-release)"));
    log::Warn("rolling back from " + (current.empty() ? std::string("?") : current) + " to " + release);
  }
  char tmpl[] = "/tmp/cm-rollback-XXXXXX";
  std::string base = p->state_dir.empty() ? std::string(tmpl) : p->state_dir + "/rollback-XXXXXX";
  if (!::mkdtemp(base.data())) return Fail(ErrnoError(base, errno));
  *tmp_dir = base;
  std::string out = base + "/rollback.cma";
  std::vector<std::string> argv{p->cm_pack, "rollback", "--release", release, "-o", out,
                                "--sign-key", p->sign_key};
  std::string serial_file = p->serial_file.empty() && !p->state_dir.empty() ? p->state_dir + "/serial" : p->serial_file;
  if (!serial_file.empty()) argv.insert(argv.end(), {"--serial-file", serial_file});
  auto r = RunProcess(argv);
  if (!r.ok()) return Fail(r.status());
  if (r->exit_code != 0) return Fail(Error(Code::kFailure, "cm-pack rollback: " + LastLine(r->err)));
  p->assignments = {out};
  p->release = release;
  return kExitOk;
}

}  // namespace cm
