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

#include "push/sites.h"
#include "util/group_key.h"

namespace cm::pushrun {

struct ProbeAnswer {
  bool up = false;            // answered at all (any HTTP status)
  std::string error;          // why not, one line
  std::string leader_address; // the site leader's IPv4 address as its cm-leader says ("" = none/unverified)
  uint64_t epoch = 0;
};

struct ProbeOptions {
  std::chrono::milliseconds timeout{1500};
  size_t threads = 16;
};

// server name -> answer, for every server of `sites`.
std::map<std::string, ProbeAnswer> ProbeSites(const push::SitesConfig& sites, const GroupKey& group_key,
                                              const ProbeOptions& o = {});

// Per site: the leader the newest epoch among verified answers names (a
// server of that site), or "" when none.
std::map<std::string, std::string> ElectedLeaders(const push::SitesConfig& sites,
                                                  const std::map<std::string, ProbeAnswer>& answers);

// Checks one status answer (pure but for `now_s`): the stamp verifies from
// `server`, and the body echoes `nonce`. Fills leader_address/epoch.
bool CheckStatusAnswer(const std::string& server, const std::string& nonce, const std::string* stamp,
                       const std::string& body, const GroupKey& report_key, int64_t now_s, ProbeAnswer* out);

}  // namespace cm::pushrun
