#include "apply/commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include "apply/switcher.h"
#include "util/file_util.h"

namespace cm::apply {
namespace {

int64_t MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

Report SwitchReport(const char* action, const Result<SwitchResult>& r, const std::string& job,
                    std::chrono::steady_clock::time_point t0) {
  Report rep;
  rep.job = job;
  rep.type = std::string(action) == "committed" ? "commit" : "rollback";
  rep.action = r.ok() ? (r->already ? "already-applied" : action) : "none";
  if (r.ok()) rep.release = r->to;
  rep.status = r.status();
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
    auto r = Commit(root->get(), last_job, std::nullopt);
    out.reports.push_back(SwitchReport("committed", r, last_job, t0));
    out.status = r.status();
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
  const std::string j = job.empty() ? (*root)->state().staged_job : job;
  auto r = Commit(root->get(), job, std::nullopt);
  out.reports.push_back(SwitchReport("committed", r, j, t0));
  out.status = r.status();
  return out;
}

Outcome RunRollback(const std::string& root_dir, const RootOptions& ro) {
  Outcome out;
  auto root = ContentRoot::Open(root_dir, ro);
  if (!root.ok()) {
    out.status = root.status();
    return out;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto r = Rollback(root->get(), std::nullopt);
  out.reports.push_back(SwitchReport("rolled-back", r, "", t0));
  out.status = r.status();
  return out;
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
