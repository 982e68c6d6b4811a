#include "mcastrun/output.h"

#include <chrono>
#include <iostream>
#include <random>

#include "util/hangup.h"
#include "util/json.h"
#include "util/log.h"

namespace cm::mcastrun {
namespace {
const proto::Micros g_start = net::MonotonicMicros();
}  // namespace

Result<std::unique_ptr<net::Driver>> OpenDriver(const Net& n) {
  net::DriverConfig dc;
  dc.group = n.group;
  dc.iface = n.iface;
  dc.loop = n.loop;
  auto drv = net::Driver::Open(dc);
  if (!drv.ok()) return drv.status();
  for (auto& w : (*drv)->warnings()) log::Warn(w);
  return drv;
}

void PrintEvents(const proto::Effects& fx, bool json, Role role) {
  const double t = double(net::MonotonicMicros() - g_start) / 1e6;
  for (const auto& e : fx.events) {
    if (json) std::cout << EventRecord(e, role, t, false) << "\n";
    else log::Info(e);
  }
  for (const auto& e : fx.alerts) {
    if (json) std::cout << EventRecord(e, role, t, true) << "\n";
    else log::Warn(e);
  }
  if (json && !(fx.events.empty() && fx.alerts.empty())) std::cout.flush();
}

JsonObject Record(const char* event) {
  JsonObject j;
  j.Int("v", kSchemaVersion).Str("event", event);
  return j;
}

void ReportReceivers(bool json, const std::string& name, const std::map<std::string, mcast::ReceiverInfo>& rs) {
  using mcast::RecvState;
  for (auto& [id, r] : rs) {
    const char* state = r.state == RecvState::kComplete ? "complete" : r.state == RecvState::kFailed ? "failed" : "unknown";
    if (json)
      std::cout << Record("receiver_result").Str("file", name).Str("receiver", id).Str("state", state).Str("reason", r.reason)
                       .Uint("unicast_frames", r.unicast_frames).Build() << "\n";
    else
      std::cout << name << " " << id << " " << state << (r.reason.empty() ? "" : ": " + r.reason) << "\n";
  }
  std::cout.flush();
}

void NoteHangup() {
  if (TakeHangup()) log::Warn("SIGHUP ignored: cm-mcast has nothing to reload (restart it to change its settings)");
}

uint64_t RandomSeed() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

proto::Micros WallOffset(const net::Driver& drv) {
  auto wall = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch());
  return wall.count() - drv.now();
}

}  // namespace cm::mcastrun
