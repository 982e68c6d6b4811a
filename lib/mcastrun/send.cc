// cm-mcast send and serve: a Sender per file in turn, then (--stay, or
// serve) one Server for them all, on one driver.
#include <cstdio>
#include <iostream>

#include "mcast/file_store.h"
#include "mcast/server.h"
#include "mcastrun/output.h"
#include "mcastrun/run.h"
#include "util/hangup.h"
#include "util/json.h"
#include "util/log.h"
#include "util/file_util.h"
#include "util/strings.h"

namespace cm::mcastrun {
namespace {

using namespace cm::mcast;

// Opens FILE (growing to final_size bytes when given) and starts hashing it
// in the background: the session starts before the hash is known.
Result<std::unique_ptr<FileSource>> OpenSource(const SendJob& job, const std::string& path) {
  auto src = job.final_size ? FileSource::OpenGrowing(path, *job.final_size) : FileSource::Open(path);
  if (!src.ok()) return src.status();
  (*src)->StartHashing();
  return src;
}

struct Files {
  std::vector<std::string> paths;
  std::vector<std::unique_ptr<FileSource>> sources;
};

// Opens every file; a file that fails is logged and worsens *worst.
Files OpenAll(const SendJob& job, Code* worst) {
  Files f;
  for (const auto& path : job.files) {
    auto src = OpenSource(job, path);
    if (!src.ok()) {
      log::Error(src.status());
      *worst = std::max(*worst, src.status().code());
      continue;
    }
    f.paths.push_back(path);
    f.sources.push_back(std::move(*src));
  }
  return f;
}

void Progress(const SenderConfig& sc, const Sender& sender) {
  if (!log::ProgressEnabled()) return;
  uint64_t have = 0;
  int done = 0;
  for (auto& [id, r] : sender.receivers()) {
    have += r.have_bytes;
    done += r.state == RecvState::kComplete;
  }
  size_t n = std::max<size_t>(sender.receivers().size(), 1);
  log::Progress(sc.name + ": " + std::to_string(done) + "/" + std::to_string(sender.receivers().size()) + " done, " +
                HumanBytes(have / n) + " avg of " + HumanBytes(sc.size) + ", " +
                std::to_string(sender.rate_bps() / 1000000) + " Mbit/s");
}

void ReportOutcome(bool json, const SenderConfig& sc, const Sender& sender, double secs) {
  const auto& ss = sender.stats();
  if (json)
    std::cout << Record("send_result").Str("file", sc.name).Str("outcome", OutcomeName(sender.outcome())).Double("seconds", secs)
                     .Uint("size", sc.size).Uint("data_frames", ss.data_frames).Uint("repair_frames", ss.repair_frames)
                     .Uint("unicast_frames", ss.unicast_frames).Uint("multicast_bytes", ss.bytes)
                     .Uint("tail_parity", ss.tail_parity).Double("pacing_lost_s", double(ss.pacing_lost) / 1e6)
                     .Build() << "\n";
  else
    log::Info(sc.name + ": " + OutcomeName(sender.outcome()) + " in " + std::to_string(secs) + " s, " +
              std::to_string(ss.data_frames) + " data + " + std::to_string(ss.repair_frames) + " repair + " +
              std::to_string(ss.unicast_frames) + " unicast frames");
  std::cout.flush();
}

// Serves wants for the files until SIGINT/SIGTERM (a daemon's normal end).
Code ServeLoop(const SendJob& job, net::Driver& drv, const Files& files) {
  ServerConfig vc;
  vc.session = job.session;
  vc.seed = RandomSeed();
  vc.session.wall_offset = WallOffset(drv);
  std::vector<ServedObject> objects;
  for (size_t i = 0; i < files.sources.size(); ++i)
    objects.push_back({BaseName(files.paths[i]), files.sources[i]->size(), files.sources[i].get()});
  Server server(vc, objects);
  net::CoreRef<Server> ref(&server);
  size_t reported = 0;
  log::Info("serving " + std::to_string(objects.size()) + " files on " + job.net.group.ToString() + " until stopped");
  drv.Run(ref, {.after = [&](const proto::Effects& fx) {
            PrintEvents(fx, job.net.json, Role::kServer);
            for (; reported < server.sessions().size(); ++reported)
              ReportReceivers(job.net.json, server.sessions()[reported].name, server.sessions()[reported].receivers);
          },
          .tick =
              [&] {
                server.set_wall_offset(WallOffset(drv));
                NoteHangup();
              }});
  return Code::kOk;
}

}  // namespace

Code Send(const SendJob& job) {
  if (job.stay) IgnoreHangups();  // a daemon once the files are out
  auto drv = OpenDriver(job.net);
  if (!drv.ok()) return log::Error(drv.status()), drv.status().code();
  const SenderConfig& tmpl = job.session;
  log::Info("rate " + std::to_string(tmpl.rate_bps / 1000000) + " Mbit/s, group " + job.net.group.ToString());
  if (tmpl.backup_for.empty() && log::Verbosity() >= 1 && !job.net.json)
    std::fprintf(stderr, tmpl.start_rate_bps ? "cm-mcast: finding the link's rate (at most %.0f Mbit/s; --rate to cap) for %s\n"
                                             : "cm-mcast: sending at %.0f Mbit/s (--rate to change) to %s\n",
                 double(tmpl.rate_bps) / 1e6, job.net.group.ToString().c_str());
  Code worst = Code::kOk;
  Files files = OpenAll(job, &worst);
  for (size_t i = 0; i < files.sources.size(); ++i) {
    FileSource* src = files.sources[i].get();
    SenderConfig sc = tmpl;
    sc.name = BaseName(files.paths[i]);
    sc.size = src->size();
    sc.seed = RandomSeed();
    sc.wall_offset = WallOffset(**drv);
    Sender sender(sc, src);
    net::CoreRef<Sender> ref(&sender);
    proto::Micros t0 = net::MonotonicMicros();
    net::RunEnd end = (*drv)->Run(ref, {.done = [&] { return sender.finished(); },
                                        .after = [&](const proto::Effects& fx) { PrintEvents(fx, job.net.json, Role::kSender); },
                                        .tick = [&] { Progress(sc, sender); }});
    log::ProgressDone();
    if (end == net::RunEnd::kInterrupted) return log::Error(Error(Code::kFailure, "interrupted")), Code::kFailure;
    if (!src->hash_error().empty()) log::Error(files.paths[i] + ": " + src->hash_error());
    ReportReceivers(job.net.json, sc.name, sender.receivers());
    ReportOutcome(job.net.json, sc, sender, double(net::MonotonicMicros() - t0) / 1e6);
    Code code = Code::kOk;
    if (!sc.backup_for.empty()) code = Code::kOk;  // a backup's job is to stand by
    else if (sender.outcome() == Outcome::kQuorum) code = Code::kPartial;
    else if (sender.outcome() != Outcome::kAllDone) code = Code::kFailure;
    worst = std::max(worst, code);
  }
  if (job.stay) ServeLoop(job, **drv, files);
  return worst;
}

Code Serve(const SendJob& job) {
  IgnoreHangups();
  auto drv = OpenDriver(job.net);
  if (!drv.ok()) return log::Error(drv.status()), drv.status().code();
  Code worst = Code::kOk;
  Files files = OpenAll(job, &worst);
  if (worst != Code::kOk) return worst;
  return ServeLoop(job, **drv, files);
}

}  // namespace cm::mcastrun
