// The serving side of want lists (receiver.h): a pure state machine
// (proto/core.h) holding a catalogue of objects. When receivers multicast a
// want for one of them, it runs a Sender session for that object with those
// receivers as the ones to wait for. Wants arriving within `gather` of the
// first are served by one session; sessions run one at a time, in the order
// their objects were first wanted; a want for the object of the session
// under way joins that session (Sender::AddReceiver). Each want is answered
// "wait, it is coming" so the receiver holds off asking again.
//
// An object is matched by name, size and whole-object hash; one whose
// source has not given its hash yet (still being hashed) is not served until
// it has. Used by cm-mcast serve and send --stay.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mcast/sender.h"

namespace cm::mcast {

struct ServedObject {
  std::string name;
  uint64_t size = 0;
  ObjectSource* source = nullptr;  // outlives the server
};

struct ServerConfig {
  // Template for every session: id, rate, group, key, geometry and timers.
  // name, hash, size, receivers and seed are set per session.
  SenderConfig session;
  Micros gather = 200 * proto::kMillis;
  uint64_t seed = 1;
};

// A session the server ran, when it ended.
struct ServedSession {
  std::string name;
  Outcome outcome = Outcome::kRunning;
  std::map<std::string, ReceiverInfo> receivers;
  SenderStats stats;
};

class Server {
 public:
  Server(ServerConfig cfg, std::vector<ServedObject> objects);

  void Start(Micros now, proto::Effects* out);
  void OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out);
  void OnTimer(Micros now, proto::Effects* out);

  // Sessions that ended, in order.
  const std::vector<ServedSession>& sessions() const { return done_; }
  // The session under way (nullptr when idle).
  const Sender* current() const { return current_.get(); }
  bool idle() const { return !current_ && order_.empty(); }
  // Core time to Unix wall clock (SenderConfig::wall_offset) for the next sessions.
  void set_wall_offset(Micros w) { cfg_.session.wall_offset = w; }

 private:
  struct Pending {
    Micros since = 0;
    std::map<std::string, proto::Address> who;
  };
  void OnWant(Micros now, const proto::Address& from, const Message& m, proto::Effects* out);
  void Pump(Micros now, proto::Effects* out);
  int Find(const WantEntry& e);
  uint32_t SessionOf(size_t object);

  ServerConfig cfg_;
  std::vector<ServedObject> objects_;
  std::vector<uint32_t> session_ids_;  // per object, 0 until computed
  const GroupKey* key_;
  proto::Rng rng_;
  std::map<size_t, Pending> pending_;
  std::deque<size_t> order_;  // objects with pending wants, first wanted first
  std::unique_ptr<Sender> current_;
  size_t current_object_ = 0;
  Micros inner_wake_ = proto::kNever;
  std::vector<ServedSession> done_;
};

}  // namespace cm::mcast
