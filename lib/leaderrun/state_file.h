// cm-leader's state file (`run --state-file PATH`, `state_file` in the
// TOML): what this node knows of its segment's leadership, for local
// readers (the relay tells the CCM who leads its site). One JSON object:
//
//   {"v":1,"segment":"NAME","self":"a.b.c.d:port","leader":"a.b.c.d:port"|null,
//    "epoch":N,"committed_seq":N,"role":"leader"|"member"|"candidate","updated_unix_ms":N}
//
// committed_seq: the site's highest committed SAM number as this node knows
// it (Election::committed_seq(); 0 while cm-leader runs no sequencer).
//
// Rewritten whole and atomically (a temporary file in the same directory,
// O_EXCL|O_NOFOLLOW, fsync, mode 0644 whatever the umask, rename, fsync of
// the directory) at start, on every change of leader, epoch, committed_seq
// or role, and at
// least every kStateRefresh (so updated_unix_ms also tells a reader that
// cm-leader is alive); removed on a clean exit. Readers ignore unknown keys.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "leader/election.h"
#include "proto/core.h"
#include "util/status.h"

namespace cm::leaderrun {

inline constexpr std::chrono::seconds kStateRefresh{60};

struct SegmentState {
  std::string segment;
  proto::Address self;
  std::optional<proto::Address> leader;  // none known
  uint64_t epoch = 0;
  uint64_t committed_seq = 0;
  std::string role;  // RoleName()
  // With SAM ordering (cm-leader --spool): the numbers this node's core
  // delivered and its edge has done ("sam": {"delivered": N, "applied": N}).
  // Leader only: the registered members, name and address (IPv4, no port):
  // "members": [{"name": "web3", "address": "a.b.c.d"}]; a relay passes them
  // to the CCM, which adds a server that joined without being in its sites
  // file (docs/protocol/convergence.md, "New servers").
  std::vector<std::pair<std::string, std::string>> members;
  bool sam = false;
  uint64_t sam_delivered = 0, sam_applied = 0;
  bool operator==(const SegmentState&) const = default;
};

// "leader" (this node leads), "member" (it follows a known leader),
// "candidate" (no leader known: listening, voting or conceding).
const char* RoleName(leader::State s);

// The file's JSON (one line, newline-terminated).
std::string StateFileJson(const SegmentState& s, int64_t updated_unix_ms);

// Writes `json` to `path` as described above. Errors: ErrnoError (kNotFound
// for a missing directory, kIo otherwise).
Status WriteStateFile(const std::string& path, const std::string& json);

}  // namespace cm::leaderrun
