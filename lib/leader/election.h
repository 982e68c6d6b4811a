// The cm-leader protocol core: group-leader election (the five states of the
// source's Fig. 5), registration and membership, and reports to the CCM.
// A pure state machine (proto/core.h): no clock, socket or global randomness.
//
// States: kKnown (following a live leader), kUnknown (no leader; claims when
// allowed), kVoting (claimed; wins if no stronger claim and no live leader is
// heard for the voting window), kLeader (sends Leader Alive), kConceding
// (heard a stronger claim; waits for its Leader Alive).
//
// Strength is (priority, id), higher wins. Epochs: a new leader takes one more
// than the highest epoch it has seen; a leader that out-ranks another leader
// it hears bumps its epoch above both, so followers (and the CCM) can ignore
// a stale leader by its epoch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "leader/priority.h"
#include "leader/sequencer.h"
#include "leader/timers.h"
#include "leader/wire.h"
#include "proto/core.h"

namespace cm::leader {

enum class State { kKnown, kUnknown, kVoting, kLeader, kConceding };
const char* StateName(State s);

struct Facts {  // what the leader reports about itself and members register
  std::string name;
  std::string location;  // e.g. a time zone
  uint64_t free_disk_mb = 0;
  uint32_t cpu_permille = 0;
};

// Bounds on what a message may claim, checked keyed or not (an unkeyed
// group cannot tell a forger from a member, but a forged priority above
// every real one, or an epoch that jumps to 2^64-1 and wraps, is refused):
// a priority is admin (0..255) << 16 | measured (0..65535); an epoch is at
// most kMaxEpoch (2^48: one election a second for 8 million years) and at
// most kMaxEpochJump above the highest this node has seen (once it has seen
// one). A refused message is dropped whole and counted in rejected().
constexpr uint32_t kMaxPriority = (255u << 16) | 0xffffu;
constexpr uint64_t kMaxEpoch = uint64_t{1} << 48;
constexpr uint64_t kMaxEpochJump = 1000;
// Peers' digests counted in a member's expiry: beyond this many the chance
// that all miss its refresh is already negligible.
constexpr int kMaxReporters = 16;

struct Config {
  uint64_t id = 0;            // unique in the segment, never 0
  proto::Address self;        // unicast address (reported, carried in messages)
  proto::Address control;     // control channel (multicast group)
  std::string segment;        // segment name for reports
  uint32_t admin_priority = 100;  // 0..255; 0 = never leader
  std::vector<uint64_t> leaders;  // pre-assigned leader list (empty = everyone may lead)
  uint64_t static_leader = 0;     // static override: this id leads, nobody votes
  Timers timers;
  std::optional<GroupKey> key;    // keyed authentication of every message
  // Wall-clock microseconds minus the `now` passed in (the tool: system clock
  // minus steady clock at start; tests: 0). Auth counters are wall-clock
  // timestamps, so receivers can judge their freshness.
  proto::Micros wall_offset = 0;
  // With a key: a message whose counter (the sender's wall clock) is further
  // than this from the receiver's wall clock is rejected, so a capture cannot
  // be replayed later to a node that never heard its sender. 0 = no check.
  proto::Micros replay_window = 10 * proto::kSeconds;
  std::optional<proto::Address> ccm;  // the CCM's HTTP address: segment reports (Transport::kReport, the JSON alone)
  uint64_t rng_seed = 1;
  bool listen_first = true;  // listen one dead interval before claiming
  // Pre-emption: a candidate stronger than the leader it follows claims
  // (after its skew, and not before preempt_delay after its start); without
  // it, a leader keeps leading until it fails, whoever is stronger.
  bool preempt = true;
  proto::Micros preempt_delay = 0;
};

struct Member {
  uint64_t id = 0;
  proto::Address addr;
  Facts facts;
  proto::Micros last_heard = 0;
  // The leader's estimate of this member's registration loss (from the gaps
  // in its registration numbers), which stretches its expiry.
  uint64_t reg_count = 0;
  uint64_t regs_seen = 0;
  double loss = 0;
  // The group's evidence (docs/protocol/leader.md "Membership that does not
  // flap"): when a peer's Register last said it heard this member register
  // (since the peer's previous one), and when this member's own Register
  // last carried a digest the leader could read (it counts as a reporter).
  proto::Micros peer_heard = 0;
  proto::Micros digest_at = -proto::kSeconds * 1000000;
};

class Election {
 public:
  explicit Election(Config cfg, Sequencer* sequencer = nullptr);

