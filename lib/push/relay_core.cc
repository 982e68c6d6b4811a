#include "push/relay_core.h"

#include <algorithm>

#include "util/json.h"
#include "util/json_value.h"

namespace cm::push {

const char* ChildKindName(ChildKind k) {
  switch (k) {
    case ChildKind::kApply: return "cm-apply";
    case ChildKind::kMcastSend: return "cm-mcast send";
    case ChildKind::kMcastRecv: return "cm-mcast recv";
  }
  return "?";
}

const char* FetchFaultName(FetchFault f) {
  switch (f) {
    case FetchFault::kNone: return "";
    case FetchFault::kSource: return "source";
    case FetchFault::kAuth: return "auth";
    case FetchFault::kLocal: return "local";
  }
  return "?";
}

const char* TransferPhaseName(TransferPhase p) {
  switch (p) {
    case TransferPhase::kNew: return "new";
    case TransferPhase::kFetching: return "fetching";
    case TransferPhase::kComplete: return "complete";
    case TransferPhase::kFailed: return "failed";
    case TransferPhase::kReported: return "reported";
    case TransferPhase::kReceiving: return "receiving";
    case TransferPhase::kStaged: return "staged";
    case TransferPhase::kCommitted: return "committed";
    case TransferPhase::kMemberFailed: return "failed";
  }
  return "?";
}

void RelayActions::Clear() {
  calls.clear();
  fetches.clear();
  stop_fetches.clear();
  children.clear();
  cancel_children.clear();
  ended.clear();
  outcomes.clear();
  notes.clear();
  wake_at = proto::kNever;
}

namespace {

// Why a call failed, one line.
std::string CallError(const CallResult& r) {
  if (!r.reached) return r.body;
  auto v = ParseJson(r.body);
  std::string why = v.ok() && v->is_object() ? v->Str("error") : r.body;
  return "HTTP " + std::to_string(r.status) + ": " + why;
}

}  // namespace

// The state types are the core's own: in a namespace of their own, as
// cm::push already has a Site (sites.h) and one binary may hold both.
namespace relay_state {

// ---- state -------------------------------------------------------------------

// What a call is for; its result goes back to the role that made it.
enum class Purpose : uint8_t {
  kProgress, kNext, kForward, kNotifyFailed, kSourceFailed, kExpect, kSiteReport, kMemberReport,
  kRelayFailed, kProbe, kReexpect,
};

struct PendingCall {
  Purpose purpose = Purpose::kProgress;
  uint64_t serial = 0;
  std::string peer;  // kExpect: the member; kForward: the next leader's name
  uint64_t tag = 0;  // kSourceFailed: the order epoch; kMemberReport: the member run
  uint64_t run = 0;       // the leader's run it was made for (LeaderRole::run)
  uint64_t site_gen = 0;  // the site phase it was made for (Site::gen)
  Call call;
  int tries_left = 0;  // further tries on a transport failure
  int tried = 0;
};

struct Held {
  bool table_known = false, complete = false;
  uint64_t verified = 0, size = 0;
};

enum class FetchState : uint8_t { kIdle, kRunning, kAskingSource, kPausing, kComplete, kFailed };
enum class ServeState : uint8_t { kWaitingForBytes, kAsking, kForwarding, kPausing, kDone };
enum class SiteState : uint8_t { kNotStarted, kExpecting, kRunning, kCollecting, kReporting, kReported, kCancelled };
enum class SlotState : uint8_t { kExpecting, kReceiver, kRetryWait, kRetrying, kLate, kUnreachable };
enum class MemberPhase : uint8_t { kIdle, kReceiving, kFetching, kFetchPause, kApplying, kReporting };

struct SiteSlot {
  Member member;
  SlotState state = SlotState::kExpecting;
  std::string error;
  Micros next_try = 0, pause = 0;
  // A receiver that has not reported: probed at probe_at (GET /v1/status).
  Micros probe_at = 0;
  bool probing = false;
  std::optional<Micros> down_since;  // probes or re-expects have failed since then
  int asked_again = 0;               // /v1/expect sent again (it had forgotten the serial)
};

struct Site {
  uint64_t gen = 0;  // which site phase of the transfer this is (calls of an earlier one are stale)
  SiteState state = SiteState::kNotStarted;
  FetchOrder order;  // as the site phase started
  bool streaming = false;
  std::vector<SiteSlot> slots;
  std::vector<std::string> receivers;  // answered (at once, then late), in that order
  Micros retry_deadline = 0, collect_deadline = 0;
  ChildId mcast = 0, apply = 0;  // running children (0 = none)
  std::optional<ServerResult> own;
};

struct LeaderRole {
  bool active = false;
  bool stopped = false;     // it told the CCM it cannot do its part (/v1/relay-failed), until ordered again
  std::string auth_source;  // the source a signature verdict was blamed on (once)
  FetchOrder order;  // the latest
  // The CCM run and part this role works for: bumped when another CCM run
  // takes over (a different ccm_id or URL in an order) and when the part
  // runs again; answers to calls of an earlier run are dropped and its
  // queued calls are never sent (they are stamped for that run's CCM).
  uint64_t run = 1;
  uint64_t site_gens = 0;
  uint64_t epoch = 0;
  std::string source, source_name;
  FetchState fetch = FetchState::kIdle;
  int failures = 0;
  Micros pause_until = 0;
  Micros last_progress = -proto::kNever / 2;
  uint64_t progress_verified = 0;
  bool progress_in_flight = false;
  bool progress_off = false;  // the run's CCM refused a progress report (4xx): no more for this run
  bool run_gone = false;      // another CCM run took the URL of this one's (RunGone), until ordered again
  ServeState serve = ServeState::kWaitingForBytes;
  Micros serve_at = 0;
  std::optional<Micros> next_unanswered_since;  // /v1/next has not reached the CCM since then
  Site site;
};

struct MemberRole {
  MemberPhase phase = MemberPhase::kIdle;
  bool running = false;
  std::optional<Expect> expect;  // the latest
  uint64_t gen = 0;              // bumped by every /v1/expect
  uint64_t run_gen = 0;          // the expect the run works for
  Expect run;
  bool unicast = false;          // the latest expect's hint: the multicast is over
  bool run_unicast = false;
  bool cancel = false;           // promoted to leader: end without a report
  ChildId child = 0;
  int fetch_tries = 0;
  Micros pause_until = 0;
  Via via = Via::kNone;
  std::string error;
  std::optional<ServerResult> done;  // applied: reported again to a new leader
};

enum class FetchOwner : uint8_t { kNone, kLeader, kMember };

struct Transfer {
  uint64_t serial = 0;
  Held held;
  uint64_t attempt = 0;  // the running fetch attempt (0 = none)
  FetchOwner owner = FetchOwner::kNone;
  TransferPhase phase = TransferPhase::kNew;
  LeaderRole leader;
  MemberRole member;
  std::map<std::string, ServerResult> results;  // member reports, by name
  bool busy = false;
};

}  // namespace relay_state
using namespace relay_state;

struct RelayCore::Impl {
  const RelayCoreOptions& o;
  explicit Impl(const RelayCoreOptions& opts) : o(opts) {}

  std::map<uint64_t, Transfer> transfers;
  std::map<CallId, PendingCall> calls;                 // in flight
  std::multimap<Micros, PendingCall> resends;          // waiting to be tried again
  std::map<ChildId, uint64_t> children;                // running -> serial
  CallId next_call = 1;
  ChildId next_child = 1;
  uint64_t next_attempt = 1;

