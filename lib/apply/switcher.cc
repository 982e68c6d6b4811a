#include "apply/switcher.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "apply/dir_meta.h"
#include "apply/fs_ops.h"
#include "apply/release_manifest.h"
#include "util/crash_point.h"
#include "util/file_util.h"
#include "util/log.h"

namespace cm::apply {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Points ROOT/current at releases/<to> with one rename of a fresh symlink.
Status SwapCurrent(const Layout& l, const std::string& to) {
  if (::unlink(l.current_tmp.c_str()) != 0 && errno != ENOENT) return ErrnoError(l.current_tmp, errno);
  const std::string target = "releases/" + to;
  if (::symlink(target.c_str(), l.current_tmp.c_str()) != 0) return ErrnoError(l.current_tmp, errno);
  CrashPoint("switch.link-created");
  if (::rename(l.current_tmp.c_str(), l.current.c_str()) != 0) {
    int e = errno;
    ::unlink(l.current_tmp.c_str());
    return ErrnoError(l.current, e);
  }
  CM_RETURN_IF_ERROR(FsyncDir(l.root));
  CrashPoint("switch.renamed");
  return Status::Ok();
}

// Moves the stage into releases/ if that has not happened yet. stage_final:
// the caller (Commit) has just applied the directories' metadata and made it
// durable; recovery passes false and everything is applied again.
Status InstallRelease(const Layout& l, const Journal& j, bool stage_final) {
  const std::string release = l.Release(j.to), stage = l.StageDir(j.stage);
  const bool moved_now = !Exists(release);
  if (moved_now) {
    if (!Exists(stage)) return Error(Code::kNotFound, "neither " + stage + " nor " + release + " exists");
    if (!stage_final) {  // idempotent: applied again after a crash
      CM_ASSIGN_OR_RETURN(DirMetaMap dirs, ReplayDirMeta(l.DirMetaPath(j.stage)));
      CM_ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(stage));
      CM_RETURN_IF_ERROR(ApplyDirMeta(fd.get(), dirs, /*include_root=*/false));
      CM_RETURN_IF_ERROR(SyncFs(fd.get(), stage));
    }
    if (::rename(stage.c_str(), release.c_str()) != 0) return ErrnoError(release, errno);
    CM_RETURN_IF_ERROR(FsyncDir(l.releases));
    CM_RETURN_IF_ERROR(FsyncDir(l.stage));
    CrashPoint("commit.release-renamed");
  }
  // The root directory's metadata last: moving a directory needs write access
  // to it. When recovering past the move, everything is applied again
  // (idempotent) in case the move happened before the directories were final.
  CM_ASSIGN_OR_RETURN(DirMetaMap dirs, ReplayDirMeta(l.DirMetaPath(j.stage)));
  if (!moved_now) {
    CM_ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(release));
    CM_RETURN_IF_ERROR(ApplyDirMeta(fd.get(), dirs, /*include_root=*/true));
    return SyncFs(fd.get(), release);
  }
  auto root_meta = dirs.find("");
  if (root_meta != dirs.end()) {
    CM_ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(release));
    CM_RETURN_IF_ERROR(ApplyDirMeta(fd.get(), {{"", root_meta->second}}, /*include_root=*/true));
    if (::fsync(fd.get()) != 0) return ErrnoError(release, errno);
  }
  return Status::Ok();
}

// Newest first by serial (serials from a serial file and from the clock
// differ in width, so name order is not age order).
void SortNewestFirst(std::vector<std::string>* names) {
  std::sort(names->begin(), names->end(), [](const std::string& a, const std::string& b) {
    uint64_t sa = ReleaseSerial(a), sb = ReleaseSerial(b);
    return sa != sb ? sa > sb : a > b;
  });
}

// Hooks may change directory: they get absolute paths.
std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char buf[4096];
  if (::getcwd(buf, sizeof buf) == nullptr) return path;
  return std::string(buf) + "/" + path;
}

void LogOutput(const HookRun& run) {
  size_t start = 0;
  while (start < run.output.size()) {
    size_t nl = run.output.find('\n', start);
    if (nl == std::string::npos) nl = run.output.size();
    if (nl > start) log::Info(run.name + ": " + run.output.substr(start, nl - start));
    start = nl + 1;
  }
}

