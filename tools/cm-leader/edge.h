// The Boost.Asio edge of cm-leader: sockets, timers, signals, hooks. The only
// file that includes Asio; the protocol is in lib/leader.
#pragma once

#include <optional>
#include <string>

#include "leader/election.h"

namespace cm::leader_tool {

struct RunOptions {
  leader::Config cfg;
  leader::Facts facts;
  std::string on_elected, on_demoted, on_member_change;
  std::string content_root = "/";  // free disk is measured here
  bool json = false;
};
// Runs the node until SIGTERM/SIGINT (then resigns). Returns an exit code.
int RunNode(RunOptions o);

struct WhoOptions {
  proto::Address group;
  std::optional<uint32_t> interface;  // listen on this interface (default: the route to the group)
  std::optional<GroupKey> key;
  proto::Micros timeout = 4 * proto::kSeconds;
  bool members = false, json = false;
};
// Listens on the control channel and prints the leader; exit 3 if none.
int Who(const WhoOptions& o);

// Accepts TCP connections and prints every report line it receives.
int ReportSink(const std::string& listen);

// The address this host sends to `group` from (routing decides).
std::optional<proto::Address> LocalAddressFor(proto::Address group);

}  // namespace cm::leader_tool
