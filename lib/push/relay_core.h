// The relay's protocol core: every decision `cm-push relay` makes for the
// assignments it handles (docs/protocol/push.md, "The relay core"), as a pure
// state machine after proto/core.h. No clock, socket, thread, file or RNG:
// events go in with the time, typed actions come out, and the edge
// (lib/pushrun/relay.cc) or the simulator (tests/unit/push/relay_*) runs them.
//
// One core per relay; it keeps one Transfer per serial, which may hold two
// roles at once:
//   leader - told by POST /v1/fetch (from the CCM or another leader). Fetches
//            from its source (the edge moves the bytes: StartFetch, reported
//            back as FetchUpdates); a failed attempt is a failed source: ask
//            the CCM (/v1/source-failed) for another and resume at the
//            verified watermark; give up after max_source_failures (then
//            /v1/relay-failed with local = false). A failure of its own
//            (FetchFault::kLocal: no space, spool I/O; kAuth when the source
//            is the CCM or a second source gave the same verdict; its own
//            cm-apply failing) is no source's: it posts /v1/relay-failed at
//            once and stops leading the serial (no multicast, no report,
//            no more /v1/next) until ordered again. Reports
//            progress every progress_interval and on completion; with
//            order.serve, asks /v1/next whom to serve (Next: POST the order
//            to that leader with ourselves as source, /v1/notify-failed if it
//            cannot be reached; Retry: ask again after retry_ms clamped to
//            [serve_retry_min, serve_retry_max]; NoneLeft: stop). The site
//            phase starts once the chunk table is known (order.stream) or the
//            file is complete: /v1/expect to every member; the members that
//            answer get a multicast child (growing while we still fetch);
//            those that do not are tried again with back-off for
//            member_retry and, reached late, join; a member that answered
//            a /v1/expect with 4xx refused it (reported failed at once, with
//            the refusal). Our own cm-apply once complete; then member reports
//            are awaited up to member_wait and one site report goes to the
//            CCM. Meanwhile every member_probe_interval each member that has
//            not reported is probed (GET /v1/status): one that no longer
//            knows the serial (it restarted) gets its /v1/expect again (over
//            HTTP once the multicast is over); one unreachable for
//            member_retry is reported failed with the reason.
//            Ordered again for a serial whose part here is over (reported,
//            stopped, or the fetch failed), it runs the site phase again:
//            the file held is not fetched again, every member is expected
//            again (those that applied report at once), its own cm-apply
//            runs again (idempotent) and a fresh site report goes out. An
//            order of the same CCM run while the part runs only moves the
//            source (a repeat is a no-op). An order from another CCM run
//            (another ccm_id or ccm URL: the CCM was restarted) takes the
//            transfer over in any phase: later calls go to the new run and
//            are stamped for it, the old run's queued calls are dropped and
//            answers to them ignored; a running fetch continues with its
//            bytes, serving starts over, a site phase under way takes the
//            new order's extra members and reports to the new run, a part
//            that is over (or whose report is on its way) runs again.
//            A 4xx from the CCM to /v1/next, /v1/progress or
//            /v1/source-failed (the job is over, another run) ends that for
//            the run at once, never asked again: serving stops, progress
//            stops, the part is given up (without /v1/relay-failed); a
//            /v1/next unanswered for serve_give_up ends serving too.
//   member - told by POST /v1/expect. Receives with a cm-mcast recv child,
//            else fetches from the leader over HTTP (member_fetch_attempts
//            attempts), applies, and reports to the leader. A /v1/expect from
//            another leader cancels the receive in progress and starts over
//            with the new leader; a member that already applied reports again
//            to a new leader without receiving again, and so does a member
//            asked again by the same leader after its part ended. Being
//            ordered to lead the same serial ends the member role (no report).
//
// Contract with the driver:
//  - every event carries `now` (monotonic, any epoch); the driver calls
//    OnTimer at or after the last Actions::wake_at (each event's value
//    replaces the previous one);
//  - every Call's result comes back exactly once through OnCallDone (also on
//    timeout: reached = false); every StartChild ends in exactly one
//    OnChildDone (also when cancelled: cancelled = true);
//  - a StartFetch replaces the serial's running attempt (the driver cancels
//    the old one); every attempt ends in one FetchUpdate with ended = true,
//    and progress in between is reported with ended = false (throttled as
//    the driver likes; every change of table_known or complete at least
//    once). Updates of an attempt that was replaced are ignored;
//  - before the first event naming a serial, the driver reports what it
//    already holds of it (a complete file from an earlier run) with a
//    FetchUpdate of attempt 0 (ended = false); the core keeps that even for
//    a serial it has no role for yet;
//  - a child's files and paths are the driver's: the core names the serial
//    and the kind; cm-mcast recv writes the serial's file, after which the
//    driver reports in ChildDone::file_complete whether it is complete.
// Not thread-safe: one driver thread (the edge's EdgeLoop) calls it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "push/core_io.h"
#include "push/messages.h"

