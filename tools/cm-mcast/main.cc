// cm-mcast: reliable multicast of files to a LAN. Option parsing, wiring of
// the cores (lib/mcast) to the sockets (lib/net), and exit codes only.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "mcast/file_store.h"
#include "mcast/receiver.h"
#include "mcast/sender.h"
#include "mcast/server.h"
#include "net/driver.h"
#include "util/group_key.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strings.h"
#include "util/toml_flags.h"

namespace {

using namespace cm;
using namespace cm::mcast;

struct Options {
  std::string group, iface = "127.0.0.1", id, key_file, config = "/etc/content-mover/mcast.toml";
  std::string rate = "500M";
  std::vector<std::string> files, receivers;
  int expect = 0, quorum = 0, max_passes = 4, frame_size = 0, block = 128;
  std::string backup_for;
  std::string out_dir, serve_dir, exec, want_file;
  double timeout = 30, want_period = 2;
  uint64_t final_size = 0;
  bool final_size_set = false, stay = false, loop = false;
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

// TOML defaults under the flags of the subcommand given (flags win; a key
// whose flag that subcommand lacks is always filled).
Status LoadConfig(Options* o, CLI::App& app, bool explicit_path) {
  if (access(o->config.c_str(), R_OK) != 0)
    return explicit_path ? ErrnoError(o->config, errno) : Status::Ok();
  CLI::App* sub = app.get_subcommands().empty() ? &app : app.get_subcommands().front();
  auto flag = [&](const char* name) { return sub->get_option_no_throw(name); };
  TomlFlags t;
  t.Bind("group", &o->group, flag("--group"))
      .Bind("iface", &o->iface, flag("--iface"))
      .Bind("rate", &o->rate, flag("--rate"))
      .Bind("id", &o->id, flag("--id"))
      .Bind("key", &o->key_file, flag("--key"))
      .Bind("quorum", &o->quorum, flag("--quorum"))
      .Bind("max_passes", &o->max_passes, flag("--max-passes"))
      .Bind("backup_for", &o->backup_for, flag("--backup-for"))
      .Bind("exec", &o->exec, flag("--exec"))
      .Bind("want", &o->want_file, flag("--want"))
      .Bind("receivers", &o->receivers, flag("--receivers"));
  return t.Apply(o->config);
}

struct Common {
  proto::Address group;
  uint32_t iface = 0;
  std::optional<GroupKey> key;
  bool loop = true;
};

Result<Common> Resolve(const Options& o) {
  Common c;
  if (!proto::ParseAddress(o.group, &c.group) || !c.group.IsMulticast())
    return Error(Code::kUsage, "--group: want a multicast ADDR:PORT (224.0.0.0/4), got '" + o.group + "'");
  proto::Address a;
  if (!proto::ParseAddress(o.iface + ":0", &a)) return Error(Code::kUsage, "--iface: want an IPv4 address");
  c.iface = a.ip;
  // Our own multicast is looped back to this host only when it is needed:
  // peers on the loopback interface (tests, one-host setups) or --loop. On a
  // LAN interface the copies would only cost the sender a receive per frame.
  c.loop = o.loop || (a.ip >> 24) == 127;
  if (!o.key_file.empty()) {
    auto k = LoadGroupKey(o.key_file);
    if (!k.ok()) return k.status();
    c.key = *k;
  }
  return c;
}

std::string DefaultId(const Options& o) {
  if (!o.id.empty()) return o.id;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return o.iface == "127.0.0.1" ? std::string(host) : o.iface;
}

const proto::Micros g_start = net::MonotonicMicros();

void PrintEvents(const proto::Effects& fx, bool json, const char* role) {
  for (const auto& e : fx.events) {
    if (json)
      std::cout << JsonObject().Str("event", e).Str("role", role)
                       .Double("t", double(net::MonotonicMicros() - g_start) / 1e6).Build() << "\n";
    else if (e.rfind("alert", 0) == 0 || e.rfind("error", 0) == 0)
      log::Warn(e);
    else
      log::Info(e);
  }
  if (json && !fx.events.empty()) std::cout.flush();
}

// The per-session settings every sender shares (send, serve).
Result<SenderConfig> SessionTemplate(const Options& o, const Common& c) {
  auto rate = ParseRate(o.rate);
  if (!rate) return Error(Code::kUsage, "--rate: want e.g. 500M (bits per second)");
  int frame = o.frame_size ? o.frame_size : c.key ? 1424 : 1440;  // fills a 1500-byte MTU
  if (frame < 64 || frame + kDataHeaderSize + (c.key ? kTagSize : 0) > kMaxDatagram)
    return Error(Code::kUsage, "--frame-size: 64 to " + std::to_string(kMaxDatagram - kDataHeaderSize - kTagSize));
  SenderConfig sc;
  sc.id = DefaultId(o);
  sc.frame_size = static_cast<uint16_t>(frame);
  sc.block_k = o.block;
  sc.rate_bps = *rate;
  sc.max_passes = o.max_passes;
  sc.group = c.group;
  sc.key = c.key;
  return sc;
}

Result<std::unique_ptr<net::Driver>> OpenDriver(const Common& c) {
  net::DriverConfig dc;
  dc.group = c.group;
  dc.iface = c.iface;
  dc.loop = c.loop;
  auto drv = net::Driver::Open(dc);
  if (!drv.ok()) return drv.status();
  for (auto& w : (*drv)->warnings()) log::Warn(w);
  return drv;
}

// Opens FILE (growing to --final-size bytes when given) and starts hashing
// it in the background: the session starts before the hash is known.
Result<std::unique_ptr<FileSource>> OpenSource(const Options& o, const std::string& path) {
  auto src = o.final_size_set ? FileSource::OpenGrowing(path, o.final_size) : FileSource::Open(path);
  if (!src.ok()) return src.status();
  (*src)->StartHashing();
  return src;
}

bool Interrupted(const Status& st) { return st.code() == Code::kFailure && st.message() == "interrupted"; }

// One line (or JSON record) per receiver of a finished session.
void ReportReceivers(const Options& o, const std::string& name, const std::map<std::string, ReceiverInfo>& rs) {
  for (auto& [id, r] : rs) {
    const char* state = r.state == RecvState::kComplete ? "complete" : r.state == RecvState::kFailed ? "failed" : "unknown";
    if (o.json)
      std::cout << JsonObject().Str("file", name).Str("receiver", id).Str("state", state).Str("reason", r.reason)
                       .Uint("unicast_frames", r.unicast_frames).Build() << "\n";
    else
      std::cout << name << " " << id << " " << state << (r.reason.empty() ? "" : ": " + r.reason) << "\n";
  }
  std::cout.flush();
}

int RunServeLoop(const Options& o, const Common& c, const SenderConfig& tmpl, net::Driver& drv,
                 const std::vector<std::string>& paths, std::vector<std::unique_ptr<FileSource>>& sources);

int RunSend(const Options& o) {
  auto c = Resolve(o);
  if (!c.ok()) return log::Error(c.status()), ExitCodeFor(c.status());
  auto tmpl = SessionTemplate(o, *c);
  if (!tmpl.ok()) return log::Error(tmpl.status()), ExitCodeFor(tmpl.status());
  if (o.final_size_set && o.files.size() != 1) return log::Error("--final-size: give exactly one FILE"), kExitUsage;
  auto drv = OpenDriver(*c);
  if (!drv.ok()) return log::Error(drv.status()), ExitCodeFor(drv.status());
  log::Info("rate " + std::to_string(tmpl->rate_bps / 1000000) + " Mbit/s, group " + o.group + ", iface " + o.iface);
  if (o.backup_for.empty() && log::Verbosity() >= 1 && !o.json)
    std::fprintf(stderr, "cm-mcast: sending at %.0f Mbit/s (--rate to change) to %s\n", double(tmpl->rate_bps) / 1e6,
                 o.group.c_str());
  int worst = kExitOk;
  std::random_device rd;
  std::vector<std::string> paths;
  std::vector<std::unique_ptr<FileSource>> sources;
  for (const auto& path : o.files) {
    auto src = OpenSource(o, path);
    if (!src.ok()) {
      log::Error(src.status());
      worst = std::max(worst, ExitCodeFor(src.status()));
      continue;
    }
    paths.push_back(path);
    sources.push_back(std::move(*src));
  }
  for (size_t i = 0; i < sources.size(); ++i) {
    FileSource* src = sources[i].get();
    SenderConfig sc = *tmpl;
    sc.name = BaseName(paths[i]);
    sc.size = src->size();
    sc.receivers = o.receivers;
    sc.expect = o.expect;
    sc.quorum = o.quorum;
    sc.backup_for = o.backup_for;
    sc.seed = (uint64_t(rd()) << 32) ^ rd();
    Sender sender(sc, src);
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
    if (!src->hash_error().empty()) log::Error(paths[i] + ": " + src->hash_error());
    double secs = double(net::MonotonicMicros() - t0) / 1e6;
    ReportReceivers(o, sc.name, sender.receivers());
    const auto& ss = sender.stats();
    if (o.json)
      std::cout << JsonObject().Str("file", sc.name).Str("outcome", OutcomeName(sender.outcome())).Double("seconds", secs)
                       .Uint("size", sc.size).Uint("data_frames", ss.data_frames).Uint("repair_frames", ss.repair_frames)
                       .Uint("unicast_frames", ss.unicast_frames).Uint("multicast_bytes", ss.bytes)
                       .Uint("tail_parity", ss.tail_parity).Double("pacing_lost_s", double(ss.pacing_lost) / 1e6)
                       .Build() << "\n";
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
  if (o.stay) RunServeLoop(o, *c, *tmpl, **drv, paths, sources);
  return worst;
}

// Serves wants for the files until SIGINT/SIGTERM (the normal way to stop a
// daemon: exit 0).
int RunServeLoop(const Options& o, const Common& c, const SenderConfig& tmpl, net::Driver& drv,
                 const std::vector<std::string>& paths, std::vector<std::unique_ptr<FileSource>>& sources) {
  (void)c;
  std::random_device rd;
  ServerConfig vc;
  vc.session = tmpl;
  vc.seed = (uint64_t(rd()) << 32) ^ rd();
  std::vector<ServedObject> objects;
  for (size_t i = 0; i < sources.size(); ++i) objects.push_back({BaseName(paths[i]), sources[i]->size(), sources[i].get()});
  Server server(vc, objects);
  net::CoreRef<Server> ref(&server);
  size_t reported = 0;
  log::Info("serving " + std::to_string(objects.size()) + " files on " + o.group + " until stopped");
  Status st = drv.Run(ref, [] { return false; }, [&](const proto::Effects& fx) {
    PrintEvents(fx, o.json, "server");
    for (; reported < server.sessions().size(); ++reported)
      ReportReceivers(o, server.sessions()[reported].name, server.sessions()[reported].receivers);
  });
  if (!st.ok() && !Interrupted(st)) return log::Error(st), ExitCodeFor(st);
  return kExitOk;
}

int RunServe(const Options& o) {
  auto c = Resolve(o);
  if (!c.ok()) return log::Error(c.status()), ExitCodeFor(c.status());
  auto tmpl = SessionTemplate(o, *c);
  if (!tmpl.ok()) return log::Error(tmpl.status()), ExitCodeFor(tmpl.status());
  auto drv = OpenDriver(*c);
  if (!drv.ok()) return log::Error(drv.status()), ExitCodeFor(drv.status());
  std::vector<std::string> paths;
  std::vector<std::unique_ptr<FileSource>> sources;
  for (const auto& path : o.files) {
    auto src = OpenSource(o, path);
    if (!src.ok()) return log::Error(src.status()), ExitCodeFor(src.status());
    paths.push_back(path);
    sources.push_back(std::move(*src));
  }
  return RunServeLoop(o, *c, *tmpl, **drv, paths, sources);
}

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

int RunHash(const Options& o) {
  int worst = kExitOk;
  for (const auto& path : o.files) {
    struct stat st;
    auto h = HashPath(path);
    if (!h.ok() || stat(path.c_str(), &st) != 0) {
      log::Error(h.ok() ? ErrnoError(path, errno) : h.status());
      worst = std::max(worst, h.ok() ? int(kExitIo) : ExitCodeFor(h.status()));
      continue;
    }
    if (o.json)
      std::cout << JsonObject().Str("file", path).Str("hash", ToHex(*h)).Uint("size", uint64_t(st.st_size))
                       .Str("name", BaseName(path)).Build() << "\n";
    else
      std::cout << ToHex(*h) << " " << st.st_size << " " << BaseName(path) << "\n";
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
  if (!o.want_file.empty() && o.serve_dir.empty()) return log::Error("--want needs --serve DIR"), kExitUsage;
  ReceiverConfig rc;
  // The want list: re-read when its file changes (an updater rewrites it).
  struct stat want_st {};
  auto want_changed = [&] {
    struct stat now_st {};
    if (stat(o.want_file.c_str(), &now_st) != 0) return false;
    bool changed = now_st.st_ino != want_st.st_ino || now_st.st_size != want_st.st_size ||
                   now_st.st_mtim.tv_sec != want_st.st_mtim.tv_sec || now_st.st_mtim.tv_nsec != want_st.st_mtim.tv_nsec;
    want_st = now_st;
    return changed;
  };
  if (!o.want_file.empty()) {
    want_changed();
    auto w = ReadWantList(o.want_file);
    if (!w.ok()) return log::Error(w.status()), ExitCodeFor(w.status());
    rc.wants = std::move(*w);
    rc.want_period = static_cast<proto::Micros>(std::max(o.want_period, 0.05) * 1e6);
  }
  auto drv = OpenDriver(*c);
  if (!drv.ok()) return log::Error(drv.status()), ExitCodeFor(drv.status());
  FileStore store(dir);
  rc.id = DefaultId(o);
  rc.group = c->group;
  rc.key = c->key;
  rc.one_session = o.serve_dir.empty();
  rc.give_up = static_cast<proto::Micros>(o.timeout * 1e6);
  std::random_device rd;
  rc.seed = (uint64_t(rd()) << 32) ^ rd();
  Receiver receiver(rc, &store);
  net::Driver* driver = drv->get();
  int ticks = 0;
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
        if (!o.want_file.empty() && ++ticks % 5 == 0 && want_changed()) {
          auto w = ReadWantList(o.want_file);
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
      });
  log::ProgressDone();
  handle_results();
  // A daemon's normal end is SIGINT/SIGTERM: its exit code is the worst session's.
  if (!s.ok() && !(Interrupted(s) && !rc.one_session)) return log::Error(s), ExitCodeFor(s);
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
  send->add_flag("--stay", o.stay, "after sending, keep serving the files to receivers that want them (until stopped)");
  send->add_option("--final-size", o.final_size,
                   "FILE is still being written: send it as it grows, to this many bytes")
      ->each([&](const std::string&) { o.final_size_set = true; });
  send->add_flag("--loop", o.loop, "loop our multicast back to this host (default only on 127.0.0.1)");
  auto* serve = app.add_subcommand("serve", "serve FILE... to receivers that want them (recv --want), until stopped");
  common(serve);
  serve->add_option("files", o.files, "files to serve")->required();
  serve->add_option("--rate", o.rate, "wire rate in bits/s, e.g. 200M (default 500M)");
  serve->add_option("--max-passes", o.max_passes, "multicast repair rounds per block before unicast (default 4)");
  serve->add_option("--frame-size", o.frame_size, "payload bytes per frame (default 1440, 1424 with --key)");
  serve->add_option("--block", o.block, "frames per FEC block, 1-128 (default 128)");
  serve->add_flag("--loop", o.loop, "loop our multicast back to this host (default only on 127.0.0.1)");
  auto* hash = app.add_subcommand("hash", "print 'HASH SIZE NAME' for FILE... (the --want list format)");
  hash->add_option("files", o.files, "files to hash")->required();
  hash->add_flag("--json", o.json, "JSON records on stdout");
  auto* recv = app.add_subcommand("recv", "receive files from the group");
  common(recv);
  recv->add_option("-o,--output", o.out_dir, "receive one session into DIR");
  recv->add_option("--serve", o.serve_dir, "daemon: receive every session into DIR");
  recv->add_option("--exec", o.exec, "command run for each completed file, {} = its path");
  recv->add_option("--timeout", o.timeout, "seconds without a sender before giving up (default 30)");
  recv->add_option("--want", o.want_file,
                   "daemon: FILE lists what DIR should hold ('HASH SIZE NAME' lines, cm-mcast hash); missing ones are asked for");
  recv->add_option("--want-period", o.want_period, "seconds between comparisons of the want list with DIR (default 2)");
  recv->add_flag("--loop", o.loop, "loop our multicast back to this host (default only on 127.0.0.1)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  log::Init("cm-mcast", o.quiet ? 0 : 1 + o.verbose);
  InitCrypto();
  InstallTempCleanup();
  if (Status s = LoadConfig(&o, app, config->count() > 0); !s.ok()) return log::Error(s), kExitUsage;
  try {
    if (hash->parsed()) return RunHash(o);
    if (o.group.empty()) return log::Error("--group ADDR:PORT is required (or group = in the config)"), kExitUsage;
    return send->parsed() ? RunSend(o) : serve->parsed() ? RunServe(o) : RunRecv(o);
  } catch (const std::exception& e) {
    log::Error(e.what());
    return kExitFailure;
  }
}
