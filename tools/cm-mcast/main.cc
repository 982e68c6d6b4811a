// cm-mcast: reliable multicast of files to a LAN. Option parsing, wiring of
// the cores (lib/mcast) to the sockets (lib/net), and exit codes only.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <random>
#include <toml++/toml.h>

#include "mcast/file_store.h"
#include "mcast/receiver.h"
#include "mcast/sender.h"
#include "net/driver.h"
#include "pack/keys.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strings.h"

namespace {

using namespace cm;
using namespace cm::mcast;

struct Options {
  std::string group, iface = "127.0.0.1", id, key_file, config = "/etc/content-mover/mcast.toml";
  std::string rate = "500M";
  std::vector<std::string> files, receivers;
  int expect = 0, quorum = 0, max_passes = 4, frame_size = 0, block = 128;
  std::string backup_for;
  std::string out_dir, serve_dir, exec;
  double timeout = 30;
  bool json = false, quiet = false;
  int verbose = 0;
};

// "500M" -> 500e6 bits per second (decimal multiples, as for link rates).
std::optional<uint64_t> ParseRate(std::string s) {
  if (s.empty()) return std::nullopt;
  uint64_t mult = 1;
  char c = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
  if (c == 'K' || c == 'M' || c == 'G') {
    mult = c == 'K' ? 1000 : c == 'M' ? 1000000 : 1000000000;
    s.pop_back();
  }
  try {
    size_t pos;
    double v = std::stod(s, &pos);
    if (pos != s.size() || v <= 0) return std::nullopt;
    return static_cast<uint64_t>(v * static_cast<double>(mult));
  } catch (...) {
    return std::nullopt;
  }
}

Status LoadConfig(Options* o, CLI::App& app, bool explicit_path) {
  if (access(o->config.c_str(), R_OK) != 0)
    return explicit_path ? ErrnoError(o->config, errno) : Status::Ok();
  toml::table t;
  try {
    t = toml::parse_file(o->config);
  } catch (const toml::parse_error& e) {
    return Error(Code::kUsage, o->config + ": " + std::string(e.description()));
  }
  auto unset = [&](const char* opt) {
    for (auto* sub : app.get_subcommands())
      if (auto* op = sub->get_option_no_throw(opt); op && op->count()) return false;
    return true;
  };
  if (auto v = t["group"].value<std::string>(); v && unset("--group")) o->group = *v;
  if (auto v = t["iface"].value<std::string>(); v && unset("--iface")) o->iface = *v;
  if (auto v = t["rate"].value<std::string>(); v && unset("--rate")) o->rate = *v;
  if (auto v = t["id"].value<std::string>(); v && unset("--id")) o->id = *v;
  if (auto v = t["key"].value<std::string>(); v && unset("--key")) o->key_file = *v;
  if (auto v = t["quorum"].value<int64_t>(); v && unset("--quorum")) o->quorum = static_cast<int>(*v);
  if (auto v = t["max_passes"].value<int64_t>(); v && unset("--max-passes")) o->max_passes = static_cast<int>(*v);
  if (auto v = t["backup_for"].value<std::string>(); v && unset("--backup-for")) o->backup_for = *v;
  if (auto v = t["exec"].value<std::string>(); v && unset("--exec")) o->exec = *v;
  if (auto* arr = t["receivers"].as_array(); arr && unset("--receivers"))
    for (auto& e : *arr)
      if (auto s = e.value<std::string>()) o->receivers.push_back(*s);
  return Status::Ok();
}

struct Common {
  proto::Address group;
  uint32_t iface = 0;
  std::optional<GroupKey> key;
};

Result<Common> Resolve(const Options& o) {
  Common c;
  if (!proto::ParseAddress(o.group, &c.group) || !c.group.IsMulticast())
    return Error(Code::kUsage, "--group: want a multicast ADDR:PORT (224.0.0.0/4), got '" + o.group + "'");
  proto::Address a;
  if (!proto::ParseAddress(o.iface + ":0", &a)) return Error(Code::kUsage, "--iface: want an IPv4 address");
  c.iface = a.ip;
  if (!o.key_file.empty()) {
    auto k = pack::LoadGroupKey(o.key_file);
    if (!k.ok()) return k.status();
    c.key = k->bytes;
  }
  return c;
}

std::string DefaultId(const Options& o) {
  if (!o.id.empty()) return o.id;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return o.iface == "127.0.0.1" ? std::string(host) : o.iface;
}

void PrintEvents(const proto::Effects& fx, bool json, const char* role) {
  for (const auto& e : fx.events) {
    if (json)
      std::cout << JsonObject().Str("event", e).Str("role", role).Build() << "\n";
    else if (e.rfind("alert", 0) == 0 || e.rfind("error", 0) == 0)
      log::Warn(e);
    else
      log::Info(e);
  }
  if (json && !fx.events.empty()) std::cout.flush();
}

int RunSend(const Options& o) {
  auto c = Resolve(o);
  if (!c.ok()) return log::Error(c.status()), ExitCodeFor(c.status());
  auto rate = ParseRate(o.rate);
  if (!rate) return log::Error("--rate: want e.g. 500M (bits per second)"), kExitUsage;
  int frame = o.frame_size ? o.frame_size : c->key ? 1424 : 1440;  // fills a 1500-byte MTU
  if (frame < 64 || frame + kDataHeaderSize + (c->key ? kTagSize : 0) > kMaxDatagram)
    return log::Error("--frame-size: 64 to " + std::to_string(kMaxDatagram - kDataHeaderSize - kTagSize)), kExitUsage;
  net::DriverConfig dc;
  dc.group = c->group;
  dc.iface = c->iface;
  auto drv = net::Driver::Open(dc);
  if (!drv.ok()) return log::Error(drv.status()), ExitCodeFor(drv.status());
  for (auto& w : (*drv)->warnings()) log::Warn(w);
  log::Info("rate " + std::to_string(*rate / 1000000) + " Mbit/s, group " + o.group + ", iface " + o.iface);
  if (o.backup_for.empty() && log::Verbosity() >= 1 && !o.json)
    std::fprintf(stderr, "cm-mcast: sending at %.0f Mbit/s (--rate to change) to %s\n", double(*rate) / 1e6,
                 o.group.c_str());
  int worst = kExitOk;
  std::random_device rd;
  for (const auto& path : o.files) {
    auto src = FileSource::Open(path);
    if (!src.ok()) {
      log::Error(src.status());
      worst = std::max(worst, ExitCodeFor(src.status()));
      continue;
    }
    auto h = HashPath(path);
    if (!h.ok()) return log::Error(h.status()), ExitCodeFor(h.status());
    SenderConfig sc;
    sc.id = DefaultId(o);
    sc.name = BaseName(path);
    sc.hash = *h;
    sc.size = (*src)->size();
    sc.frame_size = static_cast<uint16_t>(frame);
    sc.block_k = o.block;
    sc.rate_bps = *rate;
    sc.max_passes = o.max_passes;
    sc.receivers = o.receivers;
    sc.expect = o.expect;
    sc.quorum = o.quorum;
    sc.group = c->group;
    sc.backup_for = o.backup_for;
    sc.key = c->key;
    sc.seed = (uint64_t(rd()) << 32) ^ rd();
    Sender sender(sc, src->get());
    net::CoreRef<Sender> ref(&sender);
    proto::Micros t0 = net::MonotonicMicros();
    Status st = (*drv)->Run(
        ref, [&] { return sender.finished(); }, [&](const proto::Effects& fx) { PrintEvents(fx, o.json, "sender"); },
        [&] {
          if (!log::ProgressEnabled()) return;
          uint64_t have = 0;
          int done = 0;
          for (auto& [id, r] : sender.receivers()) {
            have += r.have_bytes;
            done += r.state == RecvState::kComplete;
          }
          size_t n = std::max<size_t>(sender.receivers().size(), 1);
          log::Progress(sc.name + ": " + std::to_string(done) + "/" + std::to_string(sender.receivers().size()) +
                        " done, " + HumanBytes(have / n) + " avg of " + HumanBytes(sc.size) + ", " +
                        std::to_string(sender.rate_bps() / 1000000) + " Mbit/s");
        });
    log::ProgressDone();
    if (!st.ok()) return log::Error(st), ExitCodeFor(st);
    double secs = double(net::MonotonicMicros() - t0) / 1e6;
    // One line per receiver: the report.
    for (auto& [id, r] : sender.receivers()) {
      const char* state = r.state == RecvState::kComplete ? "complete" : r.state == RecvState::kFailed ? "failed" : "unknown";
      if (o.json)
        std::cout << JsonObject().Str("file", sc.name).Str("receiver", id).Str("state", state).Str("reason", r.reason)
                         .Uint("unicast_frames", r.unicast_frames).Build() << "\n";
      else
        std::cout << sc.name << " " << id << " " << state << (r.reason.empty() ? "" : ": " + r.reason) << "\n";
    }
    const auto& ss = sender.stats();
    if (o.json)
      std::cout << JsonObject().Str("file", sc.name).Str("outcome", OutcomeName(sender.outcome())).Double("seconds", secs)
                       .Uint("size", sc.size).Uint("data_frames", ss.data_frames).Uint("repair_frames", ss.repair_frames)
                       .Uint("unicast_frames", ss.unicast_frames).Uint("multicast_bytes", ss.bytes).Build() << "\n";
    else
      log::Info(sc.name + ": " + OutcomeName(sender.outcome()) + " in " + std::to_string(secs) + " s, " +
                std::to_string(ss.data_frames) + " data + " + std::to_string(ss.repair_frames) + " repair + " +
                std::to_string(ss.unicast_frames) + " unicast frames");
    std::cout.flush();
    int code = kExitOk;
    if (!o.backup_for.empty()) code = kExitOk;  // a backup's job is to stand by
    else if (sender.outcome() == Outcome::kQuorum) code = kExitPartial;
    else if (sender.outcome() != Outcome::kAllDone) code = kExitFailure;
    worst = std::max(worst, code);
  }
  return worst;
}

int RunExec(const std::string& tmpl, const std::string& path) {
  std::string cmd;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl.compare(i, 2, "{}") == 0) {
      std::string q = "'";
      for (char ch : path) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
      cmd += q + "'";
      ++i;
    } else {
      cmd += tmpl[i];
    }
  }
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