// Runs hook `name` if configured; its outcome as a one-line message ("" = ok).
std::string RunOneHook(ContentRoot* root, const char* name, const std::vector<std::string>& argv,
                       const SwitchInfo& info, std::vector<HookRun>* hooks_run) {
  if (argv.empty()) return "";
  const auto timeout = root->options().hooks.timeout;
  SwitchInfo abs = info;
  abs.root = Absolute(info.root);
  abs.tree = Absolute(info.tree);
  HookRun run = RunHook(name, argv, abs, timeout);
  LogOutput(run);
  log::Debug(std::string(name) + ": " + run.Outcome(timeout) + " in " + std::to_string(run.duration_ms) + " ms");
  std::string msg;
  if (!run.ok()) {
    msg = run.Outcome(timeout);
    const std::string last = run.LastLine();
    if (!last.empty()) msg += ": " + last;
  }
  if (hooks_run) hooks_run->push_back(std::move(run));
  return msg;
}

Status RunPreHook(ContentRoot* root, const SwitchInfo& info, std::vector<HookRun>* hooks_run) {
  std::string err = RunOneHook(root, "pre_commit", root->options().hooks.pre_commit, info, hooks_run);
  if (err.empty()) return Status::Ok();
  return Error(Code::kHookRefused, "pre_commit hook refused the " + info.action + " to " + info.to +
                                       " (live tree unchanged): " + err);
}

Status RunPostHook(ContentRoot* root, const SwitchInfo& info, std::vector<HookRun>* hooks_run) {
  std::string err = RunOneHook(root, "post_commit", root->options().hooks.post_commit, info, hooks_run);
  if (err.empty()) return Status::Ok();
  return Error(Code::kHookFailed, "post_commit hook failed after the " + info.action + " to " + info.to +
                                      " (the switch is done): " + err);
}

}  // namespace

Status RunSwitch(ContentRoot* root, const Journal& j, bool stage_final) {
  const Layout& l = root->layout();
  if (!j.stage.empty()) CM_RETURN_IF_ERROR(InstallRelease(l, j, stage_final));
  if (!Exists(l.Release(j.to))) return Error(Code::kNotFound, l.Release(j.to) + ": release missing");
  CM_ASSIGN_OR_RETURN(std::string cur, ReadCurrent(l));
  if (cur != j.to) CM_RETURN_IF_ERROR(SwapCurrent(l, j.to));

  State& s = root->state();
  State before = s;
  s.current = j.to;
  s.previous = j.from == j.to ? s.previous : j.from;
  if (!j.stage.empty() && s.staged_dir == j.stage) s.ClearStage();
  if (j.applied) s.Record(*j.applied, SerialSpace::kSwitch);
  if (!(s == before)) {
    Status st = root->SaveState();
    if (!st.ok()) {
      s = before;
      return st;
    }
  }
  CrashPoint("switch.state-written");
  CM_RETURN_IF_ERROR(RemoveJournal(l));
  CrashPoint("switch.journal-removed");
  if (!j.stage.empty()) ::unlink(l.DirMetaPath(j.stage).c_str());
  Status rt = ApplyRetention(root);
  if (!rt.ok()) log::Warn("retention: " + rt.message());
  return Status::Ok();
}

Result<SwitchResult> Commit(ContentRoot* root, const std::string& job, const std::optional<AppliedId>& applied,
                            std::vector<HookRun>* hooks_run) {
  State& s = root->state();
  const Layout& l = root->layout();
  SwitchResult r;
  r.from = s.current;
  if (!s.HasStage() || (!job.empty() && s.staged_job != job)) {
    // Committing a job whose release is already live, or a job that changes
    // nothing, is a no-op.
    const bool live = !job.empty() && !s.current.empty() && ReleaseJob(s.current) == SafeName(job);
    const bool noop = !s.noop_job.empty() && (job.empty() ? !s.HasStage() : job == s.noop_job);
    if (live || noop) {
      if (applied && !s.Find(applied->serial)) {
        s.Record(*applied, SerialSpace::kSwitch);
        CM_RETURN_IF_ERROR(root->SaveState());
      }
      r.to = s.current;
      r.already = true;
      r.noop = !live;
      return r;
    }
    return Error(Code::kNotFound, job.empty() ? std::string("no staged tree to commit")
                                              : "job " + job + ": no staged tree to commit");
  }
  if (!s.staged_complete)
    return Error(Code::kNotFound, "job " + s.staged_job + ": incomplete, " + std::to_string(s.staged_parts) +
                                      " part(s) staged and the last part missing");
  if (!Exists(l.StageDir(s.staged_dir)))
    return Error(Code::kNotFound, "job " + s.staged_job + ": staged tree " + s.staged_dir + " missing");

  Journal j;
  j.op = "commit";
  j.from = s.current;
  j.to = ReleaseId(s.staged_serial, s.staged_job);
  j.stage = s.staged_dir;
  j.applied = applied;
  if (j.to == j.from) return Error(Code::kFailure, "release " + j.to + " is already current");

  SwitchInfo info{"commit", l.root, j.from, j.to, l.StageDir(j.stage), s.staged_job, applied ? applied->serial : 0};
  CM_RETURN_IF_ERROR(RunPreHook(root, info, hooks_run));
  // A leftover directory of that name (not current, not previous) is garbage.
  if (j.to != s.previous && Exists(l.Release(j.to))) CM_RETURN_IF_ERROR(RemoveTree(l.Release(j.to)));

  // Directories get their true metadata before the journal so that the
  // stage is final when the switch starts. The stage itself was made durable
  // when its last part was staged (syncfs), so fsyncing the directories
  // changed here is enough.
  {
    CM_ASSIGN_OR_RETURN(DirMetaMap dirs, ReplayDirMeta(l.DirMetaPath(j.stage)));
    CM_ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(l.StageDir(j.stage)));
    CM_RETURN_IF_ERROR(ApplyDirMeta(fd.get(), dirs, /*include_root=*/false, /*fsync_each=*/true));
  }
  CrashPoint("commit.dirmeta-applied");
  CM_RETURN_IF_ERROR(WriteJournal(l, j));
  CrashPoint("commit.journal-written");
  CM_RETURN_IF_ERROR(RunSwitch(root, j, /*stage_final=*/true));
  r.to = j.to;
  info.tree = l.Release(j.to);
  r.post_hook = RunPostHook(root, info, hooks_run);
  return r;
}