  // proto::Core
  void Start(proto::Micros now, proto::Effects* out);
  void OnDatagram(proto::Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out);
  void OnTimer(proto::Micros now, proto::Effects* out);

  // Graceful stop (SIGTERM): a leader multicasts Resign so a successor claims
  // after one skew instead of a timeout. The core is inert afterwards.
  void Resign(proto::Micros now, proto::Effects* out);
  // The measured part of the priority (0..65535, already damped).
  void SetMeasured(uint32_t measured);
  // One sample of the host's measurements (the tool: every few seconds):
  // quantized and damped (leader/priority.h) into the measured priority.
  void Sample(const Measurements& m);
  void SetFacts(const Facts& f) { facts_ = f; }
  // Leader only: moves the group to another control channel.
  void MoveChannel(proto::Micros now, proto::Address channel, proto::Effects* out);

  State state() const { return state_; }
  uint64_t id() const { return cfg_.id; }
  uint32_t priority() const { return priority_; }
  uint64_t leader() const;  // 0 = none known
  // What the node shows (--json, the state file, hooks): while a suspicion
  // of the leader it followed is open (its claim, or conceding to a peer's,
  // before the group has answered), still kKnown and that leader. A vouch or
  // the leader's Alive ends it unseen; a new leader (this node or another)
  // is the next thing shown. After a whole conceding period without a
  // leader the truth is shown.
  State shown_state() const { return Suspecting() ? State::kKnown : state_; }
  uint64_t shown_leader() const { return Suspecting() ? suspect_.id : leader(); }
  proto::Address leader_addr() const { return state_ == State::kLeader ? cfg_.self : leader_addr_; }
  uint64_t epoch() const { return state_ == State::kLeader ? epoch_ : leader_epoch_; }
  // The site's highest committed SAM number (docs/protocol/ordering.md): the
  // sequencer's while leading, else the highest a followed leader's Alive
  // carried (committed numbers never go down); 0 without SAM.
  uint64_t committed_seq() const;
  proto::Address control() const { return control_; }
  // The member ids: the leader's list, or the last list a member heard.
  std::vector<uint64_t> members() const;
  // The leader's member table (self included), with addresses and
  // registered facts; empty on a node that does not lead.
  std::vector<Member> member_table() const;
  bool registered() const { return registered_; }
  // The report the leader sends to the CCM (one JSON line).
  std::string ReportJson() const;
  uint64_t rejected() const { return rejected_; }  // messages dropped by auth/replay/parse/bounds
  // Estimated Leader Alive loss rate (0..1) and the dead intervals it implies.
  double loss_estimate() const { return loss_; }
  int dead_intervals_now() const { return LossDeadIntervals(cfg_.timers.dead_intervals); }
  // True when the followed leader's death is judged with the group's
  // evidence (peers that vouch), false when by this node's own misses.
  bool group_evidence() const { return Peers() >= 2; }
  // How long the leader waits before dropping this member (0: not a member).
  proto::Micros member_expiry(uint64_t id) const;

