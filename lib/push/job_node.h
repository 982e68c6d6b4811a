// Job mode's node core (docs/protocol/jobs.md): what one node does for one
// job's content log — whom it fetches from, whom it approaches and with
// which share of the servers nobody has approached yet, when it switches to
// a faster source, when it asks the base for work — as a pure state machine
// after proto/core.h. No clock, socket, file or RNG: events carry the time;
// actions (calls to make, a fetch to start) come back for the edge or the
// simulator (tests/unit/push/job_swarm_sim_test.cc) to carry out.
//
// The content is the job's log: one append-only byte sequence (signed chunk
// records of every item and command, in the base's order), the same on every
// node, so a position is a byte offset that means the same everywhere and a
// node that changes source resumes where it is. A node serves whatever
// verified prefix it holds, while it grows.
//
// Roles, all in one core:
//  - receiver: one source at a time (the base or a node), fetching from its
//    position on; an offer from another source is taken when that source is
//    ahead and promises a rate `switch_gain` times the one measured now (the
//    old source sees the child leave and moves on); a failed source is
//    reported to the base, which names another;
//  - source: as soon as it holds a byte it approaches servers of its share
//    (push/fan_plan.h: LAN first, then other sites fastest first, as many at
//    once as its uplink allows); a target that cannot be reached hands its
//    share back; a child that finished or left frees its slot for the next;
//  - helper: with a free slot and nothing left in its share it asks the base
//    whom it could feed faster than their source does (the base answers from
//    the nodes' progress reports), and offers itself to that node;
//  - reporter: progress to the base every report_interval (position, rate,
//    source, children) and at once on completion.
// The base runs one too, as the root (`root`: it holds the log as it is
// written; its share is every server).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proto/core.h"
#include "push/fan_plan.h"

namespace cm::push {

using proto::Micros;

// A node index in the job's server list, or the base.
using NodeRef = int64_t;
constexpr NodeRef kBaseNode = -1;
constexpr NodeRef kNoNode = -2;

struct JobNodeOptions {
  size_t lan_fanout = 3;         // site-mates fed at once
  size_t max_wan_fanout = 4;     // other sites fed at once (WanFanout's cap)
  size_t deep_sites = 64;        // WanFanout: at least 2 children with more sites than this left
  double need_bps = 0;           // the rate a child needs (a live stream's); 0: as fast as it can
  double lan_bps = 100e6;        // what a site-mate is fed at (a rate hint for offers), bytes/s
  Micros report_interval = 500 * proto::kMillis;
  Micros help_interval = 500 * proto::kMillis;  // an idle source asks the base at most this often
  Micros switch_hold = 1 * proto::kSeconds;     // no switch within this of the last fetch start
  double switch_gain = 1.5;                     // an offer must promise this times the rate measured
  uint64_t ahead_margin = 256 * 1024;           // a helper must be this far ahead (unless complete)
  Micros rate_window = 2 * proto::kSeconds;     // the receive rate is measured over this
  Micros call_timeout = 3 * proto::kSeconds;
  bool help = true;  // ask the base for work when idle (dynamic switching); the base's own core always asks for repairs
};

// POST /v1/job-offer: "fetch this job from me, and approach these".
struct JobOfferMsg {
  NodeRef from = kBaseNode;
  std::vector<PeerIndex> share;
  double rate_bps = 0;        // what the offerer expects to feed this node at (0 = unknown)
  uint64_t from_pos = 0;      // the offerer's position
  bool from_complete = false;
  // The base sent us to relieve this node's source (the node is limited by
  // its own link): it switches if we are not slower than its source.
  bool relieve = false;
};
enum class OfferAnswer : uint8_t { kAccepted, kSwitched, kDeclined };

// Node -> base.
struct JobProgressMsg {
  PeerIndex node = 0;
  uint64_t pos = 0;
  bool complete = false;
  NodeRef source = kNoNode;
  double rx_bps = 0;
  double tx_bps = 0;                // what it feeds other sites now
  std::vector<PeerIndex> children;  // fetching from this node now
  size_t kept = 0;                  // servers of its share not approached yet
};
struct JobHelpAsk {
  PeerIndex node = 0;
  uint64_t pos = 0;
  bool complete = false;
  double rate_bps = 0;  // what it could feed one more node at (0 = not measured: the base estimates)
  bool repair_only = false;  // only servers nobody reaches (the base with switching off)
};
struct JobSourceFailedMsg {
  PeerIndex node = 0;
  NodeRef source = kNoNode;
  uint64_t pos = 0;
};
struct JobUnreachableMsg {
  NodeRef from = kBaseNode;
  PeerIndex target = 0;
};

// A call the node makes; its answer comes back through OnCallDone.
struct JobCall {
  enum class Kind : uint8_t { kOffer, kProgress, kHelp, kSourceFailed, kUnreachable };
  uint64_t id = 0;
  Kind kind = Kind::kOffer;
  NodeRef to = kBaseNode;  // kOffer: the target; else the base
  JobOfferMsg offer;
  JobProgressMsg progress;
  JobHelpAsk help;
  JobSourceFailedMsg source_failed;
  JobUnreachableMsg unreachable;
};
struct JobCallResult {
  uint64_t id = 0;
  bool ok = false;                 // reached and answered 2xx
  OfferAnswer offer = OfferAnswer::kDeclined;  // kOffer
  NodeRef target = kNoNode;        // kHelp: whom to offer ourselves to (kNoNode: nobody now)
  NodeRef source = kNoNode;        // kSourceFailed: fetch from here now
  bool finished = false;           // kHelp: every live server holds the job: stop asking
  bool relieve = false;            // kHelp: offer as a relief (JobOfferMsg::relieve)
  double rate_bps = 0;             // kHelp: the base's estimate of what we can feed the target at
};

struct JobFetch {
  NodeRef source = kNoNode;
  uint64_t from = 0;  // resume here
};

struct JobNodeActions {
  std::vector<JobCall> calls;
  std::optional<JobFetch> fetch;  // start fetching (replaces a running fetch)
  bool stop_fetch = false;        // cancel the running fetch (without a new one)
  Micros wake_at = proto::kNever;
  void Clear() { *this = JobNodeActions{}; }
};

struct JobNodeView {
  uint64_t pos = 0;
  bool complete = false;
  NodeRef source = kNoNode;
  double rx_bps = 0;
  size_t children = 0, kept = 0;
  int switches = 0;
  bool in_job = false;
};

class JobNodeCore {
 public:
  // `self`: this node's index in `peers`, or kBaseNode for the base (root:
  // it holds the log; its share is every server). `up_bps`: this node's
  // measured upload rate (0 = not measured).
  JobNodeCore(std::vector<FanPeer> peers, NodeRef self, double up_bps, JobNodeOptions opts);

