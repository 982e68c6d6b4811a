// The CCM's policy for one push job (docs/protocol/push.md, "The job core"):
// which leader each site has, the orders to /v1/fetch, the answers to the
// relays' /v1/next, /v1/source-failed, /v1/notify-failed, /v1/progress and
// /v1/site-report, the watchdog (stalls, liveness probes, leader
// replacement), the parts in order, the commit decision (`--require`) and
// one verdict per server per part. A pure core after proto/core.h: no
// clock, socket, thread, file, database or global RNG; the time comes in
// with every event, outgoing requests leave as push::Call values whose
// results come back through OnCallDone, and the core has one wake-up
// (JobActions::wake_at). Nothing here ever waits: a request is answered at
// once from the scheduler's state, and whatever must be checked first (is
// that source still alive?) goes out as a Call whose failure acts later.
//
// The edge (lib/pushrun/controller.cc) builds the JobPlan from the sites
// file and the assignment files, decodes HTTP into these events on one
// thread, runs the Calls, writes the records to the state database, makes
// the commit assignment with cm-pack when asked (OnCommitReady), and on
// `finished` writes the report and runs --on-fail.
//
// Guarantees (tests/unit/push/job_core_test.cc, job_core_sim_test.cc):
//  - one verdict (StateRecord with a final state) per server per part;
//  - a Call of Endpoint::kFetch goes only to a server of the plan;
//  - a replaced leader's report never closes its site, and a replaced leader
//    keeps its failed verdict;
//  - the job ends: at plan.options.timeout after Start at the latest, every
//    server without a verdict then fails "timed out" and `finished` is set.
// Not thread-safe: one caller at a time (the edge's loop thread).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/core.h"
#include "push/core_io.h"
#include "push/messages.h"
#include "push/require.h"
#include "push/scheduler.h"
#include "util/status.h"

