// cm-leader run: the election core on net::Driver.
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>

#include "leaderrun/reporter.h"
#include "leaderrun/run.h"
#include "leaderrun/state_file.h"
#include "net/driver.h"
#include "util/hangup.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::leaderrun {
namespace {

using proto::Micros;

// How often the host is measured for the facts and the damped priority.
constexpr Micros kSamplePeriod = 5 * proto::kSeconds;
// Each hook runs at most kHookBurst times in any kHookWindow: a flapping (or
// forged) leadership cannot fork a storm of processes. A change that comes
// when the budget is spent is not lost: the hook runs once, with the state
// then current, as soon as the window allows, if that state still calls for
// it (elected: still leader; demoted: still not; members: always).
constexpr int kHookBurst = 5;
constexpr Micros kHookWindow = 60 * proto::kSeconds;
enum HookKind { kElected = 0, kDemoted = 1, kMemberChange = 2 };

// Reads the load average, CPU count and free disk under the content root.
void Measure(const std::string& content_root, leader::Facts* f, leader::Measurements* m) {
  struct statvfs sv;
  if (statvfs(content_root.c_str(), &sv) == 0) f->free_disk_mb = uint64_t(sv.f_bavail) * sv.f_frsize >> 20;
  m->free_disk_mb = f->free_disk_mb;
  std::ifstream la("/proc/loadavg");
  double load = 0;
  if (la >> load) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    m->load_per_cpu = load / double(cpus > 0 ? cpus : 1);
    f->cpu_permille = static_cast<uint32_t>(std::min(1000.0, 1000.0 * m->load_per_cpu));
  }
}

