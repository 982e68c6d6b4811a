// The JSON bodies cm-push's CCM and relays exchange (docs/protocol/push.md).
// Encode gives one JSON object; Parse is total (bad input -> error Status,
// Code::kCorrupt) and fills defaults for missing optional fields.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/json_value.h"
#include "util/status.h"

namespace cm::pushrun {

constexpr int kProtocolVersion = 1;

struct Member {
  std::string name;
  std::string url;  // the member relay's base URL, http://ip:port
};

// POST /v1/fetch: the receiving relay fetches `serial` from `source` and,
// as a site leader, distributes it to `members`.
struct FetchOrder {
  uint64_t serial = 0;
  std::string job;
  std::string kind = "stage";  // stage (a content assignment) | commit (commit/rollback assignment)
  uint64_t size = 0;
  std::string source;          // base URL of the node to fetch from
  std::string source_name;     // its name ("" = the CCM)
  std::string ccm;             // the CCM's base URL (reports, next, source-failed)
  std::string relay;           // the recipient's own name
  std::string site;
  std::string group;           // the site's multicast group ADDR:PORT ("" = unicast only)
  std::vector<Member> members;  // the other servers of the site to hand it to
  bool serve = true;           // ask the CCM for next leaders to serve
  bool stream = true;          // multicast to the members while the file still arrives
                               // (false: once it is complete, as store-and-forward does)
};
std::string Encode(const FetchOrder& o);
Result<FetchOrder> ParseFetchOrder(std::string_view json);
Result<FetchOrder> FetchOrderFromJson(const JsonValue& v);

// POST /v1/expect: a leader tells a member an assignment is coming.
struct Expect {
  uint64_t serial = 0;
  std::string job, kind = "stage";
  uint64_t size = 0;
  std::string name;        // the member's own name
  std::string leader;      // leader name (cm-mcast sender id)
  std::string leader_url;  // fallback: fetch over HTTP from here
  std::string group;       // "" = fetch over HTTP at once
};
std::string Encode(const Expect& e);
Result<Expect> ParseExpect(std::string_view json);

// One server's outcome for one assignment.
struct ServerResult {
  std::string name;
  std::string state;  // staged | committed | failed
  std::string error;  // why, when failed
  std::string via;    // multicast | unicast | leader | ccm
};
std::string Encode(const ServerResult& r);
Result<ServerResult> ParseServerResult(const JsonValue& v);

// POST /v1/member-report (member -> leader).
struct MemberReport {
  uint64_t serial = 0;
  ServerResult result;
};
std::string Encode(const MemberReport& r);
Result<MemberReport> ParseMemberReport(std::string_view json);

// POST /v1/site-report (leader -> CCM).
struct SiteReport {
  uint64_t serial = 0;
  std::string site, leader;
  std::vector<ServerResult> servers;
};
std::string Encode(const SiteReport& r);
Result<SiteReport> ParseSiteReport(std::string_view json);

}  // namespace cm::pushrun
