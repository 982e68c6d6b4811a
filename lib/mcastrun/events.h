// cm-mcast --json: the cores' event lines (proto::Effects events and
// alerts, sentences for people) as typed records for programs. Each line a
// core emits maps to one named event with typed fields, e.g.
//
//   "start session 7 a.bin size 3000 rate 500000000"
//   -> {"v":1,"event":"session_start","role":"sender","t":0.012,
//       "session":7,"file":"a.bin","size":3000,"rate_bps":500000000}
//
// The table of events and fields is in cm-mcast(1), JSON RECORDS (rules in
// docs/protocol/mcast.md, "JSON events"); the schema version is
// kSchemaVersion ("v"). A line no pattern
// knows (a core changed its wording without this table) becomes
// {"event":"message","text":...}; the unit tests run the cores and fail
// on any such line. Pure: no clock, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cm::mcastrun {

inline constexpr int kSchemaVersion = 1;

// Which core spoke: a server runs a sender per session, so its lines are
// the server's and the sender's.
enum class Role { kSender, kServer, kReceiver };
const char* RoleName(Role r);

struct EventField {
  std::string key;
  std::variant<std::string, uint64_t, double> value;
  bool operator==(const EventField&) const = default;
};
struct Event {
  std::string name;  // "message" when no pattern matched
  std::vector<EventField> fields;
};

// The event a core's line stands for; nullopt when no pattern matches.
std::optional<Event> ParseEvent(std::string_view line, Role role);

// One --json record (no newline): v, event, role, t (seconds since start),
// the event's fields, and "alert":true for a line the core flagged for an
// operator (Effects::alerts).
std::string EventRecord(std::string_view line, Role role, double t, bool alert);

}  // namespace cm::mcastrun
