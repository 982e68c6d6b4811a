// cm-leader's SAM edge (docs/protocol/ordering.md "The edge"): what the SAM
// core (leader/sam.h, run inside leader::SegmentCore) needs from the host.
//  - Data: the ids are the serials of the assignments in the relay's spool
//    (<spool>/<serial>.cma). A complete file found there is OnData(serial).
//  - Stable storage: <state>/stable (leader/sam_stable.h), written synced and
//    atomically whenever stable_version() changed, before the call's
//    datagrams leave (Persist, called from the core wrapper).
//  - Repair: a SAM Data answer (peer P holds serial S) makes the fetch thread
//    GET http://P:<relay_port>/v1/content/S from P's relay into the spool;
//    then the core hears Data(S) (OnFetched) and may deliver.
//  - Delivery: numbers the core delivered are applied in order by the apply
//    thread. A serial this server's relay received itself (a push it took
//    part in) is the relay's to apply: skipped here. A serial repaired from a
//    peer is applied with cm-apply (signature and base checked there) only
//    when the CCM's order targeted this server (<serial>.cma.to, here or from
//    a peer's GET /v1/targets/S): ordered delivery never widens a push the
//    CCM restricted. Numbers below an installed checkpoint are fetched from
//    peers while they hold them; past that the server stays as it is (the
//    base checks refuse what follows) until the CCM converges it.
//    The applied number is kept in <state>/applied.
// Threads: the driver thread calls everything but the two workers, which
// never touch the core.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "leader/segment_core.h"
#include "util/status.h"

namespace cm::leaderrun {

struct SamEdgeOptions {
  std::string spool;       // the relay's spool
  std::string state_dir;   // default <spool>/.sam
  std::string root;        // content root ("" = order only, apply nothing)
  std::string name;        // this server's name (as in the CCM's sites file): the targets check
  std::string cm_apply = "cm-apply";
  std::string pub_key;     // passed to cm-apply
  uint16_t relay_port = 7710;
  proto::Address self;     // this host (its relay listens on self.ip:relay_port)
};

struct SamEdgeStatus {
  uint64_t applied = 0;        // the highest number whose delivery is done here
  uint64_t repaired = 0;       // serials applied after a repair from a peer
  uint64_t fetched = 0;        // serials fetched from peers
  std::string last;            // the last delivery's outcome, one line
};

class SamEdge {
 public:
  static Result<std::unique_ptr<SamEdge>> Open(const SamEdgeOptions& o);
  ~SamEdge();

  // What the core starts from (read at Open).
  const leader::SamStable& loaded() const { return loaded_; }

  // Driver thread. Writes stable() when its version changed since the last
  // write (I4). A failed write is fatal to ordering: the error is returned.
  Status Persist(const leader::Sam& sam);
  // Spool files not yet told to the core (at most every 500 ms).
  void Scan(proto::Micros now, leader::SegmentCore* core);
  // Data answers: fetch those ids from the peers that offered them.
  void Offer(const std::vector<leader::DataOffer>& offers);
  // Hands the apply thread every number delivered since the last call.
  void Deliver(const leader::Sam& sam);
  // Fetches that completed since the last call: (serial, the peer's address).
  std::vector<leader::DataOffer> TakeFetched();
  SamEdgeStatus status() const;

 private:
  struct Impl;
  explicit SamEdge(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  leader::SamStable loaded_;
};

}  // namespace cm::leaderrun