int RunRecv(const Options& o) {
  auto c = Resolve(o);
  if (!c.ok()) return log::Error(c.status()), ExitCodeFor(c.status());
  std::string dir = o.serve_dir.empty() ? o.out_dir : o.serve_dir;
  if (dir.empty()) return log::Error("recv: give -o DIR (one session) or --serve DIR"), kExitUsage;
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return log::Error(dir + ": not a directory"), kExitUsage;
  net::DriverConfig dc;
  dc.group = c->group;
  dc.iface = c->iface;
  auto drv = net::Driver::Open(dc);
  if (!drv.ok()) return log::Error(drv.status()), ExitCodeFor(drv.status());
  for (auto& w : (*drv)->warnings()) log::Warn(w);
  FileStore store(dir);
  ReceiverConfig rc;
  rc.id = DefaultId(o);
  rc.group = c->group;
  rc.key = c->key;
  rc.one_session = o.serve_dir.empty();
  rc.give_up = static_cast<proto::Micros>(o.timeout * 1e6);
  std::random_device rd;
  rc.seed = (uint64_t(rd()) << 32) ^ rd();
  Receiver receiver(rc, &store);
  net::CoreRef<Receiver> ref(&receiver);
  size_t handled = 0;
  int worst = kExitOk;
  proto::Micros started = net::MonotonicMicros();
  auto handle_results = [&] {
    for (; handled < receiver.results().size(); ++handled) {
      const SessionResult& r = receiver.results()[handled];
      bool ok = r.state == RecvState::kComplete;
      std::string path = store.PathOf(r.name);
      if (o.json)
        std::cout << JsonObject().Str("file", path).Str("state", ok ? "complete" : "failed").Str("reason", r.reason)
                         .Bool("already_had", r.already_had).Uint("size", r.size).Uint("unicast_frames", r.unicast_frames)
                         .Uint("resumed_bytes", r.resumed_bytes)
                         .Build() << "\n";
      else
        std::cout << path << " " << (ok ? "complete" : "failed") << (r.reason.empty() ? "" : ": " + r.reason) << "\n";
      std::cout.flush();
      if (!ok) worst = std::max(worst, r.reason == "hash mismatch" ? int(kExitCorrupt) : int(kExitFailure));
      if (ok && !o.exec.empty()) {
        int rcode = RunExec(o.exec, path);
        if (rcode != 0) log::Warn("--exec exited " + std::to_string(rcode) + " for " + path);
      }
    }
  };
  Status s = (*drv)->Run(
      ref,
      [&] {
        if (rc.one_session && receiver.results().empty() &&
            net::MonotonicMicros() - started > static_cast<proto::Micros>(o.timeout * 1e6) &&
            receiver.progress().second == 0)
          return true;  // no session started in time
        return receiver.finished();
      },
      [&](const proto::Effects& fx) {
        PrintEvents(fx, o.json, "receiver");
        handle_results();
      },
      [&] {
        if (!log::ProgressEnabled()) return;
        auto [have, total] = receiver.progress();
        if (total) log::Progress(HumanBytes(have) + " of " + HumanBytes(total));
      });
  log::ProgressDone();
  handle_results();
  if (!s.ok()) return log::Error(s), ExitCodeFor(s);
  if (rc.one_session && receiver.results().empty()) {
    log::Error("no session heard on " + o.group + " within " + std::to_string(int(o.timeout)) + " s");
    return kExitNotFound;
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"cm-mcast: reliable multicast of files to a LAN (NACK repair with Reed-Solomon parity)"};
  app.set_version_flag("--version", std::string("cm-mcast ") + CM_VERSION);
  app.require_subcommand(1);
  auto* config = app.add_option("--config", o.config, "TOML defaults (flags win)");
  auto common = [&](CLI::App* s) {
    s->add_option("--group", o.group, "multicast ADDR:PORT");
    s->add_option("--iface", o.iface, "interface address to send and join on (default 127.0.0.1)");
    s->add_option("--id", o.id, "this host's name in reports (default: hostname, or --iface)");
    s->add_option("--key", o.key_file, "group key file (cm-pack keygen --group): authenticate every packet");
    s->add_flag("--json", o.json, "JSON records on stdout");
    s->add_flag("-v,--verbose", o.verbose, "more messages (repeat for debug)");
    s->add_flag("-q,--quiet", o.quiet, "errors only");
  };
  auto* send = app.add_subcommand("send", "multicast FILE... to the group");
  common(send);
  send->add_option("files", o.files, "files to send")->required();
  send->add_option("--rate", o.rate, "wire rate in bits/s, e.g. 200M (default 500M)");
  auto* rl = send->add_option("--receivers", o.receivers, "receiver ids that must complete")->delimiter(',');
  send->add_option("--expect", o.expect, "number of receivers to expect")->excludes(rl);
  send->add_option("--quorum", o.quorum, "enough completed receivers for exit 11 instead of 1");
  send->add_option("--max-passes", o.max_passes, "multicast repair rounds per block before unicast (default 4)");
  send->add_option("--frame-size", o.frame_size, "payload bytes per frame (default 1440, 1424 with --key)");
  send->add_option("--block", o.block, "frames per FEC block, 1-128 (default 128)");
  send->add_option("--backup-for", o.backup_for, "stand by as backup for the sender with this id");
  auto* recv = app.add_subcommand("recv", "receive files from the group");
  common(recv);
  recv->add_option("-o,--output", o.out_dir, "receive one session into DIR");
  recv->add_option("--serve", o.serve_dir, "daemon: receive every session into DIR");
  recv->add_option("--exec", o.exec, "command run for each completed file, {} = its path");
  recv->add_option("--timeout", o.timeout, "seconds without a sender before giving up (default 30)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  log::Init("cm-mcast", o.quiet ? 0 : 1 + o.verbose);
  InitCrypto();
  InstallTempCleanup();
  if (Status s = LoadConfig(&o, app, config->count() > 0); !s.ok()) return log::Error(s), kExitUsage;
  if (o.group.empty()) return log::Error("--group ADDR:PORT is required (or group = in the config)"), kExitUsage;
  try {
    return send->parsed() ? RunSend(o) : RunRecv(o);
  } catch (const std::exception& e) {
    log::Error(e.what());
    return kExitFailure;
  }
}
