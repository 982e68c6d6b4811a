// Servers that joined a site's cm-leader membership without being in the
// CCM's sites file (docs/protocol/convergence.md, "New servers"). The site
// leader's relay lists its cm-leader's registered members in its stamped
// status answer; the CCM adds those it does not know (by name and address)
// to that site, records them in STATE/joined.json, and from then on treats
// them as servers of the site in every push, catch-up and converge: an empty
// one is replicated from the CCM's newest checkpoint like a server added to
// the file. A server later written into the sites file (same name or
// address) is the file's; the record is ignored for it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "push/sites.h"
#include "pushrun/site_probe.h"
#include "util/status.h"

namespace cm::pushrun {

struct JoinedServer {
  std::string site, name, address;
  bool operator==(const JoinedServer&) const = default;
};

// Pure: the members that verified leader answers list and `sites` does not
// have (a name no server has, an IPv4 address no server has, a valid name).
std::vector<JoinedServer> FindJoiners(const push::SitesConfig& sites, const std::map<std::string, ProbeAnswer>& answers);

// Adds the servers recorded under state_dir (none: nothing) to their sites;
// skips a record whose site is gone or whose name or address the file now has.
Status MergeJoined(push::SitesConfig* sites, const std::string& state_dir);
// Appends `add` to the record (atomically rewritten), skipping duplicates.
Status RecordJoined(const std::string& state_dir, const std::vector<JoinedServer>& add);

}  // namespace cm::pushrun
