// The site's elected leader as cm-leader's state file says (cm-leader
// --state-file; one JSON object rewritten atomically on every change):
//   {"v":1,"segment":"NAME","self":"a.b.c.d:port","leader":"a.b.c.d:port" or null,
//    "epoch":N,"role":"leader"|"member"|"candidate","updated_unix_ms":N,
//    "members":[{"name":..,"address":..}] (the leader's only)}
// A relay reads it for each GET /v1/status (docs/protocol/push.md), so the
// CCM can push through the elected leader. Unknown keys are ignored.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "push/messages.h"

namespace cm::pushrun {

// Where the relay looks when relay.toml names no `leader_state`.
inline constexpr const char* kDefaultLeaderState = "/run/content-mover/leader.json";

// The leader's address (without its port), epoch and, when this node leads,
// its registered members; nullopt when the text
// is not such an object, its "v" is not 1, or it names no leader. Pure.
std::optional<push::SiteLeader> ParseLeaderState(std::string_view json);
// The same for the file at `path`; nullopt when it is missing or unreadable
// too (at most 64 KiB are read).
std::optional<push::SiteLeader> ReadLeaderState(const std::string& path);

}  // namespace cm::pushrun
