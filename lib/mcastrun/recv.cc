// cm-mcast recv and hash: a Receiver into a directory (one session, or every
// session as a daemon with a want list), --exec per completed file.
#include <sys/stat.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "mcast/file_store.h"
#include "mcast/receiver.h"
#include "mcastrun/output.h"
#include "mcastrun/run.h"
#include "util/command_template.h"
#include "util/file_util.h"
#include "util/hash.h"
#include "util/hangup.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strings.h"
#include "util/subprocess.h"

namespace cm::mcastrun {
namespace {

using namespace cm::mcast;

// "HASH SIZE NAME" per line (the want-list format); blank lines and lines
// starting with '#' are skipped.
Result<std::vector<WantEntry>> ReadWantList(const std::string& path) {
  std::ifstream f(path);
  if (!f) return ErrnoError(path, errno);
  std::vector<WantEntry> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.empty() || line[0] == '#' || line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream in(line);
    std::string hex, size, name;
    in >> hex >> size >> std::ws;
    std::getline(in, name);
    while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.pop_back();
    WantEntry e;
    char* end = nullptr;
    e.size = std::strtoull(size.c_str(), &end, 10);
    bool plain = !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
                 name.size() <= kMaxNameLen;
    if (!FromHex(hex, e.hash.data(), e.hash.size()) || size.empty() || *end || !plain)
      return Error(Code::kUsage, path + ":" + std::to_string(n) + ": want 'HASH SIZE NAME' (cm-mcast hash FILE)");
    e.name = name;
    out.push_back(std::move(e));
  }
  return out;
}

// Tells whether the want list's file changed since the last call.
class FileWatch {
 public:
  explicit FileWatch(std::string path) : path_(std::move(path)) {}
  bool Changed() {
    struct stat now {};
    if (stat(path_.c_str(), &now) != 0) return false;
    bool changed = now.st_ino != last_.st_ino || now.st_size != last_.st_size ||
                   now.st_mtim.tv_sec != last_.st_mtim.tv_sec || now.st_mtim.tv_nsec != last_.st_mtim.tv_nsec;
    last_ = now;
    return changed;
  }

 private:
  std::string path_;
  struct stat last_ {};
};

// Runs --exec for one file: argv only, the path one argument; its output
// goes to our stderr (stdout carries our records).
void RunExec(const std::vector<std::string>& tmpl, const std::string& path) {
  ProcessOptions po;
  auto r = RunProcess(SubstituteBraces(tmpl, path), po);
  if (!r.ok()) return log::Warn("--exec: " + r.status().ToString());
  std::fwrite(r->out.data(), 1, r->out.size(), stderr);
  std::fwrite(r->err.data(), 1, r->err.size(), stderr);
  if (r->exit_code != 0) log::Warn("--exec exited " + std::to_string(r->exit_code) + " for " + path);
}

void ReportResult(bool json, const SessionResult& r, const std::string& path) {
  bool ok = r.state == RecvState::kComplete;
  if (json)
    std::cout << Record("file_result").Str("file", path).Str("state", ok ? "complete" : "failed").Str("reason", r.reason)
                     .Bool("already_had", r.already_had).Uint("size", r.size).Uint("unicast_frames", r.unicast_frames)
                     .Uint("resumed_bytes", r.resumed_bytes).Build() << "\n";
  else
    std::cout << path << " " << (ok ? "complete" : "failed") << (r.reason.empty() ? "" : ": " + r.reason) << "\n";
  std::cout.flush();
}

}  // namespace