namespace cm::push {

struct RelayCoreOptions {
  std::string name;  // this relay's name (the sites file's; cm-mcast --id)
  std::string url;   // how others reach it: the source we give next leaders, the leader_url members fetch from
  Micros member_wait = 300 * proto::kSeconds;  // members' reports are awaited this long (also the mcast children's limit)
  Micros member_retry = 5 * proto::kSeconds;   // a member that did not answer /v1/expect is tried this long
  Micros member_retry_first = 300 * proto::kMillis;  // first back-off; doubles up to member_retry_max
  Micros member_retry_max = 2 * proto::kSeconds;
  Micros progress_interval = 500 * proto::kMillis;  // at most one progress report per interval while fetching
  Micros call_timeout = 5 * proto::kSeconds;        // default for calls below without their own
  Micros progress_timeout = 2 * proto::kSeconds;
  Micros expect_timeout = 3 * proto::kSeconds;
  Micros call_retry_pause = 300 * proto::kMillis;   // try i waits i times this after a transport failure
  Micros failed_call_pause = 500 * proto::kMillis;  // after an unanswered /v1/next or /v1/source-failed
  Micros serve_retry_min = 20 * proto::kMillis;     // clamp of the CCM's retry_ms
  Micros serve_retry_max = 5 * proto::kSeconds;
  Micros serve_give_up = 60 * proto::kSeconds;     // /v1/next unanswered (transport) this long: serving ends
  int max_source_failures = 30;  // failed sources (attempts) before the leader gives up
  int report_tries = 10;         // site and member reports
  int mcast_recv_idle_s = 15;    // cm-mcast recv --timeout
  Micros apply_timeout = 30 * 60 * proto::kSeconds;
  int member_fetch_attempts = 5;                     // HTTP from the leader after the multicast failed
  Micros member_fetch_pause = 500 * proto::kMillis;  // times (attempt + 1) between them
  Micros member_probe_interval = 3 * proto::kSeconds;  // a member that has not reported is probed this often
  Micros probe_timeout = 2 * proto::kSeconds;
};

// Why a fetch attempt ended without the whole file: whose failure it is.
enum class FetchFault : uint8_t {
  kNone,    // not ended, complete, or cancelled
  kSource,  // the source's: unreachable, slow, closed early, a corrupt chunk, a bad header
  kAuth,    // the signature or key verdict (another key, unsigned, bad signature): ours when
            // the source is the CCM, or when two sources gave it
  kLocal,   // ours: no space in the spool, a spool I/O error, our key unreadable
};
const char* FetchFaultName(FetchFault f);  // "", "source", "auth", "local"

// What the driver reports about a serial's held bytes and fetch attempts.
struct FetchUpdate {
  uint64_t serial = 0;
  uint64_t attempt = 0;      // StartFetch::attempt; 0 = not an attempt (held on disk, or after a receive)
  bool table_known = false;  // header and chunk table checked: the bytes can be served and mirrored
  uint64_t verified = 0;     // checked bytes of the chunked range
  uint64_t size = 0;         // the whole file's size (0 until known)
  bool complete = false;
  bool ended = false;        // this attempt is over (complete, failed or cancelled)
  std::string error;         // ended without complete: why (one line)
  FetchFault fault = FetchFault::kSource;  // ended without complete: whose failure
};

using ChildId = uint64_t;
enum class ChildKind : uint8_t { kApply, kMcastSend, kMcastRecv };
const char* ChildKindName(ChildKind k);  // "cm-apply", "cm-mcast send", "cm-mcast recv"

// A child process to start. The driver builds argv from its own options
// (programs, spool, root, keys, interface, rate).
struct StartChild {
  ChildId id = 0;
  uint64_t serial = 0;
  ChildKind kind = ChildKind::kApply;
  TransferKind transfer = TransferKind::kStage;  // kApply: what applying does
  std::string group;                  // kMcast*: ADDR:PORT
  std::vector<std::string> receivers;  // kMcastSend: --receivers
  bool growing = false;               // kMcastSend: send a copy grown from the checked bytes (--final-size)
  uint64_t final_size = 0;            // kMcastSend with growing
  int idle_timeout_s = 0;             // kMcastRecv: cm-mcast recv --timeout
  Micros timeout = 0;                 // the whole child's limit (0 = none)
};

struct ChildDone {
  ChildId id = 0;
  int exit_code = -1;          // -1: could not be started (error_line says why)
  std::string error_line;      // the last line of its stderr, or why it did not start
  bool cancelled = false;      // ended by CancelChild
  bool file_complete = false;  // kMcastRecv: the serial's file is complete now
  std::string release;         // kApply: the release the server runs after it (cm-apply --json), "" = unknown
  std::string manifest;        // kApply: that release's manifest hash (hex, cm-apply --json), "" = unknown
};

struct StartFetch {
  uint64_t serial = 0;
  uint64_t attempt = 0;     // > 0, increasing per core
  std::string source_url;   // base URL; resume at the verified watermark
};

struct LogNote {
  enum class Level : uint8_t { kDebug, kInfo, kWarn, kError } level = Level::kInfo;
  std::string text;
};

// A role's part in a serial ended (for the edge's counters): a leader sent
// its site report ("reported") or /v1/relay-failed ("failed"); a member's
// run ended "staged", "committed" or "failed".
struct TransferOutcome {
  uint64_t serial = 0;
  bool leader = false;
  std::string outcome;
};

// Everything one event asks of the driver. Cleared by every event.
struct RelayActions {
  std::vector<Call> calls;
  std::vector<StartFetch> fetches;
  std::vector<uint64_t> stop_fetches;  // serials whose running attempt is to be cancelled
  std::vector<StartChild> children;
  std::vector<ChildId> cancel_children;
  std::vector<uint64_t> ended;         // serials with nothing running any more (resources may go)
  std::vector<TransferOutcome> outcomes;
  std::vector<LogNote> notes;
  Micros wake_at = proto::kNever;
  void Clear();
};

// What a transfer is doing, for GET /v1/status.
enum class TransferPhase : uint8_t {
  kNew, kFetching, kComplete, kFailed, kReported,  // leader role
  kReceiving, kStaged, kCommitted, kMemberFailed,  // member role
};
const char* TransferPhaseName(TransferPhase p);  // "new", "fetching", ..., "receiving", "staged", ...

struct TransferView {
  uint64_t serial = 0;
  TransferPhase phase = TransferPhase::kNew;
  std::string source;  // leader role: the current source's URL
  uint64_t verified = 0, size = 0;
  bool complete = false;
};

// The transfers of a GET /v1/status answer (messages.h) for View().
std::vector<TransferStatus> StatusOf(const std::vector<TransferView>& views);

class RelayCore {
 public:
  explicit RelayCore(RelayCoreOptions opts);
  ~RelayCore();
  RelayCore(const RelayCore&) = delete;
  RelayCore& operator=(const RelayCore&) = delete;