  Transfer& Get(uint64_t serial) {
    Transfer& t = transfers[serial];
    t.serial = serial;
    return t;
  }

  void NoteT(RelayActions* out, const Transfer& t, LogNote::Level level, const std::string& text) {
    out->notes.push_back({level, o.name + ": serial " + std::to_string(t.serial) + ": " + text});
  }

  // ---- outgoing calls ---------------------------------------------------------

  void Send(PendingCall p, RelayActions* out) {
    p.call.id = next_call++;
    ++p.tried;
    out->calls.push_back(p.call);
    calls.emplace(p.call.id, std::move(p));
  }

  void Call_(Transfer& t, Purpose purpose, std::string base, Endpoint ep, std::string body, int tries, Micros timeout,
             RelayActions* out, std::string peer = {}, uint64_t tag = 0, const Sealed* sealed = nullptr,
             std::string query = {}) {
    PendingCall p;
    p.purpose = purpose;
    p.serial = t.serial;
    p.peer = std::move(peer);
    p.tag = tag;
    p.call.base_url = std::move(base);
    p.call.endpoint = ep;
    p.call.body = std::move(body);
    p.call.timeout = timeout;
    p.call.to = Recipient(t, ep, p.peer);
    p.call.query = std::move(query);
    if (sealed && !sealed->empty()) {
      p.call.body = sealed->body;
      p.call.auth = sealed->auth;
    }
    p.tries_left = tries - 1;
    p.run = t.leader.run;
    p.site_gen = t.leader.site.gen;
    Send(std::move(p), out);
  }

  // A call made for an earlier run of the leader role (another CCM run took
  // over, or the part ran again) or an earlier site phase: its answer
  // changes nothing and, queued, it is never sent again.
  bool Stale(const PendingCall& p) const {
    auto it = transfers.find(p.serial);
    if (it == transfers.end()) return true;
    const LeaderRole& l = it->second.leader;
    switch (p.purpose) {
      case Purpose::kMemberReport: return false;
      case Purpose::kExpect:
      case Purpose::kProbe:
      case Purpose::kReexpect: return p.site_gen != l.site.gen;
      default: return p.run != l.run;
    }
  }

  // Whom a call is for: `to` of its CM-Auth stamp (push/auth.h).
  static std::string Recipient(const Transfer& t, Endpoint ep, const std::string& peer) {
    switch (ep) {
      case Endpoint::kFetch:
      case Endpoint::kExpect: return peer;
      case Endpoint::kMemberReport: return t.member.run.leader;
      case Endpoint::kStatus: return {};
      default: return t.leader.order.ccm_id.empty() ? "ccm" : t.leader.order.ccm_id;
    }
  }

  // The pending call a result answers, or nullopt when it is to be tried
  // again (a transport failure with tries left) or unknown.
  std::optional<PendingCall> Take(Micros now, const CallResult& r) {
    auto it = calls.find(r.id);
    if (it == calls.end()) return std::nullopt;
    PendingCall p = std::move(it->second);
    calls.erase(it);
    if (!r.reached && p.tries_left > 0) {
      --p.tries_left;
      resends.emplace(now + o.call_retry_pause * p.tried, std::move(p));
      return std::nullopt;
    }
    return p;
  }

  void Resend(Micros now, RelayActions* out) {
    while (!resends.empty() && resends.begin()->first <= now) {
      PendingCall p = std::move(resends.begin()->second);
      resends.erase(resends.begin());
      if (!Stale(p)) Send(std::move(p), out);
    }
  }

  // ---- fetching (both roles) --------------------------------------------------

  void StartFetch_(Transfer& t, FetchOwner owner, const std::string& source, RelayActions* out) {
    t.attempt = next_attempt++;
    t.owner = owner;
    out->fetches.push_back({t.serial, t.attempt, source});
  }

  ChildId StartChild_(Transfer& t, StartChild c, RelayActions* out) {
    c.id = next_child++;
    c.serial = t.serial;
    children[c.id] = t.serial;
    out->children.push_back(std::move(c));
    return out->children.back().id;
  }

  void Cancel(ChildId id, RelayActions* out) {
    if (id) out->cancel_children.push_back(id);
  }

  // ---- leader: fetch ----------------------------------------------------------

  void StartLeader(Micros now, Transfer& t, const FetchOrder& order, RelayActions* out) {
    LeaderRole& l = t.leader;
    l.active = true;
    l.order = order;
    l.epoch = 1;
    l.source = order.source;
    l.source_name = order.source_name;
    l.serve = order.serve ? ServeState::kWaitingForBytes : ServeState::kDone;
    t.phase = TransferPhase::kFetching;
    if (t.member.running) StopMember(t, out);  // we lead the site now
    if (t.held.complete) {
      FetchCompleted(now, t, out);
    } else {
      l.fetch = FetchState::kRunning;
      StartFetch_(t, FetchOwner::kLeader, l.source, out);
    }
  }

  // An order from another CCM run than the one the role works for (its
  // ccm_id or URL differ: the CCM was restarted, or a rerun): everything
  // after it goes to the new run, stamped for it; the old run's calls are
  // dropped. A part that is over (reported, stopped, failed, or its report
  // on the way to the old run) runs again for the new run (Rerun). One
  // still running goes on: a running fetch keeps its bytes and continues
  // (from the new order's source when it names another, at once when it was
  // waiting for the old CCM's answer), serving starts over with the new
  // run's /v1/next, a site phase in progress takes the new order's members
  // it lacks and reports to the new run.
  void NewRun(Micros now, Transfer& t, const FetchOrder& order, RelayActions* out) {
    LeaderRole& l = t.leader;
    const std::string old_id = l.order.ccm_id.empty() ? "ccm" : l.order.ccm_id;
    l.order = order;
    ++l.epoch;
    ++l.run;
    l.run_gone = false;
    l.failures = 0;
    l.auth_source.clear();
    l.progress_in_flight = false;
    l.progress_off = false;
    l.progress_verified = 0;
    l.last_progress = -proto::kNever / 2;
    l.next_unanswered_since.reset();
    NoteT(out, t, LogNote::Level::kInfo,
          "ordered by another CCM run (" + (order.ccm_id.empty() ? std::string("ccm") : order.ccm_id) + " at " +
              order.ccm + ", was " + old_id + "): it takes over");
    const SiteState site = l.site.state;
    if (l.stopped || l.fetch == FetchState::kFailed || site == SiteState::kReporting ||
        site == SiteState::kReported || site == SiteState::kCancelled)
      return Rerun(now, t, out);
    const bool moved = order.source != l.source;
    l.source = order.source;
    l.source_name = order.source_name;
    l.serve = order.serve ? ServeState::kWaitingForBytes : ServeState::kDone;
    switch (l.fetch) {
      case FetchState::kRunning:
        if (!moved) break;
        [[fallthrough]];
      case FetchState::kAskingSource:
      case FetchState::kPausing:
      case FetchState::kIdle:
        l.fetch = FetchState::kRunning;
        t.phase = TransferPhase::kFetching;
        StartFetch_(t, FetchOwner::kLeader, l.source, out);
        break;
      case FetchState::kComplete: {
        // The new run learns at once that the file is here.
        Progress p{t.serial, o.name, t.held.verified, t.held.size, true};
        Call_(t, Purpose::kProgress, l.order.ccm, Endpoint::kProgress, Encode(p), 5, o.progress_timeout, out);
        l.last_progress = now;
        break;
      }
      case FetchState::kFailed: break;  // handled above
    }
    if (site == SiteState::kExpecting || site == SiteState::kRunning || site == SiteState::kCollecting)
      AddMembers(now, t, out);
  }

