// The CCM's sites file (TOML; commented example in docs/examples/sites.toml):
// where the CCM listens, and every site with its multicast group and servers.
//
//   [ccm]
//   listen = "198.18.0.1:7700"          HTTP endpoint relays (and cm-leader --ccm) report to and fetch from
//   url = "http://ccm.example:7700"     optional: what relays are told (default http://<listen>)
//   order = ["ams", "fra"]              optional admin override: these sites first, in this order
//   relay_port = 7710                   default port of every relay's HTTP endpoint
//   uplink_mbit = 1000                  optional: the CCM's uplink; with the sites' rate_mbit it sets
//                                       how many sites fetch from the CCM at once (default: a chain)
//   [[site]]
//   name = "ams"
//   group = "239.192.0.1:7800"          the site's multicast group (cm-mcast)
//   leader = "ams-1"                    optional static/preferred leader (one of its servers)
//   tz = "+01:00"                       optional facts, defaults for the site's servers
//   [[site.server]]
//   name = "ams-1"
//   address = "198.18.1.10"             IPv4; relay URL = http://address:relay_port
//   url = "http://198.18.1.10:7711"     optional: the relay URL instead
//   cpu_permille = 120                  optional facts for ordering (see ServerFacts)
//
// Rules: unknown keys are errors (a typo must not pass silently); site and
// server names are [A-Za-z0-9._-]{1,64} and unique (server names across all
// sites: they key the state database); server addresses are unique (a
// cm-leader report names its leader by address; on one host use 127.0.0.2,
// 127.0.0.3, ...: all of 127/8 is loopback); groups are multicast; ports
// are 1..65535; every site has a server; `order` names each site at most once.
//
// Errors are one line, Code::kUsage: "<file>:<line>: <field>: <problem>",
// e.g. `sites.toml:14: site[ams].server[ams-1].address: "198.18.1.x" is not
// an IPv4 address`. Fields are dotted paths; an element without a usable
// name is written by position, `site[#2]`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/core.h"
#include "util/status.h"

namespace cm::push {

constexpr uint16_t kDefaultRelayPort = 7710;

// What orders the leaders before (or instead of) live cm-leader reports.
// All optional. A server's facts are its own over its site's.
struct ServerFacts {
  std::optional<uint32_t> cpu_permille;          // load per CPU x 1000, 0..1000, lower is better (as cm-leader)
  std::optional<uint32_t> rate_mbit;             // uplink rate, Mbit/s, 1..1000000
  std::optional<int32_t> utc_offset_min;         // from tz = "+HH:MM" / "-HH:MM" (-12:00..+14:00)
  std::string location;                          // free text ("" = unknown)
  std::optional<uint32_t> reliability_permille;  // 0..1000, higher is better
};

struct Server {
  std::string name;
  std::string site;     // name of the site it belongs to
  uint32_t ip = 0;      // host byte order
  std::string address;  // as written, "198.18.1.10"
  std::string url;      // the relay's base URL, no trailing '/': `url` or http://address:relay_port
  ServerFacts facts;
  int line = 0;  // of its [[site.server]] header, for messages
};

struct Site {
  std::string name;
  proto::Address group;  // multicast
  std::string leader;    // preferred/static leader (a server of this site); "" = elected
  ServerFacts facts;     // the site's defaults (already applied to its servers)
  std::vector<Server> servers;  // at least one, in file order
  int line = 0;
};

struct CcmConfig {
  proto::Address listen;
  std::string url;  // what relays are told to use, no trailing '/'
  std::vector<std::string> order;  // site names, each a site of the file
  uint16_t relay_port = kDefaultRelayPort;
  std::optional<uint32_t> uplink_mbit;  // the CCM's own uplink: how many sites it feeds at once (--star-max)
};

// The parsed file. Lookups are linear scans (hundreds of servers at most) and
// return pointers into `sites`, valid while it is not modified; nullptr when
// there is no match.
struct SitesConfig {
  std::string source;  // the file name used in messages
  CcmConfig ccm;
  std::vector<Site> sites;  // in file order

  const Site* FindSite(std::string_view name) const;
  const Server* FindServer(std::string_view name) const;
  const Server* ServerByIp(uint32_t ip) const;
  // "a.b.c.d" or "a.b.c.d:port" (a cm-leader report's leader_address).
  const Server* ServerByAddress(std::string_view address) const;
  // The site holding server `server`.
  const Site* SiteOf(std::string_view server) const;
  size_t ServerCount() const;
};

// Parses the text of a sites file; `name` is used in error messages.
Result<SitesConfig> ParseSites(std::string_view text, const std::string& name);
// Reads and parses `path`. An unreadable file is kUsage too ("<path>: <reason>").
Result<SitesConfig> LoadSites(const std::string& path);

// --only NAME[,NAME...]: keeps the named servers and every server of a named
// site (empty `only`: all). kUsage naming `file` for a name that is neither,
// or when no server is left.
Status RestrictToOnly(SitesConfig* sites, const std::vector<std::string>& only, const std::string& file);

// "a.b.c.d" -> host-order address; nullopt on anything else.
std::optional<uint32_t> ParseIpv4(std::string_view s);

}  // namespace cm::push
