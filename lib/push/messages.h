// The messages cm-push's CCM and relays exchange (docs/protocol/push.md), as
// typed values, and their JSON bodies. One vocabulary for the cores
// (relay_core.h, job_core.h), the HTTP edge (lib/pushrun), the state
// database (ServerState) and the simulator. Encode gives one JSON object;
// every Parse is total (bad input -> error Status, Code::kCorrupt) and fills
// defaults for missing optional fields. Pure: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "util/json_value.h"
#include "util/status.h"

namespace cm::push {

constexpr int kProtocolVersion = 2;  // 2: CM-Auth on every POST (push/auth.h)

// A server's progress within one job (also what the state database stores):
// pending -> fetching -> received -> staged -> committed, or failed at any
// step; rolled-back after a rollback job switched it back.
enum class ServerState : uint8_t { kPending, kFetching, kReceived, kStaged, kCommitted, kFailed, kRolledBack };
const char* ServerStateName(ServerState s);  // "pending", ..., "rolled-back"
std::optional<ServerState> ParseServerState(std::string_view name);

// What an assignment does on a server: staged (a content assignment) or
// switched (a commit or rollback assignment).
enum class TransferKind : uint8_t { kStage, kCommit };
const char* TransferKindName(TransferKind k);  // "stage", "commit"
std::optional<TransferKind> ParseTransferKind(std::string_view name);
// The state a server reaches when `kind` succeeds there.
inline ServerState SuccessState(TransferKind k) {
  return k == TransferKind::kCommit ? ServerState::kCommitted : ServerState::kStaged;
}

// How a server got the assignment.
enum class Via : uint8_t { kNone, kMulticast, kUnicast, kLeader, kCcm };
const char* ViaName(Via v);  // "", "multicast", "unicast", "leader", "ccm"
Via ParseVia(std::string_view name);  // unknown -> kNone

// A message as the CCM sealed it for its recipient (push/auth.h): the exact
// body and its CM-Auth header value. Whoever passes it on sends both
// unchanged; empty when the CCM did not seal it (the recipient refuses it).
struct Sealed {
  std::string body;
  std::string auth;
  bool empty() const { return body.empty(); }
  bool operator==(const Sealed&) const = default;
};

struct Member {
  std::string name;
  std::string url;  // the member relay's base URL, http://ip:port
  Sealed expect;    // the CCM's /v1/expect for this member (the leader passes it on)
  bool operator==(const Member&) const = default;
};

// POST /v1/fetch: the receiving relay fetches `serial` from `source` and,
// as a site leader, distributes it to `members`.
struct FetchOrder {
  uint64_t serial = 0;
  std::string job;
  TransferKind kind = TransferKind::kStage;
  uint64_t size = 0;
  std::string source;          // base URL of the node to fetch from
  std::string source_name;     // its name ("" = the CCM)
  std::string ccm;             // the CCM's base URL (reports, next, source-failed)
  std::string ccm_id;          // the running CCM's name for report stamps (`to` of CM-Auth; "" = "ccm")
  std::string relay;           // the recipient's own name
  std::string site;
  std::string group;           // the site's multicast group ADDR:PORT ("" = unicast only)
  std::vector<Member> members;  // the other servers of the site to hand it to
  bool serve = true;           // ask the CCM for next leaders to serve
  bool stream = true;          // multicast to the members while the file still arrives
                               // (false: once it is complete, as store-and-forward does)
  bool operator==(const FetchOrder&) const = default;
};
std::string Encode(const FetchOrder& o);
Result<FetchOrder> ParseFetchOrder(std::string_view json);
Result<FetchOrder> FetchOrderFromJson(const JsonValue& v);

// POST /v1/expect: a leader tells a member an assignment is coming.
struct Expect {
  uint64_t serial = 0;
  std::string job;
  TransferKind kind = TransferKind::kStage;
  uint64_t size = 0;
  std::string name;        // the member's own name
  std::string leader;      // leader name (cm-mcast sender id)
  std::string leader_url;  // fallback: fetch over HTTP from here
  std::string group;       // "" = fetch over HTTP at once
  bool operator==(const Expect&) const = default;
};
std::string Encode(const Expect& e);
Result<Expect> ParseExpect(std::string_view json);

// One server's outcome for one assignment. state is kStaged, kCommitted or
// kFailed. apply_exit: cm-apply's exit code when cm-apply ran and failed
// (util/exit_codes.h), else 0. release: the release the server runs after
// the action, as its cm-apply reported it (`--json`'s "release"; a stage or
// a no-op leaves the live release as it was); "" = unknown (cm-apply did
// not say, or an older relay). Encoded only when known; a report without
// it parses with "".
struct ServerResult {
  std::string name;
  ServerState state = ServerState::kFailed;
  std::string error;  // why, when failed
  Via via = Via::kNone;
  int apply_exit = 0;
  std::string release;
  std::string manifest;  // hex of the live release's manifest as cm-apply reported it ("" = unknown)
  bool operator==(const ServerResult&) const = default;
};
std::string Encode(const ServerResult& r);
Result<ServerResult> ParseServerResult(const JsonValue& v);

// POST /v1/member-report (member -> leader).
struct MemberReport {
  uint64_t serial = 0;
  ServerResult result;
  bool operator==(const MemberReport&) const = default;
};
std::string Encode(const MemberReport& r);
Result<MemberReport> ParseMemberReport(std::string_view json);

// POST /v1/site-report (leader -> CCM).
struct SiteReport {
  uint64_t serial = 0;
  std::string site, leader;
  std::vector<ServerResult> servers;
  bool operator==(const SiteReport&) const = default;
};
std::string Encode(const SiteReport& r);
Result<SiteReport> ParseSiteReport(std::string_view json);

// POST /v1/progress (leader -> CCM): verified bytes of the chunked range.
struct Progress {
  uint64_t serial = 0;
  std::string relay;
  uint64_t verified = 0, size = 0;
  bool complete = false;
  bool operator==(const Progress&) const = default;
};
std::string Encode(const Progress& p);
Result<Progress> ParseProgress(std::string_view json);

// POST /v1/next (leader -> CCM): whom shall I serve? Also a progress report.
struct NextAsk {
  uint64_t serial = 0;
  std::string relay;
  uint64_t verified = 0;
  bool complete = false;
  bool operator==(const NextAsk&) const = default;
};
std::string Encode(const NextAsk& a);
Result<NextAsk> ParseNextAsk(std::string_view json);

// The CCM's answer to /v1/next: serve `relay` (POST `order` to url/v1/fetch
// with yourself as the source), ask again after retry_ms, or none left.
struct NextAnswer {
  enum class Kind : uint8_t { kNext, kRetry, kNoneLeft } kind = Kind::kNoneLeft;
  std::string relay, url;  // kNext
  FetchOrder order;        // kNext
  Sealed sealed;           // kNext: `order` as the CCM sealed it for `relay` (passed on unchanged)
  int64_t retry_ms = 0;    // kRetry
  bool operator==(const NextAnswer&) const = default;
};
std::string Encode(const NextAnswer& a);
Result<NextAnswer> ParseNextAnswer(std::string_view json);

// POST /v1/source-failed (leader -> CCM): my source stopped answering.
struct SourceFailed {
  uint64_t serial = 0;
  std::string relay;
  std::string source;      // its name ("" = the CCM)
  std::string source_url;
  uint64_t verified = 0;
  std::string error;
  bool operator==(const SourceFailed&) const = default;
};
std::string Encode(const SourceFailed& s);
Result<SourceFailed> ParseSourceFailed(std::string_view json);

// The CCM's answer: fetch from here now ("" name = the CCM).
struct SourceAnswer {
  std::string source_url, source_name;
  bool operator==(const SourceAnswer&) const = default;
};
std::string Encode(const SourceAnswer& a);
Result<SourceAnswer> ParseSourceAnswer(std::string_view json);

// POST /v1/notify-failed (leader -> CCM): I could not reach `to`.
struct NotifyFailed {
  uint64_t serial = 0;
  std::string from, to, error;
  bool operator==(const NotifyFailed&) const = default;
};
std::string Encode(const NotifyFailed& n);
Result<NotifyFailed> ParseNotifyFailed(std::string_view json);

// POST /v1/relay-failed (relay -> CCM, CM-Auth mac like a site report): a
// relay cannot do its part of `serial` for a reason of its own, not its
// source's (signature does not verify with its key, unsigned assignment
// refused, no space or spool I/O error, its own cm-apply failed, ...). It
// stops leading that serial; the CCM ends its part at once with `error`.
// apply_exit: cm-apply's exit code when cm-apply failed (util/exit_codes.h),
// else 0. local: true when the failure is the relay's own (another server
// may well succeed: replace it); false when it gave up on its sources
// (max_source_failures failed in a row: the CCM's sources are the problem).
struct RelayFailed {
  uint64_t serial = 0;
  std::string relay;
  std::string error;  // one line
  int apply_exit = 0;
  bool local = true;
  bool operator==(const RelayFailed&) const = default;
};
std::string Encode(const RelayFailed& f);
Result<RelayFailed> ParseRelayFailed(std::string_view json);

// GET /v1/status of a relay: what it holds and how each transfer stands,
// and the site's elected leader as its cm-leader state file says. With
// `?nonce=HEX` (IsStatusNonce) the answer echoes the nonce and carries a
// CM-Auth mac stamp from the relay to "ccm" over method "ANSWER", path
// "/v1/status" and the body (docs/protocol/push.md).
struct TransferStatus {
  uint64_t serial = 0;
  std::string state;  // push::TransferPhaseName (relay_core.h): "new", "fetching", ..., "staged"
  uint64_t verified = 0, size = 0;
  bool complete = false;
  std::string source;  // leader role: the current source's URL
  bool operator==(const TransferStatus&) const = default;
};
// The relay's live tree as `cm-apply verify-live --json` (quick) says,
// asked by the CCM's start probe (`?live=1`): the release it runs, the
// manifest recorded for it, the manifest the tree has now, and what differs
// (each list at most kMaxLivePaths). Absent: not asked, no root, or an
// older relay.
struct LiveTree {
  static constexpr size_t kMaxLivePaths = 1000;
  std::string release;          // "" = no live release (an empty root)
  uint64_t release_serial = 0;
  std::string manifest;         // hex of the release's recorded manifest ("" = none)
  std::string live_manifest;    // hex of the tree now
  bool ok = true;               // live_manifest == manifest
  std::vector<std::string> changed, missing, extra;
  bool truncated = false;
  uint64_t last_serial = 0;     // the newest serial its cm-apply applied, either space (0 = not said)
  bool operator==(const LiveTree&) const = default;
};
std::string EncodeLiveTree(const LiveTree& t);
Result<LiveTree> ParseLiveTree(const JsonValue& v);
// A server registered with the site's cm-leader (its name, IPv4 address).
struct SiteMember {
  std::string name, address;
  bool operator==(const SiteMember&) const = default;
};
struct SiteLeader {
  std::string address;  // the elected leader's IPv4 address (no port)
  uint64_t epoch = 0;   // cm-leader's election epoch
  // Answered by the leader's own relay: the members its cm-leader lists
  // (at most 1000), so the CCM learns servers that joined the site without
  // being in its sites file. Empty elsewhere.
  std::vector<SiteMember> members;
  bool operator==(const SiteLeader&) const = default;
};
struct RelayStatus {
  std::string name;
  std::vector<TransferStatus> transfers;
  std::optional<SiteLeader> site_leader;  // absent: no (readable) cm-leader state, or no leader known
  std::string nonce;                      // echoed ("" = none asked)
  std::optional<LiveTree> live;           // present when asked (?live=1) and known
  bool operator==(const RelayStatus&) const = default;
};
std::string Encode(const RelayStatus& s);
Result<RelayStatus> ParseRelayStatus(std::string_view json);
// 16 to 64 hex digits: what `?nonce=` may carry.
bool IsStatusNonce(std::string_view nonce);

// The body of a refusal ({"error": "..."}) and of a plain acknowledgement.
std::string EncodeError(std::string_view message);
// The refusal of a message accepted before (push/auth.h, 409): {"error":
// "...", "duplicate": true}; the sender's earlier try reached the server.
std::string EncodeDuplicate(std::string_view message);
bool IsDuplicateAnswer(int status, std::string_view body);
std::string EncodeAck();

}  // namespace cm::push