  // A site phase in progress and an order that names members it lacks (the
  // new run's): they are expected too, as late members, and the report
  // waits for them.
  void AddMembers(Micros now, Transfer& t, RelayActions* out) {
    Site& s = t.leader.site;
    for (const auto& m : t.leader.order.members) {
      if (Slot(s, m.name)) continue;
      s.order.members.push_back(m);
      s.slots.push_back(SiteSlot{m});
      SiteSlot& slot = s.slots.back();
      if (s.state != SiteState::kExpecting) {
        slot.state = SlotState::kRetrying;
        slot.pause = o.member_retry_first;
      }
      NoteT(out, t, LogNote::Level::kInfo, "member " + m.name + " joins the site phase");
      SendExpect(t, m, out);
    }
    if (s.state == SiteState::kCollecting && Retrying(s)) {
      s.state = SiteState::kRunning;  // collects again once they answered
      s.retry_deadline = now + o.member_retry;
    } else if (s.state == SiteState::kRunning && Retrying(s)) {
      s.retry_deadline = std::max(s.retry_deadline, now + o.member_retry);
    }
  }

  void MoveLeader(Micros now, Transfer& t, const FetchOrder& order, RelayActions* out) {
    LeaderRole& l = t.leader;
    const bool moved = order.source != l.source;
    l.order = order;
    if (l.stopped || l.fetch == FetchState::kFailed || l.site.state == SiteState::kReported ||
        l.site.state == SiteState::kCancelled)
      return Rerun(now, t, out);
    if (!moved) return;  // a repeat (an earlier try reached us): nothing changes
    ++l.epoch;           // an answer to /v1/source-failed in flight is for the old source
    l.source = order.source;
    l.source_name = order.source_name;
    if (l.fetch == FetchState::kRunning || l.fetch == FetchState::kAskingSource || l.fetch == FetchState::kPausing) {
      NoteT(out, t, LogNote::Level::kInfo, "new source " + l.source + "; resuming at " + std::to_string(t.held.verified));
      l.fetch = FetchState::kRunning;
      StartFetch_(t, FetchOwner::kLeader, l.source, out);
    }
  }

  // An order for a transfer whose part here is over (reported, stopped, or
  // our fetch gave up): the CCM runs the job again (a rerun after it died,
  // every server already runs the job, or a retry). The part runs again:
  // the fetch if the file is not held, the site phase with every member
  // (those that applied report at once), our own cm-apply (idempotent: an
  // assignment already applied is a success, and one that failed may pass
  // now), and a fresh site report. Members' successes stand.
  void Rerun(Micros now, Transfer& t, RelayActions* out) {
    LeaderRole& l = t.leader;
    // Children of the earlier site phase still running carry over: its
    // cm-apply's result counts for this one (the same file), and the new
    // multicast waits until the old one ended (StepSite).
    const ChildId apply = l.site.apply, mcast = l.site.mcast;
    l.site = Site{};
    l.site.gen = ++l.site_gens;
    l.site.apply = apply;
    l.site.mcast = mcast;
    ++l.run;
    l.run_gone = false;
    l.progress_in_flight = false;
    l.progress_off = false;
    l.next_unanswered_since.reset();
    l.stopped = false;
    l.auth_source.clear();
    for (auto it = t.results.begin(); it != t.results.end();)
      it = it->second.state == ServerState::kFailed ? t.results.erase(it) : std::next(it);
    l.source = l.order.source;
    l.source_name = l.order.source_name;
    l.serve = l.order.serve ? ServeState::kWaitingForBytes : ServeState::kDone;
    l.failures = 0;
    NoteT(out, t, LogNote::Level::kInfo, "ordered again: the site phase runs again");
    if (t.held.complete) {
      FetchCompleted(now, t, out);
    } else {
      l.fetch = FetchState::kRunning;
      t.phase = TransferPhase::kFetching;
      StartFetch_(t, FetchOwner::kLeader, l.source, out);
    }
  }

  void FetchCompleted(Micros now, Transfer& t, RelayActions* out) {
    LeaderRole& l = t.leader;
    l.fetch = FetchState::kComplete;
    t.phase = TransferPhase::kComplete;
    if (t.owner == FetchOwner::kLeader) t.attempt = 0;
    if (l.progress_off) return;
    Progress p{t.serial, o.name, t.held.verified, t.held.size, true};
    Call_(t, Purpose::kProgress, l.order.ccm, Endpoint::kProgress, Encode(p), 5, o.progress_timeout, out);
    l.last_progress = now;
  }

  void MaybeProgress(Micros now, Transfer& t, RelayActions* out) {
    LeaderRole& l = t.leader;
    if (l.fetch != FetchState::kRunning || l.progress_in_flight || l.progress_off) return;
    if (t.held.verified == l.progress_verified || now - l.last_progress < o.progress_interval) return;
    l.last_progress = now;
    l.progress_verified = t.held.verified;
    l.progress_in_flight = true;
    Progress p{t.serial, o.name, t.held.verified, t.held.size, false};
    Call_(t, Purpose::kProgress, l.order.ccm, Endpoint::kProgress, Encode(p), 1, o.progress_timeout, out);
  }

  void SourceAttemptFailed(Transfer& t, const std::string& error, FetchFault fault, RelayActions* out) {
    LeaderRole& l = t.leader;
    t.attempt = 0;
    if (fault == FetchFault::kLocal) return LeaderStop(t, error, 0, true, out);
    if (fault == FetchFault::kAuth) {
      // The assignment as the CCM made it, or as two sources passed it on:
      // our key or our settings refuse it, and no other source will help.
      if (l.source_name.empty()) return LeaderStop(t, error + " (from the CCM)", 0, true, out);
      if (!l.auth_source.empty() && l.auth_source != l.source)
        return LeaderStop(t, error + " (from " + l.auth_source + " and " + l.source + ")", 0, true, out);
      l.auth_source = l.source;
    }
    NoteT(out, t, LogNote::Level::kWarn, "source " + l.source + ": " + error);
    if (++l.failures > o.max_source_failures) {
      LeaderStop(t, "gave up after " + std::to_string(o.max_source_failures) + " failed sources: " + error, 0, false,
                 out);
      return;
    }
    l.fetch = FetchState::kAskingSource;
    SourceFailed s{t.serial, o.name, l.source_name, l.source, t.held.verified, error};
    Call_(t, Purpose::kSourceFailed, l.order.ccm, Endpoint::kSourceFailed, Encode(s), 3, o.call_timeout, out, {},
          l.epoch);
  }

  void OnSourceAnswer(Micros now, Transfer& t, const PendingCall& p, const CallResult& r, RelayActions* out) {
    LeaderRole& l = t.leader;
    if (l.fetch != FetchState::kAskingSource || p.tag != l.epoch) return;  // a new order moved us meanwhile
    if (Refused(r)) return Abandon(t, "the CCM refused /v1/source-failed (" + CallError(r) + ")", out);
    if (Gone(r)) return Abandon(t, "the CCM is gone (/v1/source-failed: " + CallError(r) + ")", out);
    auto a = r.ok() ? ParseSourceAnswer(r.body) : Result<SourceAnswer>(Error(Code::kFailure, CallError(r)));
    if (a.ok()) {
      l.source = a->source_url;
      l.source_name = a->source_name;
      l.fetch = FetchState::kRunning;
      StartFetch_(t, FetchOwner::kLeader, l.source, out);
    } else {
      l.fetch = FetchState::kPausing;
      l.pause_until = now + o.failed_call_pause;
    }
  }

