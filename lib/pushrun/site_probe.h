// What the CCM learns from every relay before a push starts: is it up, and
// whom does cm-leader say leads its site. One `GET /v1/status?nonce=N` per
// server, all at once (bounded threads), each bounded by a timeout. A relay
// reading a cm-leader state file answers "site_leader" and stamps its answer
// (CM-Auth mac with the report key, to "ccm", over the body, which echoes
// the nonce); an unstamped or unverifiable answer still tells that the relay
// is up, but its site_leader is ignored (docs/protocol/push.md, "Start").
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "http/wire.h"
#include "push/messages.h"
#include "push/sites.h"

namespace cm::pushrun {

struct ProbeAnswer {
  bool up = false;            // answered at all (any HTTP status)
  std::string error;          // why not, one line
  std::string leader_address; // the site leader's IPv4 address as its cm-leader says ("" = none/unverified)
  uint64_t epoch = 0;
  std::optional<push::LiveTree> live;  // verified answers to a live probe only
  std::vector<push::SiteMember> members;  // verified answers of a site leader's relay: its cm-leader's members
};

struct ProbeOptions {
  std::chrono::milliseconds timeout{1500};
  size_t threads = 16;
  bool live = false;  // ask for the live tree (cm-apply verify-live on every relay)
  std::chrono::milliseconds live_timeout{30000};
};

class AuthEdge;

// server name -> answer, for every server of `sites`; `auth` (the CCM's,
// with the group key) checks the stamps.
std::map<std::string, ProbeAnswer> ProbeSites(const push::SitesConfig& sites, const AuthEdge& auth,
                                              const ProbeOptions& o = {});

// Per site: the leader the newest epoch among verified answers names (a
// server of that site), or "" when none.
std::map<std::string, std::string> ElectedLeaders(const push::SitesConfig& sites,
                                                  const std::map<std::string, ProbeAnswer>& answers);

// Checks one status answer: the stamp verifies from `server`
// (AuthEdge::CheckStampedAnswer) and the body (push::ParseRelayStatus)
// echoes `nonce`. Fills leader_address/epoch.
bool CheckStatusAnswer(const AuthEdge& auth, const std::string& server, const std::string& nonce,
                       const http::HeaderMap& headers, const std::string& body, ProbeAnswer* out);

}  // namespace cm::pushrun
