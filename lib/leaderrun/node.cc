// cm-leader run: the election core on net::Driver.
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>

#include "leaderrun/run.h"
#include "net/driver.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::leaderrun {
namespace {

using proto::Micros;

// How often the host is measured for the facts and the damped priority.
constexpr Micros kSamplePeriod = 5 * proto::kSeconds;

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

int64_t WallMicros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

class Node {
 public:
  Node(NodeOptions o, net::Driver* drv) : o_(std::move(o)), drv_(drv), core_(WithClock(o_.cfg, *drv)) {}

  Code Run() {
    started_at_ = drv_->now();
    Sample();
    net::CoreRef<leader::Election> ref(&core_);
    drv_->Run(ref, {.after = [this](const proto::Effects& fx) { After(fx); },
                    .tick =
                        [this] {
                          if (drv_->now() - last_sample_ >= kSamplePeriod) Sample();
                          ReapExited(&hooks_);
                        },
                    .on_signal =
                        [this] {
                          drv_->Call([this](Micros now, proto::Effects* out) { core_.Resign(now, out); });
                        }});
    return Code::kOk;
  }

 private:
  // Auth counters are wall-clock timestamps: the core is told the offset
  // between the wall clock and the driver's.
  static leader::Config WithClock(leader::Config c, const net::Driver& d) {
    c.wall_offset = WallMicros() - d.now();
    return c;
  }

  void After(const proto::Effects& fx) {
    for (const std::string& ev : fx.events) log::Debug(ev);
    for (const std::string& ev : fx.alerts) log::Warn(ev);
    Report();
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

  void RunHook(const std::string& cmd, const std::vector<std::string>& env) {
    if (cmd.empty()) return;
    auto pid = StartProcess({"/bin/sh", "-c", cmd}, env);
    if (!pid.ok()) return log::Warn("hook: " + pid.status().ToString());
    hooks_.push_back(*pid);
  }

  // Prints a JSON line and runs hooks when the visible state changes.
  void Report() {
    const auto st = core_.state();
    const uint64_t leader = core_.leader(), epoch = core_.epoch();
    const auto members = core_.members();
    const bool state_changed = st != last_state_ || leader != last_leader_ || epoch != last_epoch_;
    const bool members_changed = members != last_members_;
    if (!state_changed && !members_changed && started_) return;
    const std::string leader_addr = leader ? core_.leader_addr().ToString() : "";
    if (o_.json) {
      JsonArray ids;
      for (uint64_t id : members) ids.Raw(std::to_string(id));
      std::printf("%s\n", JsonObject()
                              .Str("event", members_changed && !state_changed ? "members" : "state")
                              .Str("state", leader::StateName(st))
                              .Uint("self", core_.id())
                              .Uint("leader", leader)
                              .Str("leader_address", leader_addr)
                              .Uint("epoch", epoch)
                              .Uint("priority", core_.priority())
                              .Raw("members", ids.Build())
                              .Int("time_us", WallMicros())
                              .Build()
                              .c_str());
      std::fflush(stdout);
    }
    if (started_) {
      const std::vector<std::string> env = {
          "CM_LEADER_STATE=" + std::string(leader::StateName(st)),
          "CM_LEADER_ID=" + std::to_string(leader),
          "CM_LEADER_EPOCH=" + std::to_string(epoch),
          "CM_LEADER_SELF=" + std::to_string(core_.id()),
          "CM_LEADER_SEGMENT=" + o_.cfg.segment,
          "CM_LEADER_ADDR=" + leader_addr,
          "CM_LEADER_MEMBERS=" + Join(members),
          "CM_LEADER_MEMBER_COUNT=" + std::to_string(members.size()),
      };
      const bool was = last_state_ == leader::State::kLeader, is = st == leader::State::kLeader;
      if (is && !was) RunHook(o_.on_elected, env);
      if (was && !is) RunHook(o_.on_demoted, env);
      if (members_changed) RunHook(o_.on_member_change, env);
    }
    started_ = true;
    last_state_ = st;
    last_leader_ = leader;
    last_epoch_ = epoch;
    last_members_ = members;
  }

  NodeOptions o_;
  net::Driver* drv_;
  leader::Election core_;
  std::vector<int> hooks_;  // started hooks not yet reaped
  Micros last_sample_ = 0, started_at_ = 0;
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
  Node n(std::move(o), drv->get());
  return n.Run();
}

}  // namespace cm::leaderrun