  // We cannot do our part (local: for a reason of our own; else our sources
  // kept failing): the CCM hears why at once (/v1/relay-failed) and we stop
  // leading the serial: no fetch, multicast, /v1/next or site report, until
  // an order runs the part again (Rerun). The file held so far stays.
  // The run's CCM refused a call about this transfer (4xx: the job is over,
  // another run, not its transfer): the part ends here for that run, at
  // once and without telling it (it would refuse that too). An order runs
  // it again (Rerun).
  void Abandon(Transfer& t, const std::string& why, RelayActions* out) {
    LeaderStop(t, why, 0, false, out, /*tell=*/false);
  }

  static bool Refused(const CallResult& r) { return r.reached && r.status / 100 == 4; }
  // Nobody listens at the CCM's address any more (ECONNREFUSED): its run is
  // over (a CCM that is killed and run again is another run, and orders us
  // again).
  static bool Gone(const CallResult& r) {
    return !r.reached && r.body.find("onnection refused") != std::string::npos;  // ECONNREFUSED, either case
  }

  // An order of a CCM run for one serial says two things about the others:
  // the run's CCM serves one part at a time (it answers /v1/next for any
  // other serial with none_left), so serving the run's other serials ends;
  // and a CCM's URL is one process at a time, so an earlier run at the same
  // URL is gone: nothing sent to it can arrive (the new one refuses it).
  void OthersOfTheOrder(Micros now, const FetchOrder& order, RelayActions* out) {
    for (auto& [serial, other] : transfers) {
      LeaderRole& l = other.leader;
      if (serial == order.serial || !l.active || l.run_gone || l.order.ccm != order.ccm) continue;
      if (l.order.ccm_id == order.ccm_id) {
        if (l.serve == ServeState::kDone) continue;
        l.serve = ServeState::kDone;
        NoteT(out, other, LogNote::Level::kDebug,
              "its CCM moved on to serial " + std::to_string(order.serial) + ": serving ends");
      } else {
        RunGone(other, out);
      }
      Step(now, other, out);  // `ended` when nothing else runs
    }
  }

  // The CCM run this role works for is gone (another runs at its URL): its
  // calls are dropped, serving and progress end, a report on its way counts
  // as sent, and a part not done yet is given up (the bytes stay; an order
  // of the new run runs it again).
  void RunGone(Transfer& t, RelayActions* out) {
    LeaderRole& l = t.leader;
    l.run_gone = true;
    ++l.run;
    l.serve = ServeState::kDone;
    l.progress_off = true;
    l.progress_in_flight = false;
    if (l.stopped) return;
    const std::string why = "its CCM run (" + (l.order.ccm_id.empty() ? std::string("ccm") : l.order.ccm_id) +
                            ") is gone: another runs at " + l.order.ccm;
    if (l.site.state == SiteState::kReporting || l.site.state == SiteState::kReported) {
      if (l.site.state == SiteState::kReporting) NoteT(out, t, LogNote::Level::kInfo, why + ": its site report is dropped");
      l.site.state = SiteState::kReported;
      t.phase = TransferPhase::kReported;
      return;
    }
    Abandon(t, why, out);
  }

  void LeaderStop(Transfer& t, const std::string& why, int apply_exit, bool local, RelayActions* out,
                  bool tell = true) {
    LeaderRole& l = t.leader;
    if (l.stopped) return;
    l.stopped = true;
    if (l.fetch != FetchState::kComplete) l.fetch = FetchState::kFailed;
    if (t.attempt != 0 && t.owner == FetchOwner::kLeader) {
      out->stop_fetches.push_back(t.serial);
      t.attempt = 0;
    }
    l.serve = ServeState::kDone;
    t.phase = TransferPhase::kFailed;
    if (tell)
      NoteT(out, t, LogNote::Level::kError, std::string(local ? "cannot do its part: " : "") + why + " (told the CCM)");
    else
      NoteT(out, t, LogNote::Level::kInfo, why + ": its part for this run ends");
    Site& s = l.site;
    if (s.state != SiteState::kNotStarted && s.state != SiteState::kReporting && s.state != SiteState::kReported) {
      Cancel(s.mcast, out);
      s.state = SiteState::kCancelled;
    }
    out->outcomes.push_back({t.serial, true, tell ? "failed" : "abandoned"});
    if (!tell) return;
    RelayFailed f{t.serial, o.name, why, apply_exit, local};
    Call_(t, Purpose::kRelayFailed, l.order.ccm, Endpoint::kRelayFailed, Encode(f), o.report_tries, o.call_timeout,
          out);
  }

  // ---- leader: serving --------------------------------------------------------

  void StepServe(Micros now, Transfer& t, RelayActions* out) {
    LeaderRole& l = t.leader;
    if (l.serve == ServeState::kPausing && now >= l.serve_at) l.serve = ServeState::kWaitingForBytes;
    // Something to serve: checked bytes, or the whole file (a commit or
    // rollback assignment has no chunks: nothing is "verified" ever).
    if (l.serve != ServeState::kWaitingForBytes || !t.held.table_known || (t.held.verified == 0 && !t.held.complete))
      return;
    l.serve = ServeState::kAsking;
    NextAsk a{t.serial, o.name, t.held.verified, t.held.complete};
    Call_(t, Purpose::kNext, l.order.ccm, Endpoint::kNext, Encode(a), 2, o.call_timeout, out);
  }

  void ServePause(Micros now, Transfer& t, Micros pause) {
    t.leader.serve = ServeState::kPausing;
    t.leader.serve_at = now + pause;
  }

  void OnNextAnswer(Micros now, Transfer& t, const CallResult& r, RelayActions* out) {
    LeaderRole& l = t.leader;
    if (Refused(r) || Gone(r)) {  // the job is over, another run, not its transfer: asking again changes nothing
      l.serve = ServeState::kDone;
      NoteT(out, t, LogNote::Level::kInfo,
            std::string(Gone(r) ? "the CCM is gone" : "the CCM refused") + " /v1/next (" + CallError(r) +
                "): serving ends");
      return;
    }
    if (!r.reached) {
      if (!l.next_unanswered_since) l.next_unanswered_since = now;
      if (now - *l.next_unanswered_since >= o.serve_give_up) {
        l.serve = ServeState::kDone;
        NoteT(out, t, LogNote::Level::kWarn,
              "the CCM has not answered /v1/next for " +
                  std::to_string((now - *l.next_unanswered_since) / proto::kSeconds) + " s (" + CallError(r) +
                  "): serving ends");
        return;
      }
      return ServePause(now, t, o.failed_call_pause);
    }
    l.next_unanswered_since.reset();
    if (!r.ok()) return ServePause(now, t, o.failed_call_pause);
    auto a = ParseNextAnswer(r.body);
    if (!a.ok()) {
      NoteT(out, t, LogNote::Level::kWarn, "bad answer to /v1/next: " + a.status().message());
      return ServePause(now, t, o.failed_call_pause);
    }
    switch (a->kind) {
      case NextAnswer::Kind::kNoneLeft:
        l.serve = ServeState::kDone;
        return;
      case NextAnswer::Kind::kRetry:
        return ServePause(now, t, std::clamp(a->retry_ms * proto::kMillis, o.serve_retry_min, o.serve_retry_max));
      case NextAnswer::Kind::kNext: {
        // The CCM's sealed order goes on unchanged; an unsealed one (tests)
        // names us as the source.
        FetchOrder next = a->order;
        next.source = o.url;
        next.source_name = o.name;
        l.serve = ServeState::kForwarding;
        Call_(t, Purpose::kForward, a->url, Endpoint::kFetch, Encode(next), 2, o.call_timeout, out, a->relay, 0,
              &a->sealed);
        return;
      }
    }
  }