namespace cm::push {

// ---- the plan (built by the edge before Start) -------------------------------

struct JobServer {
  std::string name;  // unique across the plan
  std::string url;   // the relay's base URL, http://host:port
  bool down = false; // did not answer the edge's probe at start: chosen as first leader only if all are
  // Ordering facts (sites file, cm-leader reports; push/ordering.h): 0 / 1 = unknown.
  double rate_bps = 0;
  double reliability = 1;
  int tz_offset_minutes = 0;
  std::optional<uint32_t> idle_cpu_permille;
};

struct JobSite {
  std::string name;
  std::vector<JobServer> servers;  // sites-file order; non-empty
  std::string group;               // the site multicast ADDR:PORT; "" = unicast only
  std::string preferred_leader;    // the sites file's `leader` ("" = none)
  std::string elected_leader;      // cm-leader's reported leader at start ("" = none known)
  std::optional<uint32_t> idle_cpu_permille;  // from cm-leader's report: an ordering fact
};

// One assignment the job sends (from its header: pushrun/assignment_info.h).
struct JobPart {
  uint64_t serial = 0;
  std::string job;
  uint64_t size = 0;        // file size
  uint64_t covered = 0;     // bytes in chunks (what relays count as verified); 0 for a header-only one
  uint64_t chunk_size = 0;  // 0 for a header-only one
  bool operator==(const JobPart&) const = default;
};

struct JobOptions {
  Require require;              // commit only if this many servers staged
  bool commit = true;           // false: stage only
  // The parts are switch assignments (commit or rollback: a fleet rollback):
  // they travel as a commit part does and the goal state is committed; no
  // commit assignment follows.
  bool switch_job = false;
  size_t star_max = 3;
  bool pipeline = true;
  bool sequential = false;      // baseline: every server in turn from the CCM
  Micros timeout = 3600 * proto::kSeconds;  // after Start, the job ends by then
  std::vector<std::string> admin_order;     // the sites file's [ccm] order
  std::string ccm_url;          // where relays reach the CCM (orders carry it)
  std::string ccm_id;           // this CCM run's name: `to` of the relays' report stamps (orders carry it)
  // Seals a message for its recipient (push/auth.h: the edge signs with the
  // CCM's key, with its clock and nonces). Unset: orders go unsealed (tests).
  std::function<Sealed(const std::string& to, Endpoint endpoint, const std::string& body)> seal;
  // The watchdog.
  Micros stall_timeout = 15 * proto::kSeconds;   // scheduler: no progress while the source is ahead
  Micros probe_interval = 2 * proto::kSeconds;   // GET /v1/status of each unfinished site's leader
  Micros probe_timeout = 1500 * proto::kMillis;
  int probe_failures = 2;                        // this many failed probes in a row replace the leader
  Micros order_timeout = 3 * proto::kSeconds;    // one POST /v1/fetch
  int order_attempts = 3;                        // then the site's leader is replaced
  Micros order_backoff = 300 * proto::kMillis;   // times the attempt number, between attempts
  // A leader that holds the whole part must send its site report within
  // this (it waits for its members up to its --member-wait, 300 s by
  // default); else the site gets another leader.
  Micros report_timeout = 360 * proto::kSeconds;
  // Hex of the manifest hash of the tree the job makes (the assignment's
  // result manifest; "" = not known). A server that reports it committed
  // with another live manifest has not reached the goal: failed, exit 8.
  std::string expect_manifest;
};

struct JobPlan {
  std::vector<JobSite> sites;   // non-empty
  std::vector<JobPart> parts;   // the stage parts, serials ascending; non-empty
  JobOptions options;
};

// ---- what comes out ------------------------------------------------------------

// A server's state for the database (pushdb's UpdateServer). kFetching when
// a part starts; then exactly one final record per server and part: kStaged,
// kCommitted or kFailed.
struct StateRecord {
  std::string server;
  std::string site;
  ServerState state = ServerState::kPending;
  uint64_t serial = 0;
  std::string error;
  int apply_exit = 0;
  std::string release;  // the live release the server reported ("" = not said)
  std::string manifest;  // its manifest hash (hex) as the server reported it ("" = not said)
  bool operator==(const StateRecord&) const = default;
};

// Why a site's leader was replaced.
enum class ReplaceReason : uint8_t {
  kUnreachable,     // its /v1/fetch order failed order_attempts times, or a notify-failed target is down
  kStalled,         // the scheduler failed it (no progress while its source was ahead)
  kNotAnswering,    // probe_failures probes of /v1/status in a row failed
  kDiedMidTransfer, // a relay's source failed and does not answer /v1/status
  kNoReport,        // it held the whole part for report_timeout and sent no site report
  kRefused,         // it answered our order with a 4xx (signature, name, ...): its reason is the detail
  kRelayFailed,     // it reported its own failure (POST /v1/relay-failed): its reason is the detail
};
const char* ReplaceReasonText(ReplaceReason r);  // "unreachable", "stalled", "relay not answering", ...

// Things that happened, for --json, the live view and tests. Fields that do
// not apply to a kind stay empty / zero.
struct JobEvent {
  enum class Kind : uint8_t {
    kPhase,          // a part starts: serial, transfer, bytes (= size), count (= sites)
    kSiteStarted,    // site, relay (= its leader), count (= servers in this part)
    kOrder,          // serial, relay, site, from (= source, "" = the CCM)
    kProgress,       // site, relay, bytes (verified), size (covered)
    kReceived,       // relay, site: a leader holds the whole part
    kServer,         // server, site, state, error, via, apply_exit: a verdict from a site report
    kSiteReport,     // site, relay (= the leader), serial: the site is closed
    kSiteFailed,     // site, error: no server of the site left to lead it
    kLeaderChanged,  // site, from (old), to (new), reason, error
    kReparent,       // relay, from (old source), to (new source; "" = the CCM), bytes (resume_at)
    kCommit,         // count (= staged), total (= servers): the commit goes
    kCommitRefused,  // count, total: --require not met; no commit
    kTimedOut,       // serial: the deadline passed
  };
  Kind kind = Kind::kPhase;
  uint64_t serial = 0;
  TransferKind transfer = TransferKind::kStage;
  std::string site, relay, server, from, to, error;
  ServerState state = ServerState::kPending;
  Via via = Via::kNone;
  ReplaceReason reason = ReplaceReason::kUnreachable;
  uint64_t bytes = 0, size = 0;
  size_t count = 0, total = 0;
  int apply_exit = 0;
};

// One server's outcome of the whole job (what the report lists), in plan order.
struct FinalVerdict {
  std::string server, site;
  ServerState state = ServerState::kFailed;
  uint64_t serial = 0;  // the last part it reached (0 = none)
  std::string error;
  int apply_exit = 0;
  std::string release;  // the live release the server last reported ("" = not said)
  std::string manifest;  // its manifest hash (hex) ("" = not said)
  bool ok = false;      // state is the job's goal (committed, or staged with commit off)
};

struct JobActions {
  std::vector<Call> calls;            // orders (kFetch) and probes (kStatus) to run
  std::vector<StateRecord> records;   // for the state database, in order
  std::vector<JobEvent> events;
  bool make_commit = false;           // make the commit assignment; answer with OnCommitReady
  bool update_shadow = false;         // the commit went out: bring the shadow copy up to date
  bool finished = false;              // the job is over; `verdicts` holds the outcome
  std::vector<FinalVerdict> verdicts;
  Micros wake_at = proto::kNever;     // the next OnTimer (replaces the previous one)
  void Clear() { *this = JobActions{}; }
};

// For GET /v1/status on the CCM.
struct JobSiteStatus {
  std::string site, leader;
  uint64_t verified = 0;
  bool done = false;
};

enum class JobStage : uint8_t {
  kIdle,          // before Start
  kTransfer,      // a part (stage or commit) is on its way
  kAwaitCommit,   // make_commit was asked; waiting for OnCommitReady
  kFinished,
};

class JobCore {
 public:
  // Errors: kUsage (no sites, a site without servers, duplicate server
  // names, no parts, parts not in ascending serial order).
  static Result<std::unique_ptr<JobCore>> Create(JobPlan plan);
  ~JobCore();

  // The first part's orders; the deadline starts now.
  void Start(Micros now, JobActions* out);

