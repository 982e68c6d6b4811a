#include "apply/commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>
#include <vector>

#include "apply/release_manifest.h"
#include "apply/switcher.h"
#include "util/file_util.h"

namespace cm::apply {
namespace {

int64_t MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

Report SwitchReport(const char* action, const Result<SwitchResult>& r, const std::string& job,
                    const ContentRoot& root, std::vector<HookRun> hooks, std::chrono::steady_clock::time_point t0) {
  Report rep;
  rep.job = job;
  rep.type = std::string(action) == "committed" ? "commit" : "rollback";
  rep.action = r.ok() ? (r->noop ? "unchanged" : r->already ? "already-applied" : action) : "none";
  rep.release = root.state().current;
  rep.release_serial = ReleaseSerial(rep.release);
  rep.manifest = RecordedManifestHex(root.layout(), rep.release, /*compute_if_missing=*/true);
  rep.status = r.ok() ? r->post_hook : r.status();
  rep.hooks = std::move(hooks);
  rep.host = HostName();
  rep.duration_ms = MsSince(t0);
  return rep;
}

}  // namespace

Result<std::string> SpoolStdin(const Layout& l) {
  // .cm is the running user's and private (layout.h); O_EXCL|O_NOFOLLOW all the same.
  const std::string path = l.meta + "/spool-" + std::to_string(::getpid());
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError(path, errno);
  std::vector<char> buf(1 << 20);
  for (;;) {
    auto n = ReadFull(0, buf.data(), buf.size());
    if (!n.ok()) {
      ::unlink(path.c_str());
      return Status(n.status().code(), "stdin: " + n.status().message());
    }
    if (*n == 0) break;
    Status st = WriteFull(fd.get(), buf.data(), *n);
    if (!st.ok()) {
      ::unlink(path.c_str());
      return Status(st.code(), path + ": " + st.message());
    }
  }
  return path;
}

Outcome RunApply(const ApplyRequest& req) {
  Outcome out;
  RootOptions ro = req.root_opts;
  if (req.opts.dry_run) ro.recover = false;  // a dry run finishes nothing
  auto root = ContentRoot::Open(req.root, ro);
  if (!root.ok()) {
    out.status = root.status();
    return out;
  }
  std::string last_job;
  for (const std::string& file : req.files) {
    Report rep;
    rep.file = file;
    std::string path = file;
    if (file == "-") {
      auto spool = SpoolStdin((*root)->layout());
      if (!spool.ok()) {
        out.status = spool.status();
        return out;
      }
      path = *spool;
    }
    Status st = ApplyFile(root->get(), path, req.opts, &rep);
    if (file == "-") ::unlink(path.c_str());
    out.reports.push_back(rep);
    if (!st.ok()) {
      out.status = st;
      out.where = file == "-" ? "<stdin>" : file;
      return out;
    }
    if (rep.type != "commit" && rep.type != "rollback") last_job = rep.job;
  }
  if (req.commit && !req.opts.dry_run && !last_job.empty()) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<HookRun> hooks;
    auto r = Commit(root->get(), last_job, std::nullopt, &hooks);
    out.reports.push_back(SwitchReport("committed", r, last_job, **root, std::move(hooks), t0));
    out.status = out.reports.back().status;
  }
  return out;
}

Outcome RunCommit(const std::string& root_dir, const std::string& job, const RootOptions& ro) {
  Outcome out;
  auto root = ContentRoot::Open(root_dir, ro);
  if (!root.ok()) {
    out.status = root.status();
    return out;
  }
  auto t0 = std::chrono::steady_clock::now();
  const State& s = (*root)->state();
  const std::string j = !job.empty() ? job : s.HasStage() ? s.staged_job : s.noop_job;
  std::vector<HookRun> hooks;
  auto r = Commit(root->get(), job, std::nullopt, &hooks);
  out.reports.push_back(SwitchReport("committed", r, j, **root, std::move(hooks), t0));
  out.status = out.reports.back().status;
  return out;
}

Outcome RunRollback(const std::string& root_dir, const std::string& to_release, const RootOptions& ro) {
  Outcome out;
  auto root = ContentRoot::Open(root_dir, ro);
  if (!root.ok()) {
    out.status = root.status();
    return out;
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<HookRun> hooks;
  auto r = Rollback(root->get(), std::nullopt, to_release, &hooks);
  const std::string job = r.ok() ? ReleaseJob(r->to) : ReleaseJob(to_release);
  out.reports.push_back(SwitchReport("rolled-back", r, job, **root, std::move(hooks), t0));
  out.status = out.reports.back().status;
  return out;
}

Result<SerialReset> ResetSerials(const std::string& root_dir, std::optional<uint64_t> to, uint64_t now_us,
                                 const RootOptions& ro) {
  CM_ASSIGN_OR_RETURN(std::unique_ptr<ContentRoot> root, ContentRoot::Open(root_dir, ro));
  State& s = root->state();
  SerialReset r;
  r.old_stage = s.last_stage_serial;
  r.old_switch = s.last_switch_serial;
  // Default: forget the serials from the future (a CCM clock that was
  // wrong): the newest remembered serial up to an hour from now, else 0.
  const uint64_t bound = to ? *to : now_us + 3600ull * 1000000ull;
  uint64_t keep = 0;
  std::deque<AppliedId> kept;
  for (const AppliedId& a : s.applied) {
    if (a.serial > bound) continue;
    kept.push_back(a);
    keep = std::max(keep, a.serial);
  }
  r.serial = to ? *to : keep;
  s.applied = std::move(kept);
  s.last_stage_serial = s.last_switch_serial = r.serial;
  CM_RETURN_IF_ERROR(root->SaveState());
  return r;
}

Result<LiveTree> VerifyLive(const std::string& root_dir, bool full, const RootOptions& ro) {
  CM_ASSIGN_OR_RETURN(std::unique_ptr<ContentRoot> root, ContentRoot::Open(root_dir, ro));
  const std::string& current = root->state().current;
  if (current.empty()) return Error(Code::kNotFound, root->layout().root + ": no live release");
  return ExamineLive(root->layout(), current, full);
}

Outcome RunVerify(const std::vector<std::string>& files, const ApplyOptions& opts) {
  Outcome out;
  for (const std::string& file : files) {
    Report rep;
    rep.file = file;
    Status st = VerifyFile(file, opts, &rep);
    out.reports.push_back(rep);
    if (!st.ok()) {
      out.status = st;
      out.where = file;
      return out;
    }
  }
  return out;
}

}  // namespace cm::apply