  void OnForwarded(Transfer& t, const PendingCall& p, const CallResult& r, RelayActions* out) {
    if (r.ok() || IsDuplicateAnswer(r.status, r.body)) {
      t.leader.serve = ServeState::kWaitingForBytes;
      return;
    }
    NotifyFailed n{t.serial, o.name, p.peer, CallError(r)};
    Call_(t, Purpose::kNotifyFailed, t.leader.order.ccm, Endpoint::kNotifyFailed, Encode(n), 2, o.call_timeout, out);
  }

  // ---- leader: the site phase ---------------------------------------------------

  void SendExpect(Transfer& t, const Member& m, RelayActions* out, Purpose purpose = Purpose::kExpect,
                  bool unicast = false) {
    const Site& s = t.leader.site;
    Expect e;
    e.serial = t.serial;
    e.job = s.order.job;
    e.kind = s.order.kind;
    e.size = t.held.size;
    e.name = m.name;
    e.leader = o.name;
    e.leader_url = o.url;
    e.group = s.order.group;
    Call_(t, purpose, m.url, Endpoint::kExpect, Encode(e), 1, o.expect_timeout, out, m.name, 0, &m.expect,
          unicast ? "?unicast=1" : "");
  }

  void StartSite(Transfer& t, RelayActions* out) {
    LeaderRole& l = t.leader;
    Site& s = l.site;
    s.order = l.order;
    s.streaming = s.order.stream && !t.held.complete;
    s.state = SiteState::kExpecting;
    for (const auto& m : s.order.members) {
      s.slots.push_back(SiteSlot{m});
      SendExpect(t, m, out);
    }
  }

  SiteSlot* Slot(Site& s, const std::string& name) {
    for (auto& slot : s.slots)
      if (slot.member.name == name) return &slot;
    return nullptr;
  }

  void OnExpectAnswer(Micros now, Transfer& t, const PendingCall& p, const CallResult& r, RelayActions* out) {
    Site& s = t.leader.site;
    SiteSlot* slot = Slot(s, p.peer);
    if (!slot || s.state == SiteState::kCancelled) return;
    const bool first = slot->state == SlotState::kExpecting;
    if (r.ok() || IsDuplicateAnswer(r.status, r.body)) {  // a duplicate: an earlier try reached it
      slot->state = first ? SlotState::kReceiver : SlotState::kLate;
      slot->probe_at = now + o.member_probe_interval;
      s.receivers.push_back(slot->member.name);
      if (!first) NoteT(out, t, LogNote::Level::kInfo, "member " + slot->member.name + " reached late");
      return;
    }
    if (r.reached && r.status / 100 == 4) {  // it refused the order: trying again changes nothing
      slot->state = SlotState::kUnreachable;
      slot->error = "refused /v1/expect: " + CallError(r);
      NoteT(out, t, LogNote::Level::kWarn, "member " + slot->member.name + " " + slot->error);
      return;
    }
    slot->error = "unreachable: " + CallError(r);
    if (first) {
      slot->state = SlotState::kRetryWait;
      slot->pause = o.member_retry_first;
      return;  // the retry window starts with the multicast (SiteExpected)
    }
    if (now >= s.retry_deadline) {
      slot->state = SlotState::kUnreachable;
      return;
    }
    slot->state = SlotState::kRetryWait;
    slot->next_try = std::min(now + slot->pause, s.retry_deadline);
    slot->pause = std::min(slot->pause * 2, o.member_retry_max);
  }

  // Every first /v1/expect answered: multicast to those who did, retry the others.
  void SiteExpected(Micros now, Transfer& t, RelayActions* out) {
    Site& s = t.leader.site;
    s.state = SiteState::kRunning;
    s.retry_deadline = now + o.member_retry;
    for (auto& slot : s.slots) {
      if (slot.state != SlotState::kRetryWait) continue;
      slot.next_try = std::min(now + slot.pause, s.retry_deadline);
      slot.pause = std::min(slot.pause * 2, o.member_retry_max);
    }
    if (s.receivers.empty() || s.order.group.empty()) return;
    StartChild c;
    c.kind = ChildKind::kMcastSend;
    c.group = s.order.group;
    c.receivers = s.receivers;
    c.growing = s.streaming;
    c.final_size = t.held.size;
    c.timeout = o.member_wait;
    s.mcast = StartChild_(t, std::move(c), out);
  }

  void StepRetries(Micros now, Transfer& t, RelayActions* out) {
    Site& s = t.leader.site;
    for (auto& slot : s.slots) {
      if (slot.state != SlotState::kRetryWait || now < slot.next_try) continue;
      slot.state = SlotState::kRetrying;
      SendExpect(t, slot.member, out);
    }
  }

  // ---- leader: members that have not reported ------------------------------------

  bool AwaitingReport(const Transfer& t, const SiteSlot& slot) const {
    return (slot.state == SlotState::kReceiver || slot.state == SlotState::kLate) &&
           !t.results.count(slot.member.name);
  }

  void StepProbes(Micros now, Transfer& t, RelayActions* out) {
    for (auto& slot : t.leader.site.slots) {
      if (!AwaitingReport(t, slot) || slot.probing || now < slot.probe_at) continue;
      slot.probing = true;
      slot.probe_at = now + o.member_probe_interval;
      Call_(t, Purpose::kProbe, slot.member.url, Endpoint::kStatus, "", 1, o.probe_timeout, out, slot.member.name);
    }
  }

  void OnProbeAnswer(Micros now, Transfer& t, const PendingCall& p, const CallResult& r, RelayActions* out) {
    Site& s = t.leader.site;
    SiteSlot* slot = Slot(s, p.peer);
    if (!slot) return;
    slot->probing = false;
    if (t.leader.stopped || (s.state != SiteState::kRunning && s.state != SiteState::kCollecting) ||
        !AwaitingReport(t, *slot))
      return;
    if (!r.ok()) return MemberDown(now, t, *slot, CallError(r));
    slot->down_since.reset();
    auto status = ParseRelayStatus(r.body);
    if (!status.ok()) return;  // an answer we cannot read: it is alive, wait for its report
    for (const auto& x : status->transfers)
      if (x.serial == t.serial && x.state != TransferPhaseName(TransferPhase::kNew)) return;  // it works on it
    // It does not know the serial (it restarted): ask it again; once the
    // multicast is over it fetches from us over HTTP at once.
    const bool unicast = !s.mcast || s.order.group.empty();
    ++slot->asked_again;
    NoteT(out, t, LogNote::Level::kInfo,
          "member " + slot->member.name + " no longer knows the serial (restarted?): expecting it again" +
              (unicast ? " over HTTP" : ""));
    SendExpect(t, slot->member, out, Purpose::kReexpect, unicast);
  }

  void OnReexpectAnswer(Micros now, Transfer& t, const PendingCall& p, const CallResult& r) {
    SiteSlot* slot = Slot(t.leader.site, p.peer);
    if (!slot || !AwaitingReport(t, *slot) || r.ok() || IsDuplicateAnswer(r.status, r.body)) return;
    MemberDown(now, t, *slot, CallError(r));
  }