Result<SwitchResult> Rollback(ContentRoot* root, const std::optional<AppliedId>& applied,
                              const std::string& to_release, std::vector<HookRun>* hooks_run) {
  State& s = root->state();
  const Layout& l = root->layout();
  if (!to_release.empty() && to_release == s.current) {
    if (applied && !s.Find(applied->serial)) {
      s.Record(*applied, SerialSpace::kSwitch);
      CM_RETURN_IF_ERROR(root->SaveState());
    }
    return SwitchResult{s.current, s.current, true, false, Status::Ok()};
  }
  const std::string target = to_release.empty() ? s.previous : to_release;
  if (target.empty()) return Error(Code::kNotFound, "no previous release to roll back to");
  if (target.find('/') != std::string::npos || target[0] == '.' || !Exists(l.Release(target))) {
    if (to_release.empty()) return Error(Code::kNotFound, l.Release(target) + ": previous release missing");
    std::string have;
    for (const std::string& n : ListReleases(l)) have += (have.empty() ? "" : ", ") + n;
    return Error(Code::kNotFound, "release " + to_release + " is not on this server (current " +
                                      (s.current.empty() ? std::string("none") : s.current) + "; releases: " +
                                      (have.empty() ? std::string("none") : have) + ")");
  }
  Journal j;
  j.op = "rollback";
  j.from = s.current;
  j.to = target;
  j.applied = applied;
  SwitchInfo info{"rollback", l.root, j.from, j.to, l.Release(j.to), ReleaseJob(j.to), applied ? applied->serial : 0};
  CM_RETURN_IF_ERROR(RunPreHook(root, info, hooks_run));
  CM_RETURN_IF_ERROR(WriteJournal(l, j));
  CrashPoint("rollback.journal-written");
  CM_RETURN_IF_ERROR(RunSwitch(root, j));
  SwitchResult r{j.from, j.to, false, false, Status::Ok()};
  r.post_hook = RunPostHook(root, info, hooks_run);
  return r;
}

std::vector<std::string> ListReleases(const Layout& l) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(l.releases.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    ::closedir(d);
  }
  SortNewestFirst(&out);
  return out;
}

Status ApplyRetention(ContentRoot* root) {
  const Layout& l = root->layout();
  const State& s = root->state();
  DIR* d = ::opendir(l.releases.c_str());
  if (!d) return ErrnoError(l.releases, errno);
  std::vector<std::string> others;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || n == s.current || n == s.previous) continue;
    others.push_back(n);
  }
  ::closedir(d);
  SortNewestFirst(&others);
  size_t extra = static_cast<size_t>(root->keep() - 2);
  for (size_t i = 0; i < others.size(); ++i) {
    if (i < extra && others[i][0] != '.') continue;
    // Move out of releases/ first so a half-deleted tree is never visible there.
    const std::string trash = l.trash + "/" + others[i];
    CM_RETURN_IF_ERROR(RemoveTree(trash));
    if (::rename(l.Release(others[i]).c_str(), trash.c_str()) != 0) return ErrnoError(l.Release(others[i]), errno);
    CrashPoint("retention.moved");
    CM_RETURN_IF_ERROR(RemoveTree(trash));
  }
  PruneManifests(l, StagedRelease(s));
  return Status::Ok();
}

}  // namespace cm::apply