  // POST /v1/fetch, /v1/expect, /v1/member-report: the reply to write at once.
  Reply OnFetchOrder(Micros now, const FetchOrder& order, RelayActions* out);
  // `unicast`: the leader's hint (outside the seal) that its multicast is
  // over: fetch over HTTP at once.
  Reply OnExpect(Micros now, const Expect& expect, RelayActions* out, bool unicast = false);
  Reply OnMemberReport(Micros now, const MemberReport& report, RelayActions* out);
  void OnFetchUpdate(Micros now, const FetchUpdate& update, RelayActions* out);
  void OnChildDone(Micros now, const ChildDone& done, RelayActions* out);
  void OnCallDone(Micros now, const CallResult& result, RelayActions* out);
  void OnTimer(Micros now, RelayActions* out);

  std::vector<TransferView> View() const;  // every transfer, by serial
  // Drops a serial's state (its spool file went by retention). False, and
  // nothing changes, while it is in use: anything running, a call or child
  // outstanding. A later order for it starts from scratch.
  bool Forget(uint64_t serial);
  // Whether Forget(serial) would refuse: the serial is in use.
  bool InUse(uint64_t serial) const;
  const RelayCoreOptions& options() const { return opts_; }

 private:
  struct Impl;
  RelayCoreOptions opts_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cm::push