  // A receiver that does not answer: reported failed once it has not
  // answered for member_retry (its report, if it comes back in time, wins).
  void MemberDown(Micros now, Transfer& t, SiteSlot& slot, const std::string& why) {
    if (!slot.down_since) slot.down_since = now;
    if (now - *slot.down_since < o.member_retry) return;
    const std::string error = "unreachable for " + std::to_string((now - *slot.down_since) / proto::kSeconds) +
                              " s: " + why;
    t.results[slot.member.name] = ServerResult{slot.member.name, ServerState::kFailed, error, Via::kNone};
  }

  bool Retrying(const Site& s) const {
    for (const auto& slot : s.slots)
      if (slot.state == SlotState::kRetryWait || slot.state == SlotState::kRetrying || slot.state == SlotState::kExpecting)
        return true;
    return false;
  }

  bool AllReported(const Transfer& t) const {
    for (const auto& r : t.leader.site.receivers)
      if (!t.results.count(r)) return false;
    return true;
  }

  void StepOwnApply(Transfer& t, RelayActions* out) {
    Site& s = t.leader.site;
    if (s.own || s.apply) return;
    if (t.leader.fetch == FetchState::kFailed) {
      s.own = ServerResult{o.name, ServerState::kFailed, "the leader's own fetch failed", Via::kLeader};
      return;
    }
    if (!t.held.complete) return;
    StartChild c;
    c.kind = ChildKind::kApply;
    c.transfer = s.order.kind;
    c.timeout = o.apply_timeout;
    s.apply = StartChild_(t, std::move(c), out);
  }

  void StepSite(Micros now, Transfer& t, RelayActions* out) {
    LeaderRole& l = t.leader;
    Site& s = l.site;
    if (l.stopped) return;
    if (s.state == SiteState::kNotStarted) {
      if (l.fetch == FetchState::kFailed || s.mcast) return;  // s.mcast: an earlier phase's, ending
      if (!(l.order.stream ? t.held.table_known : t.held.complete)) return;
      StartSite(t, out);
    }
    if (s.state == SiteState::kExpecting) {
      for (const auto& slot : s.slots)
        if (slot.state == SlotState::kExpecting) return;
      SiteExpected(now, t, out);
    }
    if (s.state == SiteState::kRunning || s.state == SiteState::kCollecting) {
      StepOwnApply(t, out);
      StepProbes(now, t, out);
    }
    if (s.state == SiteState::kRunning) {
      StepRetries(now, t, out);
      if (s.mcast || Retrying(s)) return;
      s.state = SiteState::kCollecting;
      s.collect_deadline = now + o.member_wait;
    }
    if (s.state == SiteState::kCollecting) {
      if (!AllReported(t) && now < s.collect_deadline) return;
      if (!s.own) return;  // our own cm-apply still runs
      SendSiteReport(t, out);
    }
  }

  void SendSiteReport(Transfer& t, RelayActions* out) {
    Site& s = t.leader.site;
    SiteReport rep;
    rep.serial = t.serial;
    rep.site = s.order.site;
    rep.leader = o.name;
    for (const auto& name : s.receivers) {
      auto it = t.results.find(name);
      rep.servers.push_back(it != t.results.end() ? it->second
                                                  : ServerResult{name, ServerState::kFailed, "no report from the member", Via::kNone});
    }
    rep.servers.push_back(*s.own);
    std::vector<const SiteSlot*> unreachable;
    for (const auto& slot : s.slots)
      if (slot.state == SlotState::kUnreachable) unreachable.push_back(&slot);
    std::sort(unreachable.begin(), unreachable.end(),
              [](const SiteSlot* a, const SiteSlot* b) { return a->member.name < b->member.name; });
    for (const SiteSlot* slot : unreachable)
      rep.servers.push_back(ServerResult{slot->member.name, ServerState::kFailed, slot->error, Via::kNone});
    s.state = SiteState::kReporting;
    out->outcomes.push_back({t.serial, true, "reported"});
    Call_(t, Purpose::kSiteReport, t.leader.order.ccm, Endpoint::kSiteReport, Encode(rep), o.report_tries,
          o.call_timeout, out);
  }

  ServerResult ApplyResult(const ChildDone& d, TransferKind kind, Via via) {
    ServerResult r;
    r.name = o.name;
    r.via = via;
    r.release = d.release;  // what the server runs now, whatever the outcome
    r.manifest = d.manifest;
    if (d.exit_code == 0 && !d.cancelled) {
      r.state = SuccessState(kind);
      return r;
    }
    r.state = ServerState::kFailed;
    if (d.exit_code < 0)
      r.error = "cm-apply: " + d.error_line;
    else
      r.error = d.error_line.empty() ? "cm-apply exit " + std::to_string(d.exit_code) : d.error_line;
    r.apply_exit = std::max(d.exit_code, 0);
    return r;
  }

  // ---- member -----------------------------------------------------------------

  void StartMemberRun(Transfer& t, RelayActions* out) {
    MemberRole& m = t.member;
    m.running = true;
    m.run = *m.expect;
    m.run_gen = m.gen;
    m.run_unicast = m.unicast;
    m.cancel = false;
    m.via = Via::kMulticast;
    m.error.clear();
    if (t.phase == TransferPhase::kNew) t.phase = TransferPhase::kReceiving;
    if (m.done) return SendMemberReport(t, *m.done, out);
    if (!t.held.complete && !m.run.group.empty() && !m.run_unicast) {
      StartChild c;
      c.kind = ChildKind::kMcastRecv;
      c.group = m.run.group;
      c.idle_timeout_s = o.mcast_recv_idle_s;
      c.timeout = o.member_wait;
      m.phase = MemberPhase::kReceiving;
      m.child = StartChild_(t, std::move(c), out);
      return;
    }
    MemberFetch(t, out);
  }

  // After the multicast (or without one): HTTP from the leader, then apply.
  void MemberFetch(Transfer& t, RelayActions* out) {
    MemberRole& m = t.member;
    if (t.held.complete) return MemberApply(t, out);
    m.via = Via::kUnicast;
    m.fetch_tries = 0;
    m.phase = MemberPhase::kFetching;
    StartFetch_(t, FetchOwner::kMember, m.run.leader_url, out);
  }

  void MemberApply(Transfer& t, RelayActions* out) {
    MemberRole& m = t.member;
    StartChild c;
    c.kind = ChildKind::kApply;
    c.transfer = m.run.kind;
    c.timeout = o.apply_timeout;
    m.phase = MemberPhase::kApplying;
    m.child = StartChild_(t, std::move(c), out);
  }

  void MemberFetchEnded(Micros now, Transfer& t, const FetchUpdate& u, RelayActions* out) {
    MemberRole& m = t.member;
    t.attempt = 0;
    if (t.held.complete) return MemberApply(t, out);
    m.error = u.error;
    if (u.fault == FetchFault::kLocal || u.fault == FetchFault::kAuth)  // ours: another try changes nothing
      return MemberFinished(t, ServerResult{o.name, ServerState::kFailed, "could not receive: " + u.error, m.via}, out);
    if (++m.fetch_tries >= o.member_fetch_attempts)
      return MemberFinished(t, ServerResult{o.name, ServerState::kFailed, "could not receive: " + u.error, m.via}, out);
    m.phase = MemberPhase::kFetchPause;
    m.pause_until = now + o.member_fetch_pause * m.fetch_tries;
  }

  // A run's outcome: report it to the run's leader, unless we were promoted
  // or another leader asked meanwhile (then start over for it).
  void MemberFinished(Transfer& t, const ServerResult& r, RelayActions* out) {
    MemberRole& m = t.member;
    m.phase = MemberPhase::kIdle;
    m.child = 0;
    if (r.state != ServerState::kFailed) m.done = r;
    if (r.error != "superseded") out->outcomes.push_back({t.serial, false, ServerStateName(r.state)});
    if (m.gen != m.run_gen && !m.cancel) return StartMemberRun(t, out);
    if (m.cancel) {
      m.running = false;
      return;
    }
    SendMemberReport(t, r, out);
  }