Code Recv(const RecvJob& job) {
  // A directory that does not exist is not found (3), as cm-apply's root;
  // something else in its place is a usage error (2).
  struct stat st;
  if (stat(job.dir.c_str(), &st) != 0) {
    const Status e = ErrnoError(job.dir, errno);
    return log::Error(e), e.code();
  }
  if (!S_ISDIR(st.st_mode)) return log::Error(job.dir + ": not a directory"), Code::kUsage;
  if (job.daemon) IgnoreHangups();
  ReceiverConfig rc;
  FileWatch want_watch(job.want_file);
  if (!job.want_file.empty()) {
    want_watch.Changed();
    auto w = ReadWantList(job.want_file);
    if (!w.ok()) return log::Error(w.status()), w.status().code();
    rc.wants = std::move(*w);
    rc.want_period = std::max<proto::Micros>(job.want_period, 50 * proto::kMillis);
  }
  auto drv = OpenDriver(job.net);
  if (!drv.ok()) return log::Error(drv.status()), drv.status().code();
  FileStore store(job.dir);
  rc.id = job.id;
  rc.group = job.net.group;
  rc.key = job.net.key;
  rc.one_session = !job.daemon;
  rc.give_up = job.timeout;
  rc.seed = RandomSeed();
  rc.wall_offset = WallOffset(**drv);
  rc.replay_window = job.replay_window;
  Receiver receiver(rc, &store);
  net::Driver* driver = drv->get();
  net::CoreRef<Receiver> ref(&receiver);
  size_t handled = 0;
  int ticks = 0;
  Code worst = Code::kOk;
  const proto::Micros started = driver->now();
  auto handle_results = [&] {
    for (; handled < receiver.results().size(); ++handled) {
      const SessionResult& r = receiver.results()[handled];
      std::string path = store.PathOf(r.name);
      ReportResult(job.net.json, r, path);
      if (r.state != RecvState::kComplete)
        worst = std::max(worst, r.error == Code::kCorrupt ? Code::kCorrupt : Code::kFailure);
      else if (!job.exec.empty())
        RunExec(job.exec, path);
    }
  };
  auto done = [&] {
    if (rc.one_session && receiver.results().empty() && driver->now() - started > job.timeout &&
        receiver.progress().second == 0)
      return true;  // no session started in time
    return receiver.finished();
  };
  auto tick = [&] {
    receiver.set_wall_offset(WallOffset(*driver));
    NoteHangup();
    if (!job.want_file.empty() && ++ticks % 5 == 0 && want_watch.Changed()) {
      auto w = ReadWantList(job.want_file);
      if (!w.ok()) {
        log::Warn(w.status().ToString() + " (keeping the previous list)");
      } else {
        log::Info("want list re-read: " + std::to_string(w->size()) + " objects");
        driver->Call([&](proto::Micros now, proto::Effects* out) { receiver.SetWants(now, std::move(*w), out); });
      }
    }
    if (!log::ProgressEnabled()) return;
    auto [have, total] = receiver.progress();
    if (total) log::Progress(HumanBytes(have) + " of " + HumanBytes(total));
  };
  net::RunEnd end = driver->Run(ref, {.done = done,
                                      .after = [&](const proto::Effects& fx) {
                                        PrintEvents(fx, job.net.json, Role::kReceiver);
                                        handle_results();
                                      },
                                      .tick = tick});
  log::ProgressDone();
  handle_results();
  // A daemon's normal end is SIGINT/SIGTERM: its code is the worst session's.
  if (end == net::RunEnd::kInterrupted && rc.one_session)
    return log::Error(Error(Code::kFailure, "interrupted")), Code::kFailure;
  if (rc.one_session && receiver.results().empty()) {
    log::Error("no session heard on " + job.net.group.ToString() + " within " +
               std::to_string(job.timeout / proto::kSeconds) + " s");
    return Code::kNotFound;
  }
  return worst;
}

Code Hash(const std::vector<std::string>& files, bool json) {
  Code worst = Code::kOk;
  for (const auto& path : files) {
    struct stat st;
    auto h = HashPath(path);
    if (!h.ok() || stat(path.c_str(), &st) != 0) {
      Status err = h.ok() ? ErrnoError(path, errno) : h.status();
      log::Error(err);
      worst = std::max(worst, h.ok() ? Code::kIo : err.code());
      continue;
    }
    if (json)
      std::cout << Record("hash").Str("file", path).Str("hash", ToHex(*h)).Uint("size", uint64_t(st.st_size))
                       .Str("name", BaseName(path)).Build() << "\n";
    else
      std::cout << ToHex(*h) << " " << st.st_size << " " << BaseName(path) << "\n";
  }
  return worst;
}

}  // namespace cm::mcastrun