 private:
  bool Stronger(uint32_t p1, uint64_t id1, uint32_t p2, uint64_t id2) const {
    return p1 != p2 ? p1 > p2 : id1 > id2;
  }
  bool SelfStronger(uint32_t p, uint64_t id) const { return Stronger(priority_, cfg_.id, p, id); }
  bool CanClaim(proto::Micros now) const;
  bool Suspecting() const {
    return hidden_suspicion_ && suspect_.id != 0 &&
           (state_ == State::kUnknown || state_ == State::kVoting || state_ == State::kConceding);
  }
  proto::Micros Skew(proto::Micros now) const;
  proto::Micros VoteWindow();
  int LossDeadIntervals(int base) const;
  int Peers() const;  // members of the followed leader's group besides it and this node
  proto::Micros GroupDead(proto::Micros interval) const;
  // Copies of a claim needed at the estimated loss (0: extend the window),
  // with the peers' vouches counted or not.
  int ClaimCopies(bool vouched) const;
  Message ClaimMsg() const;
  void SendVouch(proto::Micros now, const Message& claim, proto::Effects* out);
  void OnVouch(proto::Micros now, const Message& m, proto::Effects* out);
  void Restore(proto::Micros now, proto::Micros heard_at, uint64_t beat, proto::Effects* out);
  proto::Micros DeadAfter(proto::Micros heard_at) const;  // when the followed leader, last known alive then, is dead
  proto::Micros ExpiryOf(const Member& m) const;
  // The last time the leader or a peer heard this member register.
  static proto::Micros LastEvidence(const Member& m) { return std::max(m.last_heard, m.peer_heard); }
  void CountReporters(proto::Micros now);
  void ReadDigest(proto::Micros now, const Message& m, Member* reporter);
  void SendMembers(proto::Effects* out);
  double GroupLossWeight() const;
  void CountBeat(const Message& m);
  proto::Micros NextClaimRepeat() const;
  // Pushes a deadline this node woke up for late once, by a moment, so the
  // datagrams that arrived meanwhile are read first: true when deferred.
  bool Defer(proto::Micros now, proto::Micros* due, bool* deferred) const;
  proto::Micros AnswerSpacing() const;  // the least time between two answers to a claim's copies
  Message Base(MsgType t) const;
  void Send(const Message& m, proto::Effects* out);  // at now_
  void SetState(proto::Micros now, State s, proto::Effects* out);

  void OnAlive(proto::Micros now, const Message& m, proto::Effects* out);
  void OnClaim(proto::Micros now, const Message& m, proto::Effects* out);
  void OnResign(proto::Micros now, const Message& m, proto::Effects* out);
  void OnRegister(proto::Micros now, const Message& m, proto::Effects* out);
  void OnMembers(proto::Micros now, const Message& m, proto::Effects* out);

  void Claim(proto::Micros now, proto::Effects* out, bool preempt = false);
  void BecomeLeader(proto::Micros now, proto::Effects* out);
  void Follow(proto::Micros now, const Message& m, proto::Effects* out);
  void StepDown(proto::Micros now, proto::Effects* out);
  void Concede(proto::Micros now, uint64_t to, uint32_t prio, proto::Effects* out);
  void SendAlive(proto::Micros now, proto::Effects* out);
  void MembershipChanged(proto::Micros now, proto::Effects* out);
  bool ReplayOk(proto::Micros now, uint64_t sender, uint64_t counter);
  void Tick(proto::Micros now, proto::Effects* out);
  void Schedule(proto::Effects* out) const;

  Config cfg_;
  Sequencer* sequencer_;
  proto::Rng rng_;
  Facts facts_;
  uint32_t measured_ = 0;
  PriorityDamper damper_;
  uint32_t priority_ = 0;
  bool candidate_ = true;
  bool stopped_ = false;
  proto::Address control_;
  uint64_t counter_ = 0;  // last auth counter sent: max(previous + 1, wall clock)
  proto::Micros now_ = 0;  // time of the event being handled
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> replay_;  // sender -> (highest, bitmap)
  uint64_t rejected_ = 0;
  proto::Micros last_bounds_alert_ = -proto::kSeconds * 100;  // alerts on refused bounds, at most one per 10 s

  State state_ = State::kUnknown;
  uint64_t max_epoch_ = 0;  // highest epoch seen
  uint64_t epoch_ = 0;      // own term while leader
  proto::Micros listen_until_ = 0;
  proto::Micros deposed_until_ = 0;

