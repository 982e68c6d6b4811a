// The contract between a protocol core and whatever drives it. A core is a
// pure state machine: it never reads a clock, touches a socket or draws
// randomness of its own. Events go in with the time passed as an argument;
// effects come out (datagrams to send, the next wake-up, events to report).
// The same core runs under Boost.Asio in the tools (lib/net) and under the
// deterministic simulator in the tests (lib/sim).
//
//   struct MyCore {
//     void Start(Micros now, Effects* out);
//     void OnDatagram(Micros now, const Address& from, std::string_view bytes, Effects* out);
//     void OnTimer(Micros now, Effects* out);   // called at (or after) out->wake_at
//   };
//
// Randomness: a core that needs it owns a Rng seeded by its driver (from the
// simulator's seed in tests, from the OS in the tools).
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace cm::proto {

// Time in microseconds since an arbitrary epoch chosen by the driver.
using Micros = int64_t;
constexpr Micros kMillis = 1000;
constexpr Micros kSeconds = 1000 * 1000;
constexpr Micros kNever = INT64_MAX;

// An IPv4 endpoint. Multicast groups are addresses in 224.0.0.0/4.
struct Address {
  uint32_t ip = 0;  // host byte order
  uint16_t port = 0;
  bool operator==(const Address&) const = default;
  auto operator<=>(const Address&) const = default;
  bool IsMulticast() const { return (ip >> 28) == 0xe; }
  std::string ToString() const;  // "a.b.c.d:port"
};
// Parses "a.b.c.d:port"; false on malformed input.
bool ParseAddress(std::string_view s, Address* out);

enum class Transport : uint8_t {
  kDatagram,  // UDP: may be lost, duplicated, reordered (to a group or a host)
  // A reliable, ordered message to another driver's core (TCP in the tools,
  // one connection per peer, each message framed by a 4-byte little-endian
  // length: the one stream framing, lib/net/driver.h).
  kStream,
  // A report to a collector that is not a core (cm-leader's segment report
  // to the CCM): the driver hands it to the tool's edge, which delivers it
  // (cm-leader: an authenticated POST /v1/leader-report to the CCM's HTTP
  // server, lib/leaderrun/reporter.h).
  kReport,
};

struct Send {
  Address to;
  std::string bytes;
  Transport transport = Transport::kDatagram;
};

// A change of the multicast groups a core receives: the driver joins (binds
// and subscribes, on its interface) or leaves `group`. Datagrams to every
// joined group reach OnDatagram alike.
struct GroupChange {
  enum class Kind : uint8_t { kJoin, kLeave };
  Kind kind = Kind::kJoin;
  Address group;
  bool operator==(const GroupChange&) const = default;
};

struct Effects {
  std::vector<Send> sends;
  std::vector<GroupChange> groups;  // applied in order, before the sends
  // Absolute time of the next OnTimer call; kNever for none. Each call's
  // value replaces the previous one (a core has a single wake-up).
  Micros wake_at = kNever;
  // Things that happened, for logs, JSON events and test invariants
  // (e.g. "elected", "delivered <id>"). Free-form, one line each: for people
  // and tests only; a driver never acts on their text (typed effects above).
  std::vector<std::string> events;
  // The same for lines that need an operator's attention (an alert, an
  // error the core worked around): drivers log them as warnings.
  std::vector<std::string> alerts;
  void Clear() {
    sends.clear();
    groups.clear();
    events.clear();
    alerts.clear();
    wake_at = kNever;
  }
};

template <typename C>
concept Core = requires(C c, Micros now, const Address& from, std::string_view bytes, Effects* out) {
  { c.Start(now, out) };
  { c.OnDatagram(now, from, bytes, out) };
  { c.OnTimer(now, out) };
};

// The only randomness a core may use: seeded by its driver.
using Rng = std::mt19937_64;

}  // namespace cm::proto