  void SendMemberReport(Transfer& t, const ServerResult& r, RelayActions* out) {
    MemberRole& m = t.member;
    t.phase = r.state == ServerState::kStaged      ? TransferPhase::kStaged
              : r.state == ServerState::kCommitted ? TransferPhase::kCommitted
                                                   : TransferPhase::kMemberFailed;
    m.phase = MemberPhase::kReporting;
    Call_(t, Purpose::kMemberReport, m.run.leader_url, Endpoint::kMemberReport, Encode(MemberReport{t.serial, r}),
          o.report_tries, o.call_timeout, out, {}, m.run_gen);
  }

  void OnMemberReported(Transfer& t, const CallResult& r, RelayActions* out) {
    MemberRole& m = t.member;
    if (!r.ok()) NoteT(out, t, LogNote::Level::kWarn, "report to leader " + m.run.leader + ": " + CallError(r));
    m.phase = MemberPhase::kIdle;
    if (m.gen != m.run_gen && !m.cancel) return StartMemberRun(t, out);
    m.running = false;
  }

  // Promotion to leader of the same serial: the member role ends unreported.
  void StopMember(Transfer& t, RelayActions* out) {
    MemberRole& m = t.member;
    m.cancel = true;
    Supersede(t, out);
  }

  // Ends the receive in progress (the run then finishes as "superseded").
  void Supersede(Transfer& t, RelayActions* out) {
    MemberRole& m = t.member;
    switch (m.phase) {
      case MemberPhase::kReceiving:
        Cancel(m.child, out);  // finishes in OnChildDone
        return;
      case MemberPhase::kFetching:
        if (t.owner == FetchOwner::kMember) {
          if (!m.cancel) out->stop_fetches.push_back(t.serial);  // promoted: the leader's fetch replaces it
          t.attempt = 0;
        }
        [[fallthrough]];
      case MemberPhase::kFetchPause:
        MemberFinished(t, ServerResult{o.name, ServerState::kFailed, "superseded", m.via}, out);
        return;
      default:
        return;  // applying or reporting: finishes first
    }
  }

  void StepMember(Micros now, Transfer& t, RelayActions* out) {
    MemberRole& m = t.member;
    if (m.phase != MemberPhase::kFetchPause || now < m.pause_until) return;
    if (t.held.complete) return MemberApply(t, out);
    m.phase = MemberPhase::kFetching;
    StartFetch_(t, FetchOwner::kMember, m.run.leader_url, out);
  }

  // ---- common -------------------------------------------------------------------

  void Step(Micros now, Transfer& t, RelayActions* out) {
    LeaderRole& l = t.leader;
    if (l.active && !l.stopped) {
      if (l.fetch == FetchState::kRunning && t.held.complete) FetchCompleted(now, t, out);
      if (l.fetch == FetchState::kPausing && now >= l.pause_until) {
        l.fetch = FetchState::kRunning;
        StartFetch_(t, FetchOwner::kLeader, l.source, out);
      }
      StepServe(now, t, out);
      StepSite(now, t, out);
      if (l.site.state == SiteState::kReported) t.phase = TransferPhase::kReported;
    }
    StepMember(now, t, out);
    const bool busy = Busy(t);
    if (t.busy && !busy) out->ended.push_back(t.serial);
    t.busy = busy;
  }

  bool Busy(const Transfer& t) const {
    const LeaderRole& l = t.leader;
    bool leader = l.active && !l.stopped &&
                  (l.serve != ServeState::kDone ||
                   !(l.site.state == SiteState::kReported || l.site.state == SiteState::kCancelled ||
                     (l.fetch == FetchState::kFailed && l.site.state == SiteState::kNotStarted)));
    return leader || l.site.mcast || l.site.apply || t.member.running || t.attempt != 0;
  }

  // The earliest time a Step has something to do (deadlines already passed
  // wait for events instead).
  Micros NextWake(Micros now) const {
    Micros w = resends.empty() ? proto::kNever : resends.begin()->first;
    for (const auto& [serial, t] : transfers) {
      const LeaderRole& l = t.leader;
      if (l.active && !l.stopped) {
        if (l.fetch == FetchState::kPausing) w = std::min(w, l.pause_until);
        if (l.serve == ServeState::kPausing) w = std::min(w, l.serve_at);
        if (l.site.state == SiteState::kCollecting && l.site.collect_deadline > now)
          w = std::min(w, l.site.collect_deadline);
        const bool site_on = l.site.state == SiteState::kRunning || l.site.state == SiteState::kCollecting;
        for (const auto& slot : l.site.slots) {
          if (l.site.state == SiteState::kRunning && slot.state == SlotState::kRetryWait) w = std::min(w, slot.next_try);
          if (site_on && AwaitingReport(t, slot) && !slot.probing) w = std::min(w, std::max(slot.probe_at, now));
        }
      }
      if (t.member.phase == MemberPhase::kFetchPause) w = std::min(w, t.member.pause_until);
    }
    return w;
  }

