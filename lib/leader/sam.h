// Ordered delivery inside a site (SAM, source 003): the pure core of one
// member. The site's elected leader is also the sequencer; every member is a
// data server for the assignments it holds; a configured set of members are
// the commit servers. Assignments are named by a 64-bit id (the data itself
// travels elsewhere); this core only orders ids and says when a member may
// apply the next one. docs/protocol/ordering.md describes the protocol;
// the messages are in sam_wire.h.
//
// Flow: data arrives (OnData) -> Have to the sequencer -> once `copies` (k)
// members hold an id the sequencer numbers it (Assign to the commit servers)
// -> `commit_quorum` Acks -> committed, announced in Commit and in every
// Alive (the highest committed number). Members apply numbers strictly in
// order; a gap seen in an Alive is repaired by Nack (the id at a number, from
// a commit server or any member that knows it), Fetch (the data, from a
// member that holds it) or, for a member behind the newest checkpoint,
// CkptFetch (a state transfer: checkpoint number + state hash). At most
// max_repairs requests are outstanding per member; each is retried on
// another peer after repair_retry.
//
// Fail-over (a Paxos round over the commit servers): the new leader's ballot
// is (epoch, round, id); round counts this node's terms in one epoch (kept in
// stable storage), so no two sequencer incarnations share a ballot. It sends
// Recover(ballot, from) and waits for Promises from a recovery quorum
// (commit servers - commit_quorum + 1, which intersects every commit
// quorum); each Promise refuses lower ballots from then on (the fence) and
// carries the accepted entries above `from`. For every number up to the
// highest accepted one the leader re-proposes the highest-ballot entry (a
// no-op, id 0, where none was accepted), then numbers new ids after it.
//
// Invariants (checked by tests/unit/sim/sam_sim_test.cc after every step):
//  I1 at most one id is ever committed at a number (commit servers accept
//     only ballots >= their promise; recovery quorums intersect commit
//     quorums; a sequencer commits numbers in order only);
//  I2 a member's delivered sequence is a prefix of the one committed
//     sequence: it applies n+1 only after n, only the committed id, once;
//     a checkpoint it installs is the hash of the committed prefix;
//  I3 an id is numbered at most once: an id is numbered only within
//     `lifetime` numbers above its stamp `ts` (the committed number when its
//     data was sent), and a sequencer knows the ids of the `lifetime`
//     numbers below what it recovers (its log; a checkpoint carries them)
//     plus the recovered and its own ones; it numbers no id it knows, and
//     when recovery finds one id at two numbers it keeps the applied or
//     highest-ballot one and fills the other with a no-op;
//  I4 nothing in stable() is lost by a crash: the edge writes stable() to
//     disk after every call (OnData included) in which stable_version()
//     changed, BEFORE sending that call's Effects (so a number is on disk before any Assign for it
//     leaves, and a promise before its Promise).
// Time only enters through the `now` arguments; the core keeps one wake-up
// (a tick of timers.tick). OnData and OnLeadership take effect at the next
// tick (at most timers.tick later).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "leader/sam_wire.h"
#include "leader/sequencer.h"
#include "proto/core.h"

