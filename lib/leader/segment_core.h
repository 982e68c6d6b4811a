// One node of a LAN segment as one core: the election (leader/election.h)
// and the SAM ordering core (leader/sam.h) on one socket. The elected
// leader is the site's sequencer (Election calls Sam's Sequencer hooks).
//
// SAM datagrams travel in an envelope that tells them from the election's
// ("CL"-prefixed) ones and authenticates them like the control channel:
//   "CMSQ" | SAM message (sam::Encode) [| counter u64 LE | MAC(16)]
// With a group key the counter is the sender's wall clock in microseconds
// (strictly increasing per sender), the MAC is keyed BLAKE2b-128 over
// everything before it, and a receiver refuses a wrong MAC, a counter
// further than the replay window from its clock, and a counter it has seen
// (64-message window per sender). Every node also multicasts a Hello every
// hello_every, so each learns every peer's unicast address (the SAM core's
// repair requests go to members by id). Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "leader/election.h"
#include "leader/sam.h"
#include "proto/core.h"

namespace cm::leader {

struct SegmentConfig {
  Config election;
  std::optional<SamConfig> sam;  // none: the election alone (as before SAM)
  proto::Micros hello_every = proto::kSeconds;
};

// A SAM Data answer: `peer` (at `from`) holds `id`. The core does not take
// it as data held (the bytes travel over HTTP, from the peer's relay); the
// edge fetches them and calls OnFetched.
struct DataOffer {
  uint64_t id = 0;
  uint64_t peer = 0;
  proto::Address from;
};

class SegmentCore {
 public:
  explicit SegmentCore(SegmentConfig cfg, SamStable stable = {});
  SegmentCore(const SegmentCore&) = delete;  // the election keeps a pointer to the SAM core
  SegmentCore& operator=(const SegmentCore&) = delete;

  // proto::Core
  void Start(proto::Micros now, proto::Effects* out);
  void OnDatagram(proto::Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out);
  void OnTimer(proto::Micros now, proto::Effects* out);

  // The data of `id` is held here (the edge found it in the spool).
  void OnData(uint64_t id, uint64_t ts);
  // A SAM Data message from `from` for ids the edge has now fetched (the
  // bytes are in the spool): fed to the SAM core as if it came now.
  void OnFetched(proto::Micros now, const proto::Address& from, uint64_t id, proto::Effects* out);

  Election& election() { return election_; }
  const Election& election() const { return election_; }
  Sam* sam() { return sam_ ? &*sam_ : nullptr; }
  const Sam* sam() const { return sam_ ? &*sam_ : nullptr; }
  uint64_t sam_rejected() const { return sam_rejected_; }
  // Data answers heard since the last call (drained).
  std::vector<DataOffer> TakeOffers();

  // The envelope, for tests and the simulator.
  static std::string Seal(std::string_view sam_bytes, const GroupKey* key, uint64_t counter);
  static bool IsSam(std::string_view bytes);

 private:
  void Merge(proto::Effects* into, proto::Effects& from, bool sam);
  void Reschedule(proto::Micros now, proto::Effects* out);
  bool Open(proto::Micros now, std::string_view bytes, std::string_view* sam_bytes);
  void Hello(proto::Micros now, proto::Effects* out);
  uint64_t NextCounter();

  SegmentConfig cfg_;
  std::optional<Sam> sam_;
  Election election_;
  proto::Micros election_wake_ = proto::kNever, sam_wake_ = proto::kNever, hello_wake_ = proto::kNever;
  uint64_t last_counter_ = 0;
  struct Window {
    uint64_t high = 0, bits = 0;
  };
  std::map<uint64_t, Window> replay_;  // by the counter's sender (the SAM message's)
  uint64_t sam_rejected_ = 0;
  proto::Micros now_ = 0;
  std::vector<DataOffer> offers_;
};

}  // namespace cm::leader
