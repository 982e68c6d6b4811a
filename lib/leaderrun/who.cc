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
  // Every leader heard: more than one is a split brain (or a takeover
  // under way); the newest epoch is the answer, the others are listed.
  const std::vector<leader::Message> all = obs.leaders();
  if (all.size() > 1) log::Warn("heard " + std::to_string(all.size()) + " leaders");
  auto name_of = [&](uint64_t id) {
    auto it = obs.names().find(id);
    return it == obs.names().end() ? std::string() : it->second;
  };
  if (o.json) {
    JsonObject j;
    j.Uint("leader", best->sender)
        .Str("address", best->addr.ToString())
        .Uint("epoch", best->epoch)
        .Uint("priority", best->priority)
        .Uint("interval_us", best->interval_us)
        .Uint("member_count", best->member_count);
    if (o.members) {
      JsonArray ids, named;
      for (uint64_t id : obs.members()) {
        ids.Raw(std::to_string(id));
        named.Raw(JsonObject().Uint("id", id).Str("name", name_of(id)).Build());
      }
      j.Raw("members", ids.Build());
      j.Raw("member_names", named.Build());
    }
    JsonArray leaders;
    for (const leader::Message& m : all)
      leaders.Raw(JsonObject()
                      .Uint("leader", m.sender)
                      .Str("address", m.addr.ToString())
                      .Uint("epoch", m.epoch)
                      .Uint("priority", m.priority)
                      .Build());
    j.Raw("leaders", leaders.Build());
    std::printf("%s\n", j.Build().c_str());
  } else {
    std::printf("%llu %s epoch %llu\n", static_cast<unsigned long long>(best->sender), best->addr.ToString().c_str(),
                static_cast<unsigned long long>(best->epoch));
    for (size_t i = 1; i < all.size(); ++i)
      std::printf("also leading: %llu %s epoch %llu\n", static_cast<unsigned long long>(all[i].sender),
                  all[i].addr.ToString().c_str(), static_cast<unsigned long long>(all[i].epoch));
    if (o.members)
      for (uint64_t id : obs.members()) {
        const std::string name = name_of(id);
        std::printf("member %llu%s%s\n", static_cast<unsigned long long>(id), name.empty() ? "" : " ", name.c_str());
      }
  }
  return Code::kOk;
}

}  // namespace cm::leaderrun