std::string Join(const std::vector<uint64_t>& ids) {
  std::string s;
  for (uint64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// This node's name in a report's CM-Auth stamp: its server name when that is
// a valid CM-Auth name, else "cm-leader-<id>".
std::string StampName(const std::string& name, uint64_t id) {
  bool ok = !name.empty() && name.size() <= 255;
  for (char c : name) ok = ok && c > ' ' && c <= '~' && c != '=' && c != ',';
  return ok ? name : "cm-leader-" + std::to_string(id);
}

int64_t WallMicros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

// The segment core with SAM's stable storage written before any datagram of
// the call leaves (invariant I4): the driver sends the effects after this
// returns. A write that fails stops the SAM core's part of the call (its
// datagrams are dropped) and is logged.
class PersistingCore : public net::CoreHandle {
 public:
  PersistingCore(leader::SegmentCore* c, SamEdge* edge) : c_(c), edge_(edge) {}
  void Start(Micros now, proto::Effects* out) override { After(out, [&] { c_->Start(now, out); }); }
  void OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) override {
    After(out, [&] { c_->OnDatagram(now, from, bytes, out); });
  }
  void OnTimer(Micros now, proto::Effects* out) override { After(out, [&] { c_->OnTimer(now, out); }); }
  template <typename F>
  void After(proto::Effects* out, F f) {
    f();
    if (!edge_ || !c_->sam()) return;
    if (Status st = edge_->Persist(*c_->sam()); !st.ok()) {
      if (!failing_) log::Error("SAM stable storage: " + st.message() + " (ordering paused until it can be written)");
      failing_ = true;
      std::erase_if(out->sends, [](const proto::Send& s) { return leader::SegmentCore::IsSam(s.bytes); });
      return;
    }
    failing_ = false;
    edge_->Offer(c_->TakeOffers());
    edge_->Deliver(*c_->sam());
  }

 private:
  leader::SegmentCore* c_;
  SamEdge* edge_;
  bool failing_ = false;
};

leader::SegmentConfig SegmentOf(const NodeOptions& o, const net::Driver& d) {
  leader::SegmentConfig sc;
  sc.election = o.cfg;
  sc.election.wall_offset = WallMicros() - d.now();
  if (o.sam) {
    leader::SamConfig s = *o.sam;
    s.id = o.cfg.id;
    s.group = o.cfg.control;
    s.members = {{o.cfg.id, d.local()}};
    s.rng_seed = o.cfg.rng_seed ^ 0x5a5a;
    sc.sam = s;
  }
  return sc;
}

class Node {
 public:
  Node(NodeOptions o, net::Driver* drv, std::unique_ptr<SamEdge> edge)
      : o_(std::move(o)),
        drv_(drv),
        edge_(std::move(edge)),
        seg_(SegmentOf(o_, *drv), edge_ ? edge_->loaded() : leader::SamStable{}),
        core_(seg_.election()) {
    // Reports to the CCM only when keyed: the CCM takes no unstamped report.
    if (o_.cfg.ccm && o_.cfg.key)
      reporter_ = std::make_unique<Reporter>(*o_.cfg.ccm, *o_.cfg.key, StampName(o_.facts.name, o_.cfg.id));
  }

  Code Run() {
    started_at_ = drv_->now();
    if (!o_.state_file.empty()) {
      // At start, before anything is known: a path that cannot be written
      // is a setup error the operator hears of now, not at the first change.
      const Status st = WriteStateFile(o_.state_file, StateFileJson(Segment(), WallMicros() / 1000));
      if (!st.ok()) return log::Error("--state-file: " + st.message()), st.code();
      written_ = Segment();
      written_at_ = drv_->now();
    }
    // Set up: from here on a daemon, whose log lines carry the time (setup
    // errors above keep the plain "cm-leader: error: " line scripts match).
    log::UseTimestamps(true);
    Sample();
    PersistingCore ref(&seg_, edge_.get());
    drv_->Run(ref, {.after = [this](const proto::Effects& fx) { After(fx); },
                    .tick =
                        [this, &ref] {
                          if (edge_) {
                            edge_->Scan(drv_->now(), &seg_);
                            for (const leader::DataOffer& f : edge_->TakeFetched())
                              drv_->Call([&](Micros now, proto::Effects* out) { ref.After(out, [&] { seg_.OnFetched(now, f.from, f.id, out); }); });
                          }
                          if (drv_->now() - last_sample_ >= kSamplePeriod) Sample();
                          RunPendingHooks();
                          ReapExited(&hooks_);
                          WriteState();
                          if (TakeHangup())
                            log::Warn("SIGHUP ignored: cm-leader has nothing to reload (restart it to change its settings)");
                        },
                    .on_signal =
                        [this] {
                          drv_->Call([this](Micros now, proto::Effects* out) { core_.Resign(now, out); });
                        },
                    .report =
                        [this](const proto::Send& s) {
                          if (reporter_) reporter_->Post(s.bytes);
                        }});
    if (!o_.state_file.empty() && ::unlink(o_.state_file.c_str()) != 0 && errno != ENOENT)
      log::Warn("--state-file: " + ErrnoError(o_.state_file, errno).message());
    return Code::kOk;
  }

 private:
  void After(const proto::Effects& fx) {
    for (const std::string& ev : fx.events) log::Debug(ev);
    for (const std::string& ev : fx.alerts) log::Warn(ev);
    Report();
    WriteState();
  }

  SegmentState Segment() const {
    SegmentState s;
    s.segment = o_.cfg.segment;
    s.self = o_.cfg.self;
    if (core_.shown_leader()) s.leader = core_.leader_addr();
    s.epoch = core_.epoch();
    s.committed_seq = core_.committed_seq();
    for (const leader::Member& m : core_.member_table()) {
      if (m.facts.name.empty()) continue;
      std::string ip = m.addr.ToString();
      s.members.emplace_back(m.facts.name, ip.substr(0, ip.rfind(':')));
    }
    if (const leader::Sam* sam = seg_.sam()) {
      s.sam = true;
      s.sam_delivered = sam->delivered();
      s.sam_applied = edge_ ? edge_->status().applied : 0;
    }
    s.role = RoleName(core_.shown_state());
    return s;
  }

  // Rewrites the state file when the segment state changed, or its last
  // write is kStateRefresh old. A failure is logged once until a write works.
  void WriteState() {
    if (o_.state_file.empty()) return;
    const SegmentState now = Segment();
    const Micros refresh = std::chrono::duration_cast<std::chrono::microseconds>(kStateRefresh).count();
    if (now == written_ && drv_->now() - written_at_ < refresh) return;
    const Status st = WriteStateFile(o_.state_file, StateFileJson(now, WallMicros() / 1000));
    written_at_ = drv_->now();  // a failed write is retried at the refresh, or on the next change
    if (!st.ok()) {
      if (!state_failing_) log::Warn("--state-file: " + st.message() + " (retried on the next change)");
      state_failing_ = true;
      written_ = now;
      return;
    }
    if (state_failing_) log::Info("--state-file: written again: " + o_.state_file);
    state_failing_ = false;
    written_ = now;
  }

  void Sample() {
    last_sample_ = drv_->now();
    leader::Facts f = o_.facts;
    leader::Measurements m;
    Measure(o_.content_root, &f, &m);
    m.uptime = drv_->now() - started_at_;
    core_.SetFacts(f);
    core_.Sample(m);
  }

  // Runs hook `kind` now if its budget allows, else marks it pending.
  void RunHook(HookKind kind, const std::vector<std::string>& env) {
    const std::string& cmd = kind == kElected ? o_.on_elected : kind == kDemoted ? o_.on_demoted : o_.on_member_change;
    if (cmd.empty()) return;
    std::deque<Micros>& runs = hook_runs_[kind];
    const Micros now = drv_->now();
    while (!runs.empty() && now - runs.front() >= kHookWindow) runs.pop_front();
    if (static_cast<int>(runs.size()) >= kHookBurst) {
      if (!hook_pending_[kind])
        log::Warn("hook " + std::string(kHookNames[kind]) + ": " + std::to_string(kHookBurst) + " runs in " +
                  std::to_string(kHookWindow / proto::kSeconds) + " s; the next waits (leadership flapping?)");
      hook_pending_[kind] = true;
      return;
    }
    hook_pending_[kind] = false;
    runs.push_back(now);
    auto pid = StartProcess({"/bin/sh", "-c", cmd}, env);
    if (!pid.ok()) return log::Warn("hook: " + pid.status().ToString());
    hooks_.push_back(*pid);
  }

  static constexpr const char* kHookNames[] = {"on_elected", "on_demoted", "on_member_change"};

  // Hooks held back by the rate limit, run once the window allows.
  void RunPendingHooks() {
    const bool is = core_.state() == leader::State::kLeader;
    for (HookKind k : {kElected, kDemoted, kMemberChange}) {
      if (!hook_pending_[k]) continue;
      if ((k == kElected && !is) || (k == kDemoted && is)) {
        hook_pending_[k] = false;  // the state it was for did not last
        continue;
      }
      const Micros now = drv_->now();
      std::deque<Micros>& runs = hook_runs_[k];
      while (!runs.empty() && now - runs.front() >= kHookWindow) runs.pop_front();
      if (static_cast<int>(runs.size()) < kHookBurst) RunHook(k, Env());
    }
  }

  std::vector<std::string> Env() {
    // What the node shows: a brief suspicion of its leader is not (Election::shown_state).
    const uint64_t leader = core_.shown_leader();
    const auto members = core_.members();
    return {
        "CM_LEADER_STATE=" + std::string(leader::StateName(core_.shown_state())),
        "CM_LEADER_ID=" + std::to_string(leader),
        "CM_LEADER_EPOCH=" + std::to_string(core_.epoch()),
        "CM_LEADER_SELF=" + std::to_string(core_.id()),
        "CM_LEADER_SEGMENT=" + o_.cfg.segment,
        "CM_LEADER_ADDR=" + (leader ? core_.leader_addr().ToString() : std::string()),
        "CM_LEADER_MEMBERS=" + Join(members),
        "CM_LEADER_MEMBER_COUNT=" + std::to_string(members.size()),
    };
  }

  // Prints a JSON line and runs hooks when the visible state changes.
  void Report() {
    const auto st = core_.shown_state();
    const uint64_t leader = core_.shown_leader(), epoch = core_.epoch();
    const auto members = core_.members();
    const bool state_changed = st != last_state_ || leader != last_leader_ || epoch != last_epoch_;
    const bool members_changed = members != last_members_;
    if (!state_changed && !members_changed && started_) return;
    const std::string leader_addr = leader ? core_.leader_addr().ToString() : "";
    if (o_.json) {
      JsonArray ids, named;
      for (uint64_t id : members) ids.Raw(std::to_string(id));
      // The leader knows its members' names (their registrations): as `who
      // --members --json` prints them. Others print an empty list.
      for (const leader::Member& m : core_.member_table())
        named.Raw(JsonObject().Uint("id", m.id).Str("name", m.facts.name).Build());
      std::printf("%s\n", JsonObject()
                              .Int("v", 1)
                              .Str("event", members_changed && !state_changed ? "members" : "state")
                              .Str("state", leader::StateName(st))
                              .Uint("self", core_.id())
                              .Uint("leader", leader)
                              .Str("leader_address", leader_addr)
                              .Uint("epoch", epoch)
                              .Uint("priority", core_.priority())
                              .Raw("members", ids.Build())
                              .Raw("member_names", named.Build())
                              .Int("time_us", WallMicros())
                              .Build()
                              .c_str());
      std::fflush(stdout);
    }
    {
      // A node that no longer leads stops (re)sending its report: it would
      // tell the CCM of a leadership that is over.
      const bool was = last_state_ == leader::State::kLeader, is = st == leader::State::kLeader;
      if (reporter_ && was && !is) reporter_->Withdraw();
    }
    if (started_) {
      const std::vector<std::string> env = Env();
      const bool was = last_state_ == leader::State::kLeader, is = st == leader::State::kLeader;
      if (is && !was) RunHook(kElected, env);
      if (was && !is) RunHook(kDemoted, env);
      if (members_changed) RunHook(kMemberChange, env);
    }
    started_ = true;
    last_state_ = st;
    last_leader_ = leader;
    last_epoch_ = epoch;
    last_members_ = members;
  }

  NodeOptions o_;
  net::Driver* drv_;
  std::unique_ptr<SamEdge> edge_;
  leader::SegmentCore seg_;
  leader::Election& core_;
  std::unique_ptr<Reporter> reporter_;  // --ccm with a key
  std::vector<int> hooks_;  // started hooks not yet reaped
  std::deque<Micros> hook_runs_[3];  // per HookKind: start times within kHookWindow
  bool hook_pending_[3] = {false, false, false};
  Micros last_sample_ = 0, started_at_ = 0;
  SegmentState written_;  // the state file's content, as last written (or tried)
  Micros written_at_ = 0;
  bool state_failing_ = false;
  bool started_ = false;
  leader::State last_state_ = leader::State::kUnknown;
  uint64_t last_leader_ = 0, last_epoch_ = 0;
  std::vector<uint64_t> last_members_;
};

}  // namespace

