#include "apply/recovery.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "apply/fs_ops.h"
#include "apply/journal.h"
#include "apply/switcher.h"
#include "util/log.h"

namespace cm::apply {
namespace {

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

Status FinishJournal(ContentRoot& root) {
  const Layout& l = root.layout();
  CM_ASSIGN_OR_RETURN(std::optional<Journal> j, ReadJournal(l));
  if (!j) return Status::Ok();
  log::Info("recovering an interrupted " + j->op + " to " + j->to);
  Status st = RunSwitch(&root, *j);
  if (st.code() == Code::kNotFound) {
    // The journal was written but the release never appeared: the switch had
    // not started, live was never touched. Drop the intent.
    log::Warn("dropping interrupted " + j->op + ": " + st.message());
    return RemoveJournal(l);
  }
  return st;
}

Status CleanLeftovers(ContentRoot& root) {
  const Layout& l = root.layout();
  const State& s = root.state();
  CM_RETURN_IF_ERROR(RemoveTree(l.current_tmp));
  for (const auto& n : List(l.stage)) {
    if (s.HasStage() && (n == s.staged_dir || n == s.staged_dir + ".dirmeta")) continue;
    log::Debug("removing leftover stage entry " + n);
    CM_RETURN_IF_ERROR(RemoveTree(l.stage + "/" + n));
  }
  for (const auto& n : List(l.trash)) CM_RETURN_IF_ERROR(RemoveTree(l.trash + "/" + n));
  for (const auto& n : List(l.meta)) {
    // AtomicFile temporaries (".state.tmp-…", ".journal.tmp-…") and stdin spools.
    if ((n[0] == '.' && n.find(".tmp-") != std::string::npos) || n.rfind("spool-", 0) == 0)
      CM_RETURN_IF_ERROR(RemoveTree(l.meta + "/" + n));
  }
  for (const auto& n : List(l.reports))
    if (n[0] == '.') CM_RETURN_IF_ERROR(RemoveTree(l.reports + "/" + n));
  return Status::Ok();
}

}  // namespace

Status Recover(ContentRoot& root) {
  CM_RETURN_IF_ERROR(FinishJournal(root));
  const State& s = root.state();
  if (s.HasStage() && ::access(root.layout().StageDir(s.staged_dir).c_str(), F_OK) != 0) {
    log::Warn("staged tree " + s.staged_dir + " of job " + s.staged_job + " is missing; dropping it");
    root.state().ClearStage();
    CM_RETURN_IF_ERROR(root.SaveState());
  }
  CM_RETURN_IF_ERROR(CleanLeftovers(root));
  auto cur = ReadCurrent(root.layout());
  if (cur.ok() && *cur != s.current)
    log::Warn("ROOT/current points at " + (cur->empty() ? std::string("nothing") : *cur) + " but the state says " +
              (s.current.empty() ? std::string("nothing") : s.current));
  return Status::Ok();
}

}  // namespace cm::apply