namespace cm::leader {


struct SamTimers {
  proto::Micros tick = 100 * proto::kMillis;          // the one periodic wake-up
  proto::Micros alive_every = 200 * proto::kMillis;   // sequencer heartbeat (Alive)
  // Have (holdings + checkpoint) to the sequencer: at once for new data or a
  // new sequencer, every have_every while held data waits for a number,
  // every have_idle otherwise (the checkpoint report).
  proto::Micros have_every = 300 * proto::kMillis;
  proto::Micros have_idle = 2 * proto::kSeconds;
  proto::Micros assign_retry = 200 * proto::kMillis;  // re-send unacknowledged Assign / Recover
  proto::Micros repair_retry = 300 * proto::kMillis;  // a repair request unanswered this long goes to another peer
};

struct SamPeer {
  uint64_t id = 0;
  proto::Address addr;
};

struct SamConfig {
  uint64_t id = 0;          // this member, never 0
  proto::Address group;     // the site's channel (Alive, Commit)
  std::vector<SamPeer> members;          // the whole site, self included
  std::vector<uint64_t> commit_servers;  // ids among members
  int copies = 2;           // k: holders needed before an id is numbered
  int commit_quorum = 0;    // Acks needed to commit; 0 = max(copies, majority of commit servers)
  uint64_t checkpoint_every = 16;  // every member checkpoints at multiples of this
  // An id is numbered only within `lifetime` numbers of its stamp, and
  // every member keeps the ids of the last `lifetime` numbers it applied (a
  // checkpoint carries them): a new sequencer knows every id that could
  // already hold a number (I3). At most kMaxEntries.
  uint64_t lifetime = 128;
  int max_repairs = 4;      // outstanding repair requests per member
  int pipeline = 16;        // numbers assigned but not committed, at most
  SamTimers timers;
  uint64_t rng_seed = 1;
};

// Everything that must survive a crash (invariant I4). Restore by passing
// it to the constructor.
struct SamStable {
  // Member / data server.
  uint64_t delivered = 0;     // highest number applied
  uint64_t hash = 0;          // state hash of the applied prefix
  uint64_t install_floor = 0; // the checkpoint last installed (log_ starts above it)
  // number -> id applied: the last `lifetime` numbers below the own
  // checkpoint and everything above it (a checkpoint carries its window).
  std::map<uint64_t, uint64_t> log;
  struct Held {
    uint64_t ts = 0;   // the stamp it came with
    uint64_t seq = 0;  // the number it was applied at, 0 = not yet
    bool fetched = false;  // fetched for a committed number: never reported in Have
    bool operator==(const Held&) const = default;
  };
  std::map<uint64_t, Held> held;  // id -> data held here
  uint64_t ckpt_seq = 0, ckpt_hash = 0;  // own newest checkpoint
  sam::Ballot seen;           // highest ballot heard from a sequencer
  // Commit server.
  sam::Ballot promised;                  // refuses Assign/Recover below this
  std::map<uint64_t, sam::Entry> accepted;  // number -> accepted entry (ballot set)
  std::set<uint64_t> accepted_committed;   // numbers among `accepted` known committed
  uint64_t trim_floor = 0;               // accepted entries at or below were dropped (checkpointed)
  // Sequencer.
  sam::Ballot led;            // the last ballot this node led
  uint64_t next_seq = 1;      // next number it would assign under `led`
  bool operator==(const SamStable&) const = default;
};

class Sam : public Sequencer {
 public:
  explicit Sam(SamConfig cfg, SamStable stable = {});

  // proto::Core
  void Start(proto::Micros now, proto::Effects* out);
  void OnDatagram(proto::Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out);
  void OnTimer(proto::Micros now, proto::Effects* out);

  // The data of `id` is now held here (the data path stored it); `ts` is
  // the committed number its sender knew when it was first sent.
  void OnData(uint64_t id, uint64_t ts);

  // A member heard at `addr` (the edge learns addresses from authenticated
  // traffic): repair requests may go to it; a new id joins the member list.
  void AddPeer(uint64_t id, const proto::Address& addr);
  const std::map<uint64_t, proto::Address>& peers() const { return addr_; }  // self included
  // Whether `id` is committed at a number this member has not applied and
  // its data is not held here: the only data worth fetching from a peer.
  bool WantsData(uint64_t id) const;

  // Sequencer hook (the election core calls it): lead `epoch`, or stop.
  void OnLeadership(bool leader, uint64_t epoch) override;
  // The highest committed number this node knows (the prefix it may carry in Alive).
  uint64_t HighestSequence() const override;

  const SamStable& stable() const { return st_; }
  uint64_t stable_version() const { return stable_version_; }
  uint64_t delivered() const { return st_.delivered; }
  uint64_t state_hash() const { return st_.hash; }
  uint64_t installs() const { return installs_; }  // checkpoints installed since construction
  bool sequencing() const { return phase_ == Phase::kSequencing; }
  bool leading() const { return phase_ != Phase::kIdle; }
  const sam::Ballot& ballot() const { return ballot_; }
  size_t uncommitted() const { return pending_.size(); }
  uint64_t committed() const { return committed_; }  // sequencer: its committed prefix
  // Numbers this node committed as sequencer, in order (the last 4096).
  const std::vector<sam::Entry>& commit_log() const { return commit_log_; }
  uint64_t commits() const { return commits_; }
  size_t outstanding_repairs() const { return repairs_.size(); }
  uint64_t repairs_sent() const { return repairs_sent_; }
  uint64_t rejected() const { return rejected_; }  // malformed or fenced messages dropped
  // Two different ids heard committed at one number (a broken invariant I1; an alert too).
  uint64_t conflicts() const { return conflicts_; }
  uint64_t known_committed() const { return known_committed_; }  // highest committed number heard
  uint64_t advertised_checkpoint() const { return adv_ckpt_; }
  // Data older than the newest checkpoint, dropped from held; the edge may
  // delete it from its spool. Drained by the call.
  std::vector<uint64_t> TakeDroppable();

 private:
  enum class Phase { kIdle, kRecovering, kSequencing };
  struct Pending {
    uint64_t id = 0;
    std::vector<uint64_t> holders;
    std::set<uint64_t> acks;
  };
  struct Repair {
    proto::Micros deadline = 0;
    int attempt = 0;
  };