  // The requests relays make (docs/protocol/push.md). Each is answered at
  // once; a request for another serial than the running part's is answered
  // as stale (none_left for /v1/next, 409 for /v1/source-failed).
  Reply OnProgress(Micros now, const Progress& p, JobActions* out);
  Reply OnNext(Micros now, const NextAsk& a, JobActions* out);
  Reply OnSourceFailed(Micros now, const SourceFailed& s, JobActions* out);
  Reply OnNotifyFailed(Micros now, const NotifyFailed& n, JobActions* out);
  Reply OnSiteReport(Micros now, const SiteReport& r, JobActions* out);
  // POST /v1/relay-failed: `relay` cannot do its part of `serial` for a
  // reason of its own (key, disk, cm-apply): it fails with that reason at
  // once (and apply_exit) and its site gets another leader.
  Reply OnRelayFailed(Micros now, const std::string& relay, uint64_t serial, const std::string& error, int apply_exit,
                      JobActions* out);

  // The outcome of a Call this core made (exactly once per Call).
  void OnCallDone(Micros now, const CallResult& r, JobActions* out);
  // cm-leader elected `server` in `site`: a later replacement picks it.
  // Unknown sites or servers are ignored.
  void OnLeaderReport(Micros now, const std::string& site, const std::string& server, JobActions* out);
  // The commit assignment the edge made after make_commit (or why it could not).
  void OnCommitReady(Micros now, const Result<JobPart>& part, JobActions* out);
  void OnTimer(Micros now, JobActions* out);

  JobStage stage() const { return stage_; }
  bool finished() const { return stage_ == JobStage::kFinished; }
  // The running part's serial (0 when none).
  uint64_t serial() const;
  std::vector<JobSiteStatus> SiteStatus() const;
  // The current leader of `site` in the running part ("" when none).
  std::string LeaderOf(const std::string& site) const;
  const JobPlan& plan() const { return plan_; }

 private:
  struct Phase;
  // A Call in flight (or an order waiting to be sent again).
  struct Pending {
    enum class Kind : uint8_t { kOrder, kProbe } kind = Kind::kOrder;
    enum class Probe : uint8_t { kWatchdog, kSource, kNotifyTarget } probe = Probe::kWatchdog;
    uint64_t phase = 0;     // phase_seq_ when made; stale once another phase runs
    std::string server;     // the callee
    Order order;            // kOrder
    int attempt = 1;        // kOrder: 1..order_attempts
    std::string detail;     // kNotifyTarget: the relay's error text
  };
  explicit JobCore(JobPlan plan);

  // Parts and phases.
  void BeginPart(Micros now, const JobPart& part, TransferKind kind, JobActions* out);
  void StartNextPhase(Micros now, JobActions* out);
  void StartPhase(Micros now, const std::map<std::string, std::vector<std::string>>& targets, JobActions* out);
  void MaybeEndPhase(Micros now, JobActions* out);
  void EndPhase(Micros now, bool timed_out, JobActions* out);
  void AfterStageParts(Micros now, JobActions* out);
  void Finish(Micros now, bool timed_out, JobActions* out);
  // Orders, probes, verdicts.
  void SendOrders(Micros now, const std::vector<Order>& orders, JobActions* out);
  void SendOrder(Micros now, const Order& order, int attempt, JobActions* out);
  FetchOrder OrderFor(const std::string& relay, const std::string& source) const;
  void SendProbe(Micros now, const std::string& server, Pending::Probe why, const std::string& detail, JobActions* out);
  void ReplaceLeader(Micros now, const std::string& site, ReplaceReason why, const std::string& detail,
                     JobActions* out, int apply_exit = 0);
  void CheckStalls(Micros now, JobActions* out);
  void RunSchedulerTimer(Micros now, JobActions* out);
  void Verdict(const ServerResult& r, const std::string& site, JobActions* out);
  void Settle(Micros now, JobActions* out);  // after every event: stalls, phase end, wake_at
  Reply Settled(Micros now, JobActions* out, Reply r);  // Settle, then answer r
  const JobServer* FindServer(const std::string& name) const;
  std::string SiteOf(const std::string& server) const;

  JobPlan plan_;
  std::map<std::string, size_t> server_index_;  // server -> site index in plan_.sites
  std::map<std::string, std::string> elected_;  // site -> cm-leader's latest leader
  JobStage stage_ = JobStage::kIdle;
  Micros deadline_ = proto::kNever;
  size_t part_ = 0;                              // index in plan_.parts of the stage part running
  JobPart cur_part_;                             // the part running (a stage part or the commit)
  TransferKind cur_kind_ = TransferKind::kStage;
  std::vector<std::map<std::string, std::vector<std::string>>> queue_;  // phases left of this part
  std::map<std::string, std::vector<std::string>> targets_;  // the part's targets (site -> servers)
  std::unique_ptr<Phase> phase_;
  uint64_t phase_seq_ = 0;
  CallId next_call_ = 1;
  std::map<CallId, Pending> calls_;
  std::vector<std::pair<Micros, Pending>> retries_;  // orders to send again at a time
  std::map<std::string, ServerResult> final_;        // server -> last verdict
  std::map<std::string, uint64_t> final_serial_;     // server -> serial of its last success
};

}  // namespace cm::push
