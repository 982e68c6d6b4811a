// cm-leader: group-leader election, membership and reports for one LAN
// segment. Options and configuration only: the protocol is in lib/leader,
// its run on the sockets in lib/leaderrun.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdio>
#include <string>
#include <vector>

#include "leader/timers.h"
#include "leaderrun/reporter.h"
#include "leaderrun/run.h"
#include "net/route.h"
#include "util/config_dir.h"
#include "util/exit_codes.h"
#include "util/group_key.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/toml_flags.h"

namespace {

using namespace cm;

constexpr double kUnset = -1;

struct Options {
  std::string config, group, address, segment, name, location, timers, key_file, ccm, listen, content_root, state_file;
  std::string on_elected, on_demoted, on_member_change;
  std::vector<uint64_t> leaders;
  std::string spool, root, cm_apply = "cm-apply", pub_key;
  std::vector<std::string> commit_servers;
  int copies = 2;
  uint64_t checkpoint_every = 16;
  int relay_port = 7710;
  uint64_t id = 0, static_leader = 0;
  int64_t priority = -1;
  double heartbeat = std::numeric_limits<double>::quiet_NaN(), timeout = 0, replay_window = -1;
  // Timers (NaN / -1 = the default scaled to the heartbeat); see leader/timers.h.
  double group_dead = kUnset, vote_window = kUnset, member_refresh = kUnset, member_expiry = kUnset,
         member_expiry_max = kUnset, preempt_delay = 0;
  int dead_intervals = -1, dead_intervals_max = -1;
  bool preempt = true;
  bool json = false, members = false, quiet = false;
  int verbose = 0;
};

Status LoadKey(const std::string& path, std::optional<GroupKey>* out) {
  if (path.empty()) return Status::Ok();
  auto k = LoadGroupKey(path);
  if (!k.ok()) return k.status();
  *out = *k;
  return Status::Ok();
}

int Fail(const Status& st) {
  log::Error(st.message());
  return ExitCodeFor(st);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"cm-leader: elects the group leader of a LAN segment, keeps its membership and reports it.\n"
               "  cm-leader run --config segment.toml [--json]\n"
               "  cm-leader who --group ADDR:PORT [--members] [--json]\n"
               "  cm-leader report-sink --listen ADDR:PORT [--key-file K]",
               "cm-leader"};
  app.set_version_flag("--version", std::string("cm-leader ") + CM_VERSION);
  app.add_flag("-q,--quiet", o.quiet, "Errors only");
  app.add_flag("-v,--verbose", o.verbose, "More messages (repeat for debug)");
  TomlFlags toml;  // run's keys, bound to the variables its flags write
  CLI::App* run = app.add_subcommand("run", "Take part in the election of the segment");
  run->add_option("--config", o.config,
                  "TOML configuration (flags override it; default /etc/content-mover/leader.toml when it exists)");
  // A run flag and its TOML key write the same variable; the flag wins.
  auto opt = [&](const char* flag, const char* key, auto& var, const char* help) {
    CLI::Option* op = run->add_option(flag, var, help);
    toml.Bind(key, &var, op);
    return op;
  };
  opt("--group", "group", o.group, "Control channel ADDR:PORT (multicast)");
  opt("--address", "address", o.address, "This host's address (default: the route to the group)");
  opt("--id", "id", o.id, "Unique node id (default: the address as a number)");
  opt("--priority", "priority", o.priority, "Administrative priority 0..255 (0 = never leader; default 100)")
      ->check(CLI::Range(0, 255));
  opt("--segment", "segment", o.segment, "Segment name for reports");
  opt("--name", "name", o.name, "This server's name (registration)");
  opt("--location", "location", o.location, "Location / time zone for reports");
  opt("--heartbeat", "heartbeat", o.heartbeat, "Leader Alive interval in seconds (default 1; > 0)");
  // The timers that shape a takeover (docs/protocol/leader.md, "Timing"):
  // defaults scale with the heartbeat.
  opt("--dead-intervals", "dead_intervals", o.dead_intervals,
      "Without peers to vouch: missed heartbeats before the leader is dead, at least (default 3)")
      ->check(CLI::Range(1, 255));
  opt("--dead-intervals-max", "dead_intervals_max", o.dead_intervals_max,
      "Without peers to vouch: the most the loss-adaptive dead interval grows to, in heartbeats (default 8)")
      ->check(CLI::Range(1, 255));
  opt("--group-dead", "group_dead", o.group_dead,
      "With peers to vouch: seconds without a heartbeat (heard or vouched) before a member claims "
      "(default 2 heartbeats + half a heartbeat, at most 40 ms)");
  opt("--vote-window", "vote_window", o.vote_window,
      "Seconds a claim waits for a stronger claim or a live leader (default 0.04 at any heartbeat)");
  opt("--member-refresh", "member_refresh", o.member_refresh, "Seconds between a member's registrations (default 3 heartbeats)");
  opt("--member-expiry", "member_expiry", o.member_expiry,
      "Seconds without a registration before the leader drops a member, without loss (default 10 heartbeats)");
  opt("--member-expiry-max", "member_expiry_max", o.member_expiry_max,
      "The most the loss-adapted member expiry grows to, in seconds (default 40 heartbeats)");
  opt("--preempt", "preempt", o.preempt,
      "A stronger node takes over from a live weaker leader (true, the default) or waits until it fails (false)");
  opt("--preempt-delay", "preempt_delay", o.preempt_delay,
      "With --preempt: seconds after this node's start before it may pre-empt (default 0)");
  opt("--timers", "timers", o.timers, "'default' or 'source' (5 s / 10 s / 10-15 s)");
  opt("--key-file", "key_file", o.key_file,
      "Group key (cm-group-key-v1): authenticate every message (default /etc/content-mover/group.key when it exists)");
  opt("--ccm", "ccm", o.ccm, "The CCM's HTTP address (ADDR:PORT or http://ADDR:PORT): POST segment reports there (needs the key)");
  opt("--leaders", "leaders", o.leaders, "Pre-assigned leader ids (only they may lead)");
  opt("--static-leader", "static_leader", o.static_leader, "Static override: this id leads, no election");
  opt("--on-elected", "on_elected", o.on_elected, "Command run on becoming leader");
  opt("--on-demoted", "on_demoted", o.on_demoted, "Command run on ceasing to be leader");
  opt("--on-member-change", "on_member_change", o.on_member_change, "Command run when the membership changes");
  opt("--content-root", "content_root", o.content_root, "Directory whose free space is measured (default /)");
  opt("--state-file", "state_file", o.state_file,
      "Keep the segment's leader in this JSON file (atomic rewrites; removed on exit), e.g. "
      "/run/content-mover/leader.json");
  opt("--replay-window", "replay_window", o.replay_window,
      "Seconds a keyed message's timestamp may differ from this host's clock (default 10; 0 = off)");
  opt("--spool", "spool", o.spool,
      "The relay's spool: order the site's assignments held there (SAM) and repair this server from its peers "
      "(docs/protocol/ordering.md)");
  opt("--root", "root", o.root, "With --spool: the content root repaired assignments are applied to (the relay's --root)");
  opt("--commit-servers", "commit_servers", o.commit_servers,
      "With --spool: the site's commit servers, ids or addresses, the same list on every member (default: --leaders)");
  opt("--copies", "copies", o.copies, "With --spool: members that must hold an assignment before it is numbered (default 2)")
      ->check(CLI::Range(1, 8));
  opt("--checkpoint-every", "checkpoint_every", o.checkpoint_every, "With --spool: numbers between checkpoints (default 16)")
      ->check(CLI::Range(1, 4096));
  opt("--relay-port", "relay_port", o.relay_port, "With --spool: the port peers' relays serve on (default 7710)")
      ->check(CLI::Range(1, 65535));
  opt("--cm-apply", "cm_apply", o.cm_apply, "With --spool: the cm-apply program (default: cm-apply in PATH)");
  opt("--pub-key", "pub_key", o.pub_key,
      "With --spool: the CCM's public key for cm-apply (default /etc/content-mover/ccm.pub when it exists)");
  run->add_flag("--json", o.json, "Print state changes as JSON lines on stdout");
  CLI::App* who = app.add_subcommand("who", "Print the current leader (exit 3 if none)");
  who->add_option("--group", o.group, "Control channel ADDR:PORT")->required();
  who->add_option("--key-file", o.key_file,
                  "Group key when the group authenticates (default /etc/content-mover/group.key when it exists)");
  who->add_option("--address", o.address, "Listen on the interface with this address (default: the route to the group)");
  who->add_option("--timeout", o.timeout,
                  "Seconds to listen (default 4: three intervals plus skew; with --members 16, ending as soon as the "
                  "list arrives)");
  who->add_flag("--members", o.members, "Also print the member list");
  who->add_flag("--json", o.json, "One JSON object");
  CLI::App* sink = app.add_subcommand("report-sink", "Take reports as a CCM would (HTTP) and print them (JSON lines)");
  sink->add_option("--listen", o.listen, "ADDR:PORT to listen on")->required();
  sink->add_option("--key-file", o.key_file, "Group key: refuse reports whose CM-Auth stamp does not verify");
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    log::Init("cm-leader", 1);
    log::Error(e.what());
    return kExitUsage;
  }
  log::Init("cm-leader", o.quiet ? 0 : 1 + o.verbose);
  InitCrypto();

  if (sink->parsed()) {
    proto::Address a;
    if (!proto::ParseAddress(o.listen, &a)) return Fail(Error(Code::kUsage, "report-sink: bad --listen address: " + o.listen));
    std::optional<GroupKey> key;
    if (Status st = LoadKey(o.key_file, &key); !st.ok()) return Fail(st);
    return ExitCodeFor(leaderrun::ReportSink(a, key));
  }
  if (who->parsed()) {
    leaderrun::WhoOptions w;
    if (!proto::ParseAddress(o.group, &w.group) || !w.group.IsMulticast())
      return Fail(Error(Code::kUsage, "--group must be a multicast ADDR:PORT"));
    if (Status st = LoadKey(DefaultFile(o.key_file, "group.key"), &w.key); !st.ok()) return Fail(st);
    if (!o.address.empty()) {
      proto::Address a;
      if (!proto::ParseAddress(o.address + ":0", &a)) return Fail(Error(Code::kUsage, "bad --address: " + o.address));
      w.interface = a.ip;
    }
    if (o.timeout > 0) w.timeout = static_cast<proto::Micros>(o.timeout * 1e6);
    else if (o.members) w.timeout = 16 * proto::kSeconds;  // a list under loss: three list periods at 1 s
    w.members = o.members;
    w.json = o.json;
    return ExitCodeFor(leaderrun::Who(w));
  }

  // The daemon's configuration by default, as every daemon's: CONFIG_DIR/leader.toml.
  o.config = DefaultFile(o.config, "leader.toml");
  if (!o.config.empty())
    if (Status st = toml.Apply(o.config); !st.ok()) return Fail(st);
  if (!std::isnan(o.heartbeat) && !(o.heartbeat > 0 && o.heartbeat <= 3600))
    return Fail(Error(Code::kUsage, "heartbeat must be a number of seconds above 0 (at most 3600)"));
  for (const auto& [name, v] : {std::pair<const char*, double>{"group_dead", o.group_dead},
                                {"vote_window", o.vote_window},
                                {"member_refresh", o.member_refresh},
                                {"member_expiry", o.member_expiry},
                                {"member_expiry_max", o.member_expiry_max}})
    if (v != kUnset && !(v > 0 && v <= 86400))
      return Fail(Error(Code::kUsage, std::string(name) + " must be a number of seconds above 0"));
  if (!(o.preempt_delay >= 0 && o.preempt_delay <= 86400))
    return Fail(Error(Code::kUsage, "preempt_delay must be a number of seconds, 0 or more"));
  leaderrun::NodeOptions r;
  leader::Config& c = r.cfg;
  if (!proto::ParseAddress(o.group, &c.control) || !c.control.IsMulticast())
    return Fail(Error(Code::kUsage, "group must be a multicast ADDR:PORT (--group or group = in the config)"));
  if (!o.address.empty()) {
    if (!proto::ParseAddress(o.address + ":" + std::to_string(c.control.port), &c.self))
      return Fail(Error(Code::kUsage, "bad --address: " + o.address));
  } else if (auto a = net::LocalAddressFor(c.control)) {
    c.self = *a;
  } else {
    return Fail(Error(Code::kUsage, "cannot find this host's address; give --address"));
  }
  c.id = o.id ? o.id : c.self.ip;
  c.segment = o.segment;
  c.admin_priority = o.priority < 0 ? 100 : static_cast<uint32_t>(o.priority);
  c.leaders = o.leaders;
  c.static_leader = o.static_leader;
  if (o.timers == "source") {
    c.timers = leader::SourceTimers();
  } else if (o.timers.empty() || o.timers == "default") {
    c.timers = leader::ScaledTimers(std::isnan(o.heartbeat) ? proto::kSeconds : static_cast<proto::Micros>(o.heartbeat * 1e6));
  } else {
    return Fail(Error(Code::kUsage, "--timers must be 'default' or 'source'"));
  }
  auto micros = [](double secs) { return static_cast<proto::Micros>(secs * 1e6); };
  if (o.dead_intervals > 0) c.timers.dead_intervals = o.dead_intervals;
  if (o.dead_intervals_max > 0) c.timers.dead_intervals_max = o.dead_intervals_max;
  if (o.group_dead != kUnset) c.timers.group_dead = micros(o.group_dead);
  if (o.vote_window != kUnset) c.timers.vote_min = c.timers.vote_max = micros(o.vote_window);
  if (o.member_refresh != kUnset) c.timers.member_refresh = micros(o.member_refresh);
  if (o.member_expiry != kUnset) c.timers.member_expiry = micros(o.member_expiry);
  if (o.member_expiry_max != kUnset) c.timers.member_expiry_max = micros(o.member_expiry_max);
  if (c.timers.member_expiry <= c.timers.member_refresh)
    return Fail(Error(Code::kUsage, "member_expiry must be longer than member_refresh"));
  c.preempt = o.preempt;
  c.preempt_delay = micros(o.preempt_delay);
  // The segment's key by default, as every tool's: CONFIG_DIR/group.key when it exists.
  if (Status st = LoadKey(DefaultFile(o.key_file, "group.key"), &c.key); !st.ok()) return Fail(st);
  using std::chrono::duration_cast, std::chrono::microseconds;
  const int64_t wall = duration_cast<microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (o.replay_window >= 0) c.replay_window = static_cast<proto::Micros>(o.replay_window * 1e6);
  c.rng_seed = static_cast<uint64_t>(wall) ^ (c.id * 0x9e3779b97f4a7c15ull);
  if (!o.ccm.empty()) {
    proto::Address a;
    if (!leaderrun::ParseCcmAddress(o.ccm, &a))
      return Fail(Error(Code::kUsage, "bad --ccm: " + o.ccm + " (want the CCM's HTTP address, ADDR:PORT or http://ADDR:PORT)"));
    c.ccm = a;
  }
  r.facts.name = o.name;
  r.facts.location = o.location;
  r.on_elected = o.on_elected;
  r.on_demoted = o.on_demoted;
  r.on_member_change = o.on_member_change;
  if (!o.content_root.empty()) r.content_root = o.content_root;
  r.state_file = o.state_file;
  r.json = o.json;
  if (!o.spool.empty()) {
    leader::SamConfig sam;
    std::vector<std::string> cs;
    for (const std::string& item : o.commit_servers)  // "a,b,c" or several values
      for (size_t b = 0; b <= item.size();) {
        size_t e = item.find(',', b);
        if (e == std::string::npos) e = item.size();
        if (e > b) cs.push_back(item.substr(b, e - b));
        b = e + 1;
      }
    if (cs.empty())
      for (uint64_t id : o.leaders) cs.push_back(std::to_string(id));
    if (cs.empty())
      return Fail(Error(Code::kUsage, "--spool needs the site's commit servers (--commit-servers or commit_servers =)"));
    for (const std::string& c : cs) {
      proto::Address a;
      if (c.find('.') != std::string::npos && proto::ParseAddress(c + ":0", &a)) {
        sam.commit_servers.push_back(a.ip);
      } else if (!c.empty() && c.find_first_not_of("0123456789") == std::string::npos) {
        sam.commit_servers.push_back(std::strtoull(c.c_str(), nullptr, 10));
      } else {
        return Fail(Error(Code::kUsage, "bad commit server '" + c + "' (an id or an IPv4 address)"));
      }
    }
    sam.copies = o.copies;
    sam.checkpoint_every = o.checkpoint_every;
    r.sam = sam;
    r.sam_edge.spool = o.spool;
    r.sam_edge.root = o.root;
    r.sam_edge.name = o.name;
    r.sam_edge.cm_apply = o.cm_apply;
    r.sam_edge.pub_key = DefaultFile(o.pub_key, "ccm.pub");
    r.sam_edge.relay_port = static_cast<uint16_t>(o.relay_port);
  }
  return ExitCodeFor(leaderrun::RunNode(std::move(r)));
}