  // What the node's store already holds (after a restart), before any event.
  void Restore(uint64_t pos, bool complete);
  // The root's log grew (the base appended records) or ended.
  void OnLocalAppend(Micros now, uint64_t pos, bool complete, JobNodeActions* out);
  // POST /v1/job-offer.
  OfferAnswer OnOffer(Micros now, const JobOfferMsg& offer, JobNodeActions* out);
  // The running fetch: verified position, complete (the end record checked),
  // ended (the connection is over: complete, or failed when not).
  void OnFetchProgress(Micros now, uint64_t pos, bool complete, bool ended, JobNodeActions* out);
  // A child fetching from us: its position; `gone` = its connection ended
  // (it completed when pos is the end, else it left or failed).
  void OnChildProgress(Micros now, PeerIndex child, uint64_t pos, bool complete, bool gone, JobNodeActions* out);
  void OnCallDone(Micros now, const JobCallResult& r, JobNodeActions* out);
  void OnTimer(Micros now, JobNodeActions* out);

  JobNodeView View() const;
  NodeRef self() const { return self_; }
  const std::vector<FanPeer>& peers() const { return peers_; }

 private:
  struct Child {
    bool lan = false;
    bool offering = true;   // the offer is in flight
    bool active = false;    // fetching from us
    bool done = false;
    std::vector<PeerIndex> share;
    uint64_t pos = 0;
    Micros seen_at = -1;  // time of the last position
    double rate = 0;      // bytes/s, smoothed
  };
  struct Pending {
    JobCall::Kind kind;
    NodeRef target = kNoNode;
  };

  bool Root() const { return self_ == kBaseNode; }
  std::string Site() const;
  bool SameSite(PeerIndex p) const;
  void MergeShare(const std::vector<PeerIndex>& share);
  void Approach(Micros now, JobNodeActions* out);
  void MaybeHelp(Micros now, JobNodeActions* out);
  void Report(Micros now, JobNodeActions* out);
  uint64_t NewCall(JobCall call, JobNodeActions* out);
  void StartFetch(Micros now, NodeRef source, JobNodeActions* out);
  void Settle(Micros now, JobNodeActions* out);
  double OfferRate(bool lan) const;
  double TxWan() const;  // what we feed other sites now, bytes/s
  size_t ActiveWan() const;
  size_t ActiveLan() const;

  std::vector<FanPeer> peers_;
  NodeRef self_;
  double up_bps_;
  JobNodeOptions opts_;

  uint64_t pos_ = 0;
  bool complete_ = false;
  bool in_job_ = false;           // offered (or root)
  NodeRef source_ = kNoNode;
  bool fetching_ = false;
  bool source_lost_ = false;      // reported; waiting for the base's answer
  Micros ask_source_at_ = proto::kNever;  // ask the base again (the last ask failed)
  Micros switched_at_ = -1;
  int switches_ = 0;
  // Receive rate: positions seen over the last rate_window.
  std::vector<std::pair<Micros, uint64_t>> samples_;
  double rx_bps_ = 0;

  std::vector<PeerIndex> kept_;
  std::map<PeerIndex, Child> children_;
  std::map<uint64_t, Pending> pending_;
  uint64_t next_call_ = 1;
  bool help_pending_ = false;
  bool help_done_ = false;        // the base said every server holds the job
  Micros next_help_ = 0;
  Micros next_report_ = 0;
  bool reported_complete_ = false;
};

}  // namespace cm::push