  void Tick(proto::Micros now, proto::Effects* out);
  void Send(const proto::Address& to, const sam::Message& m, proto::Effects* out);
  void SendTo(uint64_t member, const sam::Message& m, proto::Effects* out);
  sam::Message Make(sam::Type t) const;
  void Dirty() { ++stable_version_; }
  std::optional<proto::Address> AddrOf(uint64_t member) const;
  uint64_t Target(const std::vector<uint64_t>& preferred, int attempt);

  // Member side.
  void Dispatch(const proto::Address& from, const sam::Message& m, proto::Effects* out);
  void OnAlive(const proto::Address& from, const sam::Message& m, proto::Effects* out);
  void Learn(const sam::Entry& e);
  void DeliverReady();
  void Install(const sam::Message& ckpt);
  void StartRecovery(proto::Effects* out);
  void CollectGarbage();
  void RequestRepairs(proto::Micros now, proto::Effects* out);
  void SendHave(proto::Effects* out);
  bool KnownCommitted(uint64_t seq, sam::Entry* e) const;

  // Commit server side.
  bool Fence(const proto::Address& from, const sam::Message& m, proto::Effects* out);
  void OnAssign(const proto::Address& from, const sam::Message& m, proto::Effects* out);
  void OnRecover(const proto::Address& from, const sam::Message& m, proto::Effects* out);
  void MarkCommitted(const sam::Entry& e);
  bool IsCommitServer(uint64_t id) const;

  // Sequencer side.
  void BeginLeading(proto::Effects* out);
  void StopLeading();
  void SendRecover(proto::Effects* out);
  void OnPromise(const sam::Message& m, proto::Effects* out);
  void FinishRecovery(proto::Effects* out);
  void OnHave(const sam::Message& m, proto::Effects* out);
  void OnAck(const sam::Message& m, proto::Effects* out);
  void AssignReady(proto::Effects* out);
  void SendAssigns(proto::Effects* out);
  void SendAlive(proto::Effects* out);
  void UpdateCheckpoint();

  SamConfig cfg_;
  SamStable st_;
  proto::Rng rng_;
  uint64_t stable_version_ = 0;
  int commit_quorum_ = 1, recover_quorum_ = 1;
  proto::Micros now_ = 0;
  uint64_t rejected_ = 0;

  // Member (volatile: rebuilt from Alive/Commit/Answer after a restart).
  std::map<uint64_t, sam::Entry> known_;  // committed, not yet applied
  uint64_t known_committed_ = 0;
  proto::Address seq_addr_;
  bool seq_known_ = false;
  uint64_t adv_ckpt_ = 0;
  std::vector<uint64_t> adv_holders_;
  std::map<std::pair<int, uint64_t>, Repair> repairs_;  // (kind, number or id)
  uint64_t repairs_sent_ = 0;
  uint64_t installs_ = 0;
  std::vector<uint64_t> droppable_;
  std::set<uint64_t> unreported_;  // ids received since the last Have
  proto::Micros next_have_ = 0;
  bool have_pending_ = false;       // the last Have listed data still waiting for a number
  uint64_t have_seq_id_ = 0, have_ckpt_ = 0;  // the sequencer and checkpoint the last Have went with
  proto::Micros next_tick_ = 0;
  uint64_t seq_id_ = 0;
  uint64_t conflicts_ = 0;
  std::map<uint64_t, proto::Address> addr_;

  // Sequencer.
  std::optional<uint64_t> want_epoch_;  // set by OnLeadership(true), acted on at the next tick
  bool want_stop_ = false;
  Phase phase_ = Phase::kIdle;
  sam::Ballot ballot_;
  bool recover_started_ = false;  // false: waiting to have applied up to the checkpoint first
  uint64_t recover_base_ = 0;  // numbers above it are re-proposed
  uint64_t recover_from_ = 0;  // the window being recovered: (from, from + kRecoverWindow]
  uint64_t window_last_ = 0;   // highest accepted number the window's promises reported
  std::set<uint64_t> promises_;               // commit servers that promised the current window
  std::map<uint64_t, sam::Entry> recovered_;  // highest-ballot accepted entry per number
  std::map<uint64_t, Pending> pending_;       // assigned, not committed
  uint64_t committed_ = 0;                    // committed prefix (as sequencer)
  uint64_t floor_ = 0;                        // assignments above this are known (I3)
  std::map<uint64_t, uint64_t> id_seq_;       // id -> number, every assignment above floor_
  std::map<uint64_t, std::set<uint64_t>> have_;  // id -> members holding it
  std::map<uint64_t, uint64_t> have_ts_;         // id -> stamp
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> member_ckpt_;  // member -> (ckpt seq, hash)
  uint64_t ckpt_seq_ = 0;                     // advertised checkpoint (reported by >= copies members)
  std::vector<uint64_t> ckpt_holders_;
  proto::Micros next_alive_ = 0, next_assign_ = 0;
  std::vector<sam::Entry> commit_log_;
  uint64_t commits_ = 0;
};

}  // namespace cm::leader