  // kKnown: the followed leader.
  uint64_t leader_ = 0;
  uint32_t leader_prio_ = 0;
  uint64_t leader_epoch_ = 0;
  proto::Address leader_addr_;
  proto::Micros last_alive_ = 0;
  proto::Micros dead_at_ = proto::kNever;
  bool dead_deferred_ = false;  // dead_at_ was pushed once for a late wake-up
  bool suspicion_ = false;      // kUnknown after the followed leader's timer ran out: its claim is vouched for
  bool hidden_suspicion_ = false;  // that suspicion is not shown (shown_state) until it resolves
  uint64_t heard_sequence_ = 0;  // highest `sequence` a followed leader's Alive carried
  uint32_t leader_members_ = 0;  // the member count of the followed leader's last Alive
  proto::Micros leader_interval_ = 0;
  int leader_dead_intervals_ = 0;
  proto::Micros heard_at_ = 0;     // when this node last heard the followed leader itself
  uint64_t evidence_beat_ = 0;     // the newest heartbeat of it known (heard or vouched)
  proto::Micros last_vouch_sent_ = -proto::kSeconds;
  // The leader last followed, kept while electing a successor: a vouch for a
  // newer heartbeat of it within group_dead restores it.
  struct LeaderRef {
    uint64_t id = 0;
    uint64_t epoch = 0;
    uint32_t prio = 0;
    proto::Address addr;
  };
  LeaderRef suspect_;
  uint64_t suspect_beat_ = 0;
  bool claim_preempt_ = false;  // the current claim pre-empts a live leader
  int claim_copies_ = 3;        // copies of the current claim, spread over its window
  proto::Micros started_ = 0;
  uint64_t reg_sent_ = 0;  // registrations sent (their number)
  // Loss estimate from the followed leader's heartbeat numbers.
  double loss_ = 0;
  uint64_t beats_seen_ = 0;  // heartbeats (received or missed) in the estimate
  uint64_t beat_leader_ = 0;
  uint64_t beat_epoch_ = 0;
  uint64_t last_beat_ = 0;
  // kUnknown / kVoting / kConceding.
  proto::Micros claim_at_ = proto::kNever;
  proto::Micros claim_sent_ = 0;
  proto::Micros last_claim_sent_ = 0;
  proto::Micros last_claim_answer_ = -proto::kSeconds;  // our claim sent in answer to a weaker one
  proto::Micros vote_end_ = proto::kNever;
  proto::Micros claim_spread_ = 0;  // the copies go out over this much of the window
  bool vote_deferred_ = false;      // vote_end_ was pushed once for a late wake-up
  int claims_sent_ = 0;  // copies of the current claim sent (repeats spread over the window)
  bool vote_contested_ = false;
  uint64_t concede_to_ = 0;
  uint32_t concede_prio_ = 0;
  proto::Micros concede_until_ = proto::kNever;
  // Pre-emption of a weaker leader, with back-off when a claim goes unheard.
  proto::Micros preempt_at_ = proto::kNever;
  proto::Micros preempt_backoff_ = 0;
  // kLeader.
  proto::Micros next_alive_ = proto::kNever;
  proto::Micros last_alive_sent_ = 0;
  uint64_t beat_ = 0;  // heartbeats sent (the Alive beat number)
  uint64_t handover_to_ = 0;  // pre-empted by this stronger node: silent until its Alive
  proto::Micros handover_until_ = proto::kNever;
  proto::Micros no_handover_until_ = 0;  // after a failed handover: step down at once
  uint64_t contest_by_ = 0;
  proto::Micros contest_since_ = 0;
  proto::Micros contest_last_ = 0;
  bool contest_evidence_ = false;
  std::map<uint64_t, Member> table_;
  // The member lists this leader sent last (a Register's digest names one by
  // its hash), newest last, at most kListsKept; and how many members sent a
  // readable digest within member_expiry (the peers that vouch for members).
  static constexpr size_t kListsKept = 4;
  std::vector<std::pair<uint64_t, std::vector<uint64_t>>> sent_lists_;
  int reporters_ = 0;
  double reg_loss_ = 0;     // registration loss over all members
  uint64_t regs_seen_ = 0;  // registrations (received or missed) in it
  proto::Micros list_at_ = proto::kNever;
  proto::Micros report_at_ = proto::kNever;
  int move_repeats_ = 0;
  proto::Address move_to_;
  // Member side of registration.
  bool registered_ = false;
  proto::Micros register_at_ = proto::kNever;
  std::vector<uint64_t> heard_list_;
  // Members of heard_list_ whose Register this node heard since its own
  // previous Register (the digest the next one carries).
  std::set<uint64_t> heard_regs_;
};

}  // namespace cm::leader
