#include "apply/part_stage.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "apply/fs_ops.h"
#include "apply/tree_clone.h"
#include "util/crash_point.h"
#include "util/hash.h"
#include "util/log.h"

namespace cm::apply {

Result<std::unique_ptr<PartStage>> PartStage::Begin(ContentRoot* root, const PartInfo& info) {
  State& s = root->state();
  std::unique_ptr<PartStage> p(new PartStage(root, info));
  const std::string job = "job " + info.job + ": part " + std::to_string(info.part);
  if (s.HasStage() && s.staged_job == info.job) {
    if (s.staged_complete) return Error(Code::kOrder, job + " after the job's last part");
    if (info.part != s.staged_parts + 1)
      return Error(Code::kOrder, job + " does not follow the staged part " + std::to_string(s.staged_parts));
    p->base_dir_ = s.staged_dir;
  } else if (info.part != 1) {
    return Error(Code::kOrder, job + " without parts 1.." + std::to_string(info.part - 1));
  }
  p->name_ = StageName(info.job, info.part);
  if (s.HasStage() && s.staged_dir == p->name_) {
    // Another job whose id maps to the same directory name: drop its stage first.
    State before = s;
    s.ClearStage();
    Status st = root->SaveState();
    if (!st.ok()) {
      s = before;
      return st;
    }
  }
  CM_RETURN_IF_ERROR(p->Build());
  return p;
}

Status PartStage::Build() {
  const Layout& l = root_->layout();
  const std::string dir = l.StageDir(name_), meta = l.DirMetaPath(name_);
  CM_RETURN_IF_ERROR(RemoveTree(dir));  // leftovers of an interrupted run
  if (::unlink(meta.c_str()) != 0 && errno != ENOENT) return ErrnoError(meta, errno);
  {
    // Each staged tree as an independent hierarchy for the allocator (see
    // MarkTopDir; done here, so that roots made by older versions get it
    // too). The directory is made under a random name and then renamed: the
    // allocator seeds its choice with the name, and the same name (the same
    // job applied again) would start in the same place as the tree that was
    // deleted a moment ago. A crash in between leaves an entry that is not
    // named by the state, which recovery removes.
    auto stage = OpenDir(l.stage);
    if (stage.ok() && !MarkTopDir(stage->get())) log::Debug(l.stage + ": FS_TOPDIR_FL not supported");
    uint64_t r = 0;
    if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r))
      r = static_cast<uint64_t>(::getpid()) * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(::time(nullptr));
    const std::string fresh = l.stage + "/.mk-" + ToHex(reinterpret_cast<const uint8_t*>(&r), sizeof r);
    if (::mkdir(fresh.c_str(), 0700) != 0) return ErrnoError(fresh, errno);
    CrashPoint("stage.dir-made");
    if (::rename(fresh.c_str(), dir.c_str()) != 0) {
      const int e = errno;
      ::rmdir(fresh.c_str());
      return ErrnoError(dir, e);
    }
  }
  CM_ASSIGN_OR_RETURN(work_fd_, OpenDir(dir));

  CloneStats cs;
  if (!base_dir_.empty()) {
    CM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(l.DirMetaPath(base_dir_)));
    CM_RETURN_IF_ERROR(WriteFileAtomic(meta, text, 0600));
    CM_RETURN_IF_ERROR(log_.Open(meta));
    CM_ASSIGN_OR_RETURN(UniqueFd base, OpenDir(l.StageDir(base_dir_)));
    CM_RETURN_IF_ERROR(CloneTree(base.get(), work_fd_.get(), nullptr, &cs));
  } else {
    CM_RETURN_IF_ERROR(log_.Open(meta));
    CM_ASSIGN_OR_RETURN(std::string cur, ReadCurrent(l));
    UniqueFd live;
    if (!cur.empty()) {
      auto fd = OpenDir(l.Release(cur));
      if (!fd.ok()) return Error(Code::kBaseMismatch, "live release " + cur + " missing: " + fd.status().message());
      live = std::move(fd).value();
    }
    if (live && !pack::IsWholeTree(info_.type)) {
      CM_RETURN_IF_ERROR(CloneTree(live.get(), work_fd_.get(), &log_, &cs));
    } else {
      // Whole-tree types start empty; the root directory keeps live's metadata.
      pack::Meta m;
      m.mode = 0755;
      struct stat st;
      if (live && ::fstat(live.get(), &st) == 0) m = MetaFromStat(st);
      CM_RETURN_IF_ERROR(log_.Set("", m));
    }
  }
  log::Debug("staged " + name_ + ": " + std::to_string(cs.linked) + " files linked, " + std::to_string(cs.dirs) +
             " dirs");
  stager_ = std::make_unique<Stager>(work_fd_.get(), &log_);
  CrashPoint("stage.cloned");
  return Status::Ok();
}

Status PartStage::Finish(const AppliedId& applied) {
  CM_RETURN_IF_ERROR(SyncFs(work_fd_.get(), root_->layout().StageDir(name_)));
  CrashPoint("stage.synced");
  State& s = root_->state();
  State before = s;
  const std::string old_dir = s.staged_dir;
  s.staged_job = info_.job;
  s.staged_dir = name_;
  s.staged_type = pack::TypeName(info_.type);
  s.staged_parts = info_.part;
  s.staged_complete = info_.last_part;
  s.staged_serial = info_.serial;
  s.noop_job.clear();  // the job staged now is the one a plain `commit` means
  s.Record(applied, SerialSpace::kStage);
  Status st = root_->SaveState();
  if (!st.ok()) {
    s = before;
    return st;
  }
  finished_ = true;
  CrashPoint("stage.state-written");
  if (!old_dir.empty() && old_dir != name_) {
    const Layout& l = root_->layout();
    Status rm = RemoveTree(l.StageDir(old_dir));
    if (rm.ok()) ::unlink(l.DirMetaPath(old_dir).c_str());
    if (!rm.ok()) log::Warn("cannot remove old stage: " + rm.message());
  }
  return Status::Ok();
}

PartStage::~PartStage() {
  if (finished_ || name_.empty()) return;
  stager_.reset();
  work_fd_.reset();
  const Layout& l = root_->layout();
  Status rm = RemoveTree(l.StageDir(name_));
  if (rm.ok()) ::unlink(l.DirMetaPath(name_).c_str());
}

}  // namespace cm::apply
