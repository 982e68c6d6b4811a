// The cm-mcast receiver: a pure state machine (lib/proto/core.h). It joins a
// session from its announcement (answering "complete" at once when it already
// holds the object), collects frames block by block, rebuilds blocks from any
// k symbols, reports its missing symbols per block (NACK runs; empty = all
// good so far) every NACK period with jitter and when queried after a random
// back-off, and verifies the whole-object hash before it reports complete.
// When the sender goes silent it addresses its reports to a backup sender.
//
// The whole-object hash may come after the data (a sender that starts before
// it has hashed, or sends a file still arriving): a receiver holding every
// block waits for an announcement with the hash, and only then verifies,
// commits and reports complete.
//
// A daemon (one_session false) may hold a want list: the objects it should
// hold. Every want_period (doubling, up to 8x, while nothing changes) it
// compares the list with its store and with the sessions under way, and
// multicasts a want message naming what is missing; a sender or server that
// holds one of them starts (or widens) a session for it.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "mcast/fec.h"
#include "mcast/store.h"
#include "mcast/wire.h"
#include "proto/core.h"

namespace cm::mcast {

using proto::Micros;

struct ReceiverConfig {
  std::string id = "receiver";
  proto::Address group;
  std::optional<GroupKey> key;
  bool one_session = true;  // finished after the first session ends
  std::string only_name;    // non-empty: ignore sessions for other names
  uint64_t seed = 1;
  Micros sender_timeout = 1500 * proto::kMillis;  // then NACK the backup
  Micros close_grace = 2 * proto::kSeconds;       // after a Close while incomplete
  Micros give_up = 30 * proto::kSeconds;          // no sender at all for this long -> failed
  std::vector<WantEntry> wants;                   // daemon: objects this receiver should hold
  Micros want_period = 2 * proto::kSeconds;       // how often the want list is compared
  // Replay defence, keyed sessions only (docs/protocol/mcast.md, "Replay").
  // Core time + wall_offset is the Unix wall clock (µs). An announcement
  // whose sender clock (stamp) differs from ours by more than replay_window
  // is refused (0 turns the check off); so is a session of a run that already
  // completed here, and one that started before the session that stored the
  // same name from the same sender (ObjectStore::LastSession).
  Micros wall_offset = 0;
  Micros replay_window = 10 * proto::kSeconds;
};

struct SessionResult {
  uint32_t session = 0;
  std::string name;
  Hash256 hash{};
  uint64_t size = 0;
  RecvState state = RecvState::kIncomplete;
  std::string reason;           // for people; decide on `error`
  Code error = Code::kOk;       // kFailed: kCorrupt for a hash mismatch, kIo, ... (kFailure otherwise)
  bool already_had = false;
  uint64_t unicast_frames = 0;
  uint64_t resumed_bytes = 0;  // taken from an earlier, interrupted session's partial file
};

class Receiver {
 public:
  // store must outlive the receiver.
  Receiver(ReceiverConfig cfg, ObjectStore* store);
  ~Receiver();

  void Start(Micros now, proto::Effects* out);
  void OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out);
  void OnTimer(Micros now, proto::Effects* out);

  // One-session mode: true once that session completed or failed.
  bool finished() const { return finished_; }
  // Sessions that ended (completed or failed), in order.
  const std::vector<SessionResult>& results() const { return results_; }
  // Progress of the current session: bytes held, total.
  std::pair<uint64_t, uint64_t> progress() const;

  // Replaces the want list (e.g. its file was rewritten); compared at once.
  void SetWants(Micros now, std::vector<WantEntry> wants, proto::Effects* out);
  // Wanted objects neither held in the store nor arriving in a session now.
  std::vector<WantEntry> Missing();
  // Want messages sent so far.
  uint64_t wants_sent() const { return wants_sent_; }
  // Announcements refused by the replay defence so far.
  uint64_t replays_refused() const { return replays_refused_; }
  // The runner follows the wall clock (ReceiverConfig::wall_offset).
  void set_wall_offset(Micros w) { cfg_.wall_offset = w; }
  // How long the next datagrams sat in the socket's queue before they were
  // read (the driver's kernel stamps; 0: unknown): the one-way delay is
  // measured to their arrival, not to the read, so a receiver process that
  // was not scheduled does not look like a queue in the network.
  void set_queued(Micros w) { queued_ = w; }

 private:
  struct Session;
  void Pump(Micros now, proto::Effects* out);
  void OnAnnounce(Micros now, const proto::Address& from, const Message& m, proto::Effects* out);
  void OnData(Micros now, const proto::Address& from, const Message& m, proto::Effects* out);
  void SendStatus(Micros now, Session& s, proto::Effects* out);
  void Complete(Micros now, Session& s, proto::Effects* out);
  void OnHashKnown(Micros now, Session& s, proto::Effects* out);
  void CheckWants(Micros now, proto::Effects* out);
  // Keyed: why this announcement must not start (or restart) a session, or
  // "" when it may. `fresh_only`: check the sender's clock only.
  std::string ReplayCheck(Micros now, const Announce& a, bool fresh_only);
  // Alerts once per run, counts every refusal.
  void Refuse(const Announce& a, const std::string& why, proto::Effects* out);
  void RememberCompleted(const Session& s);
  // error: why a failed session failed (kFailure when no Status said more).
  void End(Micros now, Session& s, RecvState st, const std::string& reason, proto::Effects* out,
           cm::Code error = cm::Code::kFailure);
  const RsCode& Code(int k);
  Micros Jitter(Micros period);

  ReceiverConfig cfg_;
  Micros queued_ = 0;  // set_queued
  ObjectStore* store_;
  const GroupKey* key_;
  proto::Rng rng_;
  std::map<uint32_t, std::unique_ptr<Session>> sessions_;
  std::map<uint32_t, SessionResult> ended_;  // answers re-announcements of ended sessions
  std::vector<SessionResult> results_;
  std::map<int, std::unique_ptr<RsCode>> codes_;
  bool finished_ = false;
  Micros started_ = 0;
  // Want list.
  Micros next_want_ = proto::kNever, want_hold_until_ = 0;
  int want_backoff_ = 0;
  uint64_t wants_sent_ = 0;
  std::vector<std::string> wanting_;  // names in the last want sent (for events)
  // Replay defence: runs whose session completed here, and runs refused
  // (alerted once), each bounded (oldest forgotten first).
  std::set<uint64_t> completed_runs_, refused_runs_;
  std::deque<uint64_t> completed_order_, refused_order_;
  uint64_t replays_refused_ = 0;
};

}  // namespace cm::mcast
