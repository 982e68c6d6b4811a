// What the session loops of lib/mcastrun share: the driver, the core's
// events on stdout/stderr, per-receiver lines.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "mcast/sender.h"
#include "mcastrun/events.h"
#include "mcastrun/run.h"
#include "net/driver.h"
#include "util/json.h"

namespace cm::mcastrun {

Result<std::unique_ptr<net::Driver>> OpenDriver(const Net& n);
// Logs the events of one call into a core (with --json: one record each on
// stdout, events.h).
void PrintEvents(const proto::Effects& fx, bool json, Role role);
// Starts a JSON record of kind `event` ({"v":1,"event":...}): the records
// that are not a core's event (per receiver, per file, hash lines).
JsonObject Record(const char* event);
// One line (or JSON record "receiver_result") per receiver of a finished session.
void ReportReceivers(bool json, const std::string& name, const std::map<std::string, mcast::ReceiverInfo>& rs);
// For the daemons (serve, send --stay, recv --serve): SIGHUP is never
// fatal. IgnoreHangups at start; NoteHangup from the loop's tick logs one
// taken since (util/hangup.h).
void NoteHangup();
// A seed for a core's Rng from the OS.
uint64_t RandomSeed();
// What to add to the driver's time to get the Unix wall clock (µs): the
// cores' wall_offset (replay defence). Taken again now and then, so a daemon
// follows a clock that was stepped.
proto::Micros WallOffset(const net::Driver& drv);

}  // namespace cm::mcastrun