Code RunNode(NodeOptions o) {
  net::DriverConfig dc;
  dc.group = o.cfg.control;
  dc.iface = o.cfg.self.ip;
  dc.rcvbuf = 1 << 20;  // small messages, a few per second
  dc.sndbuf = 1 << 20;
  auto drv = net::Driver::Open(dc);
  if (!drv.ok()) return log::Error(drv.status()), drv.status().code();
  for (const auto& w : (*drv)->warnings()) log::Debug(w);
  if (!o.cfg.key)
    log::Warn("no group key (--key-file / key_file): the control channel is unauthenticated, anyone on the segment "
              "can take the leadership; make one with cm-pack keygen --group (/etc/content-mover/group.key)");
  if (o.cfg.ccm && !o.cfg.key)
    log::Warn("--ccm without a group key: no segment report is sent (the CCM takes only reports stamped with "
              "the group key); give --key-file");
  std::unique_ptr<SamEdge> edge;
  if (o.sam) {
    o.sam_edge.self = o.cfg.self;
    auto e = SamEdge::Open(o.sam_edge);
    if (!e.ok()) return log::Error("--spool: " + e.status().message()), e.status().code();
    edge = std::move(*e);
    if (!o.cfg.key)
      log::Warn("SAM ordering without a group key: anyone on the segment can order this site's assignments");
  }
  IgnoreHangups();
  Node n(std::move(o), drv->get(), std::move(edge));
  return n.Run();
}

}  // namespace cm::leaderrun
