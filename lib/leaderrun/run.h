// cm-leader on real sockets: the election core (lib/leader) on net::Driver,
// with the host's measurements, JSON state lines, hooks, `who` and the
// report sink. Each entry point logs its own diagnostics and returns a Code
// that the tool maps one-to-one to its exit code.
#pragma once

#include <optional>
#include <string>

#include "leader/election.h"
#include "leader/sam.h"
#include "leaderrun/sam_edge.h"
#include "util/group_key.h"
#include "util/status.h"

namespace cm::leaderrun {

struct NodeOptions {
  leader::Config cfg;  // cfg.wall_offset is set here, from the driver's clock
  leader::Facts facts;
  // Hooks: shell commands from the configuration (run as sh -c COMMAND with
  // the CM_LEADER_* environment, without waiting; their stdout goes to our
  // stderr, since stdout carries only the --json lines).
  std::string on_elected, on_demoted, on_member_change;
  std::string content_root = "/";  // free disk is measured here
  // When set: the segment state for local readers (state_file.h), written
  // at start (failing that, RunNode returns its code), on every change and
  // every minute; removed on a clean exit.
  std::string state_file;
  bool json = false;
  // Ordered delivery in the site (docs/protocol/ordering.md): the SAM core
  // and its edge over the relay's spool. sam->id is cfg.id; its members and
  // group are filled in at start (this node's unicast address, the control
  // channel); peers are learned from their authenticated Hellos.
  std::optional<leader::SamConfig> sam;
  SamEdgeOptions sam_edge;
};
// Runs the node until SIGTERM/SIGINT, then resigns (kOk). SIGHUP is logged
// and ignored.
Code RunNode(NodeOptions o);

struct WhoOptions {
  proto::Address group;
  std::optional<uint32_t> interface;  // listen on this interface (default: the route to the group)
  std::optional<GroupKey> key;
  proto::Micros timeout = 4 * proto::kSeconds;
  bool members = false, json = false;
};
// Listens on the control channel and prints the leader; kNotFound if none.
Code Who(const WhoOptions& o);

// An HTTP stand-in for the CCM's report endpoint on `listen`: prints the
// body of every POST /v1/leader-report as one JSON line and answers 200;
// with `key`, only reports whose CM-Auth stamp verifies (else 401/403/409).
// Runs until killed; kFailure if it cannot listen.
Code ReportSink(proto::Address listen, std::optional<GroupKey> key);

}  // namespace cm::leaderrun
