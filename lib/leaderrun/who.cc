// cm-leader who: leader::Observer on net::Driver, then one answer on stdout.
#include <cstdio>

#include "leader/observer.h"
#include "leaderrun/run.h"
#include "net/driver.h"
#include "net/route.h"
#include "util/json.h"
#include "util/log.h"

namespace cm::leaderrun {

Code Who(const WhoOptions& o) {
  net::DriverConfig dc;
  dc.group = o.group;
  if (o.interface) {
    dc.iface = *o.interface;
  } else if (auto local = net::LocalAddressFor(o.group)) {
    dc.iface = local->ip;
  }
  dc.rcvbuf = 1 << 20;
  auto drv = net::Driver::Open(dc);
  if (!drv.ok()) return log::Error("who: " + drv.status().ToString()), Code::kFailure;
  leader::Observer obs(o.key ? &*o.key : nullptr, o.timeout, o.members);
  net::CoreRef<leader::Observer> ref(&obs);
  (*drv)->Run(ref, {.done = [&] { return obs.done(); }});
  const auto& best = obs.leader();
  if (!best) {
    if (o.json) std::printf("{\"leader\":null}\n");
    log::Info("no leader heard");
    return Code::kNotFound;
  }
  if (o.json) {
    JsonObject j;
    j.Uint("leader", best->sender)
        .Str("address", best->addr.ToString())
        .Uint("epoch", best->epoch)
        .Uint("priority", best->priority)
        .Uint("interval_us", best->interval_us)
        .Uint("member_count", best->member_count);
    if (o.members) {
      JsonArray ids;
      for (uint64_t id : obs.members()) ids.Raw(std::to_string(id));
      j.Raw("members", ids.Build());
    }
    std::printf("%s\n", j.Build().c_str());
  } else {
    std::printf("%llu %s epoch %llu\n", static_cast<unsigned long long>(best->sender), best->addr.ToString().c_str(),
                static_cast<unsigned long long>(best->epoch));
    if (o.members)
      for (uint64_t id : obs.members()) std::printf("member %llu\n", static_cast<unsigned long long>(id));
  }
  return Code::kOk;
}

}  // namespace cm::leaderrun
