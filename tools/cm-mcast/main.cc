// cm-mcast: reliable multicast of files to a LAN. Options (flags over TOML)
// and exit codes only: the sessions run in lib/mcastrun.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "mcastrun/run.h"
#include "util/command_template.h"
#include "util/config_dir.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/group_key.h"
#include "util/log.h"
#include "util/toml_flags.h"

namespace {

using namespace cm;
using namespace cm::mcast;

struct Options {
  std::string group, iface = "127.0.0.1", id, key_file, config;
  std::string rate;  // empty: find the link's rate (RateControl), up to kDefaultCap
  std::vector<std::string> files, receivers;
  int expect = 0, quorum = 0, max_passes = 4, frame_size = 0, block = 128;
  std::string backup_for;
  std::string out_dir, serve_dir, exec, want_file;
  double timeout = 30, want_period = 2, replay_window = 10;
  uint64_t final_size = 0;
  bool final_size_set = false, stay = false, loop = false;
  bool json = false, quiet = false;
  int verbose = 0;
};

// Without --rate the sender finds the path's rate (docs/protocol/mcast.md,
// "Rate"): from kDefaultStart, never above kDefaultCap.
constexpr uint64_t kDefaultCap = 10'000'000'000;
constexpr uint64_t kDefaultStart = 50'000'000;

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
// Without --config: CONFIG_DIR/mcast.toml when it exists (util/config_dir.h).
Status LoadConfig(Options* o, CLI::App& app) {
  o->config = DefaultFile(o->config, "mcast.toml");
  if (o->config.empty()) return Status::Ok();
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

// The settings every subcommand but hash shares.
Result<mcastrun::Net> ResolveNet(const Options& o) {
  mcastrun::Net n;
  if (!proto::ParseAddress(o.group, &n.group) || !n.group.IsMulticast())
    return Error(Code::kUsage, "--group: want a multicast ADDR:PORT (224.0.0.0/4), got '" + o.group + "'");
  proto::Address a;
  if (!proto::ParseAddress(o.iface + ":0", &a)) return Error(Code::kUsage, "--iface: want an IPv4 address");
  n.iface = a.ip;
  // Our own multicast is looped back to this host only when it is needed:
  // peers on the loopback interface (tests, one-host setups) or --loop. On a
  // LAN interface the copies would only cost the sender a receive per frame.
  n.loop = o.loop || (a.ip >> 24) == 127;
  if (!o.key_file.empty()) {
    auto k = LoadGroupKey(o.key_file);
    if (!k.ok()) return k.status();
    n.key = *k;
  }
  n.json = o.json;
  return n;
}

std::string DefaultId(const Options& o) {
  if (!o.id.empty()) return o.id;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return o.iface == "127.0.0.1" ? std::string(host) : o.iface;
}

Result<mcastrun::SendJob> SendJobFrom(const Options& o) {
  mcastrun::SendJob j;
  CM_ASSIGN_OR_RETURN(j.net, ResolveNet(o));
  auto rate = o.rate.empty() ? std::optional<uint64_t>(kDefaultCap) : ParseRate(o.rate);
  if (!rate) return Error(Code::kUsage, "--rate: want e.g. 500M (bits per second)");
  int frame = o.frame_size ? o.frame_size : j.net.key ? 1424 : 1440;  // fills a 1500-byte MTU
  if (frame < 64 || frame + kDataHeaderSize + (j.net.key ? kTagSize : 0) > kMaxDatagram)
    return Error(Code::kUsage, "--frame-size: 64 to " + std::to_string(kMaxDatagram - kDataHeaderSize - kTagSize));
  if (o.final_size_set && o.files.size() != 1) return Error(Code::kUsage, "--final-size: give exactly one FILE");
  SenderConfig& sc = j.session;
  sc.id = DefaultId(o);
  sc.frame_size = static_cast<uint16_t>(frame);
  sc.block_k = o.block;
  sc.rate_bps = *rate;
  sc.start_rate_bps = o.rate.empty() ? kDefaultStart : 0;  // a given --rate is trusted (a cap it never exceeds)
  sc.max_passes = o.max_passes;
  sc.group = j.net.group;
  sc.key = j.net.key;
  sc.receivers = o.receivers;
  sc.expect = o.expect;
  sc.quorum = o.quorum;
  sc.backup_for = o.backup_for;
  j.files = o.files;
  if (o.final_size_set) j.final_size = o.final_size;
  j.stay = o.stay;
  return j;
}

Result<mcastrun::RecvJob> RecvJobFrom(const Options& o) {
  mcastrun::RecvJob j;
  CM_ASSIGN_OR_RETURN(j.net, ResolveNet(o));
  j.dir = o.serve_dir.empty() ? o.out_dir : o.serve_dir;
  if (j.dir.empty()) return Error(Code::kUsage, "recv: give -o DIR (one session) or --serve DIR");
  if (!o.want_file.empty() && o.serve_dir.empty()) return Error(Code::kUsage, "--want needs --serve DIR");
  j.daemon = !o.serve_dir.empty();
  j.id = DefaultId(o);
  j.timeout = static_cast<proto::Micros>(o.timeout * 1e6);
  if (!o.exec.empty()) {
    CM_ASSIGN_OR_RETURN(j.exec, SplitCommand(o.exec));
  }
  j.want_file = o.want_file;
  j.want_period = static_cast<proto::Micros>(std::max(o.want_period, 0.05) * 1e6);
  j.replay_window = static_cast<proto::Micros>(std::max(o.replay_window, 0.0) * 1e6);
  return j;
}

// Logs a usage or resolution error and gives its exit code.
int Fail(const Status& st) {
  log::Error(st);
  return ExitCodeFor(st);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"cm-mcast: reliable multicast of files to a LAN (NACK repair with Reed-Solomon parity)"};
  app.set_version_flag("--version", std::string("cm-mcast ") + CM_VERSION);
  app.require_subcommand(1);
  app.add_option("--config", o.config,
                 "TOML defaults (flags win; default /etc/content-mover/mcast.toml, or $CM_CONFIG_DIR/mcast.toml, when it exists)");
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
  send->add_option("--rate", o.rate,
                   "wire rate cap in bits/s, e.g. 200M (default: find the link's rate; congestion still slows it)");
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
  serve->add_option("--rate", o.rate,
                    "wire rate cap in bits/s, e.g. 200M (default: find the link's rate; congestion still slows it)");
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
  recv->add_option("--exec", o.exec, "command run (no shell) for each completed file, {} = its path");
  recv->add_option("--timeout", o.timeout, "seconds without a sender before giving up (default 30)");
  recv->add_option("--want", o.want_file,
                   "daemon: FILE lists what DIR should hold ('HASH SIZE NAME' lines, cm-mcast hash); missing ones are asked for");
  recv->add_option("--want-period", o.want_period, "seconds between comparisons of the want list with DIR (default 2)");
  recv->add_option("--replay-window", o.replay_window,
                   "keyed: refuse announcements whose clock is this many seconds from ours (default 10, 0 off)");
  recv->add_flag("--loop", o.loop, "loop our multicast back to this host (default only on 127.0.0.1)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  log::Init("cm-mcast", o.quiet ? 0 : 1 + o.verbose);
  InitCrypto();
  InstallTempCleanup();
  if (Status s = LoadConfig(&o, app); !s.ok()) return log::Error(s), kExitUsage;
  try {
    if (hash->parsed()) return ExitCodeFor(mcastrun::Hash(o.files, o.json));
    if (o.group.empty()) return log::Error("--group ADDR:PORT is required (or group = in the config)"), kExitUsage;
    if (recv->parsed()) {
      auto job = RecvJobFrom(o);
      if (!o.serve_dir.empty()) log::UseTimestamps(true);  // recv --serve: a daemon
      return job.ok() ? ExitCodeFor(mcastrun::Recv(*job)) : Fail(job.status());
    }
    auto job = SendJobFrom(o);
    if (!job.ok()) return Fail(job.status());
    if (!send->parsed() || o.stay) log::UseTimestamps(true);  // the long-running modes
    return ExitCodeFor(send->parsed() ? mcastrun::Send(*job) : mcastrun::Serve(*job));
  } catch (const std::exception& e) {
    log::Error(e.what());
    return kExitFailure;
  }
}
