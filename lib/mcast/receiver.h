// The cm-mcast receiver: a pure state machine (lib/proto/core.h). It joins a
// session from its announcement (answering "complete" at once when it already
// holds the object), collects frames block by block, rebuilds blocks from any
// k symbols, reports its missing symbols per block (NACK runs; empty = all
// good so far) every NACK period with jitter and when queried after a random
// back-off, and verifies the whole-object hash before it reports complete.
// When the sender goes silent it addresses its reports to a backup sender.
#pragma once

#include <map>
#include <memory>
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
};

struct SessionResult {
  uint32_t session = 0;
  std::string name;
  Hash256 hash{};
  uint64_t size = 0;
  RecvState state = RecvState::kIncomplete;
  std::string reason;
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

 private:
  struct Session;
  void Pump(Micros now, proto::Effects* out);
  void OnAnnounce(Micros now, const proto::Address& from, const Message& m, proto::Effects* out);
  void OnData(Micros now, const proto::Address& from, const Message& m, proto::Effects* out);
  void SendStatus(Micros now, Session& s, proto::Effects* out);
  void Complete(Micros now, Session& s, proto::Effects* out);
  void End(Micros now, Session& s, RecvState st, const std::string& reason, proto::Effects* out);
  const RsCode& Code(int k);
  Micros Jitter(Micros period);

  ReceiverConfig cfg_;
  ObjectStore* store_;
  const GroupKey* key_;
  proto::Rng rng_;
  std::map<uint32_t, std::unique_ptr<Session>> sessions_;
  std::map<uint32_t, SessionResult> ended_;  // answers re-announcements of ended sessions
  std::vector<SessionResult> results_;
  std::map<int, std::unique_ptr<RsCode>> codes_;
  bool finished_ = false;
  Micros started_ = 0;
};

}  // namespace cm::mcast