  void Finish(Micros now, Transfer& t, RelayActions* out) {
    Step(now, t, out);
    out->wake_at = NextWake(now);
  }
};

// ---- events ---------------------------------------------------------------------

RelayCore::RelayCore(RelayCoreOptions opts) : opts_(std::move(opts)), impl_(std::make_unique<Impl>(opts_)) {}
RelayCore::~RelayCore() = default;

Reply RelayCore::OnFetchOrder(Micros now, const FetchOrder& order, RelayActions* out) {
  out->Clear();
  impl_->OthersOfTheOrder(now, order, out);
  Transfer& t = impl_->Get(order.serial);
  if (!t.leader.active)
    impl_->StartLeader(now, t, order, out);
  else if (order.ccm_id != t.leader.order.ccm_id || order.ccm != t.leader.order.ccm)
    impl_->NewRun(now, t, order, out);
  else
    impl_->MoveLeader(now, t, order, out);  // the same run: a repeat, a new source, or the part again
  impl_->Finish(now, t, out);
  return Reply{200, JsonObject().Bool("ok", true).Uint("verified", t.held.verified).Bool("complete", t.held.complete).Build()};
}

Reply RelayCore::OnExpect(Micros now, const Expect& e, RelayActions* out, bool unicast) {
  out->Clear();
  Transfer& t = impl_->Get(e.serial);
  MemberRole& m = t.member;
  const bool other_leader = m.expect && m.expect->leader != e.leader;
  m.expect = e;
  m.unicast = unicast;
  ++m.gen;
  if (!m.running)
    impl_->StartMemberRun(t, out);
  else if (other_leader)
    impl_->Supersede(t, out);
  impl_->Finish(now, t, out);
  return Reply{200, EncodeAck()};
}

Reply RelayCore::OnMemberReport(Micros now, const MemberReport& r, RelayActions* out) {
  out->Clear();
  auto it = impl_->transfers.find(r.serial);
  if (it == impl_->transfers.end()) {
    out->wake_at = impl_->NextWake(now);
    return Reply{404, EncodeError("no transfer " + std::to_string(r.serial))};
  }
  it->second.results[r.result.name] = r.result;
  impl_->Finish(now, it->second, out);
  return Reply{200, EncodeAck()};
}

void RelayCore::OnFetchUpdate(Micros now, const FetchUpdate& u, RelayActions* out) {
  out->Clear();
  Transfer& t = impl_->Get(u.serial);
  Held& h = t.held;  // what the edge holds only grows
  h.table_known = h.table_known || u.table_known;
  h.complete = h.complete || u.complete;
  h.verified = std::max(h.verified, u.verified);
  h.size = std::max(h.size, u.size);
  const bool current = u.attempt != 0 && u.attempt == t.attempt;
  LeaderRole& l = t.leader;
  if (current && t.owner == FetchOwner::kLeader && l.fetch == FetchState::kRunning) {
    if (u.complete)
      impl_->FetchCompleted(now, t, out);
    else if (u.ended)
      impl_->SourceAttemptFailed(t, u.error.empty() ? "ended before the file was complete" : u.error, u.fault, out);
    else
      impl_->MaybeProgress(now, t, out);
  } else if (current && u.ended && t.owner == FetchOwner::kMember && t.member.phase == MemberPhase::kFetching) {
    impl_->MemberFetchEnded(now, t, u, out);
  } else if (current && u.ended) {
    t.attempt = 0;
  }
  impl_->Finish(now, t, out);
}

void RelayCore::OnChildDone(Micros now, const ChildDone& d, RelayActions* out) {
  out->Clear();
  auto c = impl_->children.find(d.id);
  if (c == impl_->children.end()) {
    out->wake_at = impl_->NextWake(now);
    return;
  }
  Transfer& t = impl_->Get(c->second);
  impl_->children.erase(c);
  if (d.file_complete) {
    // A whole, checked file (cm-mcast recv checks it against the session's
    // hash): its header and chunk table are known too, so a member promoted
    // to lead this serial can serve it and start its site phase at once.
    t.held.complete = true;
    t.held.table_known = true;
    if (t.member.expect) t.held.size = std::max(t.held.size, t.member.expect->size);
  }
  Site& s = t.leader.site;
  MemberRole& m = t.member;
  if (d.id == s.mcast) {
    s.mcast = 0;
    if (d.exit_code != 0 && !d.cancelled)
      impl_->NoteT(out, t, LogNote::Level::kDebug,
                   "cm-mcast send: " + d.error_line + " (exit " + std::to_string(d.exit_code) + ")");
  } else if (d.id == s.apply) {
    s.apply = 0;
    s.own = impl_->ApplyResult(d, s.order.kind, Via::kLeader);
    if (s.own->state == ServerState::kFailed) impl_->LeaderStop(t, s.own->error, s.own->apply_exit, true, out);
  } else if (d.id == m.child && m.phase == MemberPhase::kReceiving) {
    m.child = 0;
    if (d.cancelled) {
      impl_->MemberFinished(t, ServerResult{opts_.name, ServerState::kFailed, "superseded", m.via}, out);
    } else {
      if (d.exit_code != 0)
        impl_->NoteT(out, t, LogNote::Level::kWarn,
                     "multicast receive failed (" + d.error_line + "); fetching from the leader");
      impl_->MemberFetch(t, out);
    }
  } else if (d.id == m.child && m.phase == MemberPhase::kApplying) {
    impl_->MemberFinished(t, impl_->ApplyResult(d, m.run.kind, m.via), out);
  }
  impl_->Finish(now, t, out);
}

void RelayCore::OnCallDone(Micros now, const CallResult& r, RelayActions* out) {
  out->Clear();
  auto p = impl_->Take(now, r);
  if (!p) {
    out->wake_at = impl_->NextWake(now);
    return;
  }
  if (impl_->Stale(*p)) {  // for an earlier run or site phase, or a serial forgotten: changes nothing now
    if (auto it = impl_->transfers.find(p->serial); it != impl_->transfers.end())
      impl_->NoteT(out, it->second, LogNote::Level::kDebug,
                   std::string("answer to ") + EndpointPath(p->call.endpoint) + " for an earlier run dropped");
    out->wake_at = impl_->NextWake(now);
    return;
  }
  Transfer& t = impl_->Get(p->serial);
  switch (p->purpose) {
    case Purpose::kProgress:
      if (!r.ok()) impl_->NoteT(out, t, LogNote::Level::kDebug, "progress to CCM: " + CallError(r));
      t.leader.progress_in_flight = false;
      if (Impl::Refused(r) || Impl::Gone(r)) t.leader.progress_off = true;  // the run's CCM does not want it: no more
      break;
    case Purpose::kNext:  // unless serving ended meanwhile
      if (t.leader.serve == ServeState::kAsking) impl_->OnNextAnswer(now, t, r, out);
      break;
    case Purpose::kForward:
      if (t.leader.serve == ServeState::kForwarding) impl_->OnForwarded(t, *p, r, out);
      break;
    case Purpose::kNotifyFailed:
      if (t.leader.serve == ServeState::kForwarding)
        t.leader.serve = Impl::Refused(r) || Impl::Gone(r) ? ServeState::kDone : ServeState::kWaitingForBytes;
      break;
    case Purpose::kSourceFailed: impl_->OnSourceAnswer(now, t, *p, r, out); break;
    case Purpose::kExpect: impl_->OnExpectAnswer(now, t, *p, r, out); break;
    case Purpose::kSiteReport:
      if (!r.ok()) impl_->NoteT(out, t, LogNote::Level::kWarn, "site report to CCM: " + CallError(r));
      t.leader.site.state = SiteState::kReported;
      break;
    case Purpose::kMemberReport: impl_->OnMemberReported(t, r, out); break;
    case Purpose::kRelayFailed:
      if (!r.ok()) impl_->NoteT(out, t, LogNote::Level::kWarn, "relay-failed to CCM: " + CallError(r));
      break;
    case Purpose::kProbe: impl_->OnProbeAnswer(now, t, *p, r, out); break;
    case Purpose::kReexpect: impl_->OnReexpectAnswer(now, t, *p, r); break;
  }
  if (t.leader.stopped) t.leader.serve = ServeState::kDone;  // an answer in flight does not restart serving
  impl_->Finish(now, t, out);
}

void RelayCore::OnTimer(Micros now, RelayActions* out) {
  out->Clear();
  impl_->Resend(now, out);
  for (auto& [serial, t] : impl_->transfers) impl_->Step(now, t, out);
  out->wake_at = impl_->NextWake(now);
}

std::vector<TransferStatus> StatusOf(const std::vector<TransferView>& views) {
  std::vector<TransferStatus> out;
  for (const auto& v : views)
    out.push_back(TransferStatus{v.serial, TransferPhaseName(v.phase), v.verified, v.size, v.complete, v.source});
  return out;
}

bool RelayCore::InUse(uint64_t serial) const {
  auto it = impl_->transfers.find(serial);
  if (it == impl_->transfers.end()) return false;
  if (impl_->Busy(it->second)) return true;
  for (const auto& [id, p] : impl_->calls)
    if (p.serial == serial) return true;
  for (const auto& [at, p] : impl_->resends)
    if (p.serial == serial && !impl_->Stale(p)) return true;  // a stale one is never sent
  for (const auto& [id, s] : impl_->children)
    if (s == serial) return true;
  return false;
}

bool RelayCore::Forget(uint64_t serial) {
  if (InUse(serial)) return false;
  impl_->transfers.erase(serial);
  return true;
}

std::vector<TransferView> RelayCore::View() const {
  std::vector<TransferView> v;
  for (const auto& [serial, t] : impl_->transfers)
    v.push_back(TransferView{serial, t.phase, t.leader.source, t.held.verified, t.held.size, t.held.complete});
  return v;
}

}  // namespace cm::push
