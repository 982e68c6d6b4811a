// The cm-mcast sender's rate control: a pure core (no clock: time comes in
// as arguments). Rate in, receivers' feedback in, rate out.
//
// Random loss (a lossy NIC, a firewall dropping at random, Wi-Fi) must not
// cut the rate: parity repairs it. Congestion must. The signal that random
// loss cannot fake is queueing delay: every data frame carries the sender's
// clock, each receiver reports the least one-way delay of the frames it
// heard since its last report over the least of the last ~10 s (the offset
// of the two clocks cancels). A bottleneck sent more than it carries queues
// the excess, so every receiver behind it sees the delay grow. The second
// signal is a loss rate well above the receiver's own random loss (learnt
// while the path was not congested): a bottleneck whose buffer is too small
// to show delay drops instead.
//
// Every epoch (100 ms) the controller looks at the receivers that reported
// in it. The group is congested when more than half of them are (so one
// receiver behind its own slow link does not slow the others: it is named
// slow instead and finished by unicast). Start-up multiplies the rate by 1.5
// per epoch until the first congestion. Congested, with an estimate of what
// the receivers were delivered (the bottleneck's rate, corrected for their
// random loss): 0.9x it until the queue drained, then at it, probing
// upwards by 1 % per clear epoch at first. Without an estimate: 0.8x, held
// for two epochs; not congested, +3 % per epoch, growing. The cap (--rate)
// is never exceeded; with --rate the controller starts at the cap.
// docs/protocol/mcast.md, "Rate", has the numbers and their reasons.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "proto/core.h"

namespace cm::mcast {

using proto::Micros;

struct RateConfig {
  uint64_t cap_bps = 10'000'000'000;  // never above (--rate)
  uint64_t start_bps = 0;             // first rate; 0: start at the cap (no start-up)
  uint64_t floor_bps = 500'000;       // never below
  Micros target = 10 * proto::kMillis;  // queueing delay that means congestion
  Micros epoch = 100 * proto::kMillis;  // decision period
};

struct RateDecision {
  bool changed = false;
  std::vector<std::string> slow;  // receivers newly found behind their own slow link
};

class RateControl {
 public:
  explicit RateControl(RateConfig cfg);

  // One receiver's report: frames heard and lost since its previous report
  // and its queueing delay (meaningful only when heard > 0).
  void OnReport(Micros now, const std::string& id, uint32_t heard, uint32_t lost, Micros qdelay);
  // A receiver that no longer counts (complete, failed, or finished by unicast).
  void Forget(const std::string& id);
  // Decides once per epoch (earlier calls return {}). frame_bits: wire bits
  // of one data frame (for the delivered rate); group: receivers the sender
  // serves by multicast now, heard from or not (a majority is of these).
  RateDecision Tick(Micros now, uint64_t frame_bits, size_t group);

  uint64_t rate() const { return rate_; }
  bool starting() const { return starting_; }
  uint64_t congestion_epochs() const { return congested_epochs_; }

 private:
  struct Peer {
    // This epoch.
    uint32_t heard = 0, lost = 0;
    uint32_t span_heard = 0;   // heard in the reports that `span` covers
    Micros qdelay = -1;        // least reported this epoch; -1: none
    Micros span = 0;           // time covered by this epoch's reports
    Micros last_report = -1;
    // Across epochs.
    double base_loss = -1;     // loss while not congested; -1: unknown
    uint64_t base_lost = 0, base_frames = 0;  // ... its counts
    int own_congestion = 0;    // consecutive epochs congested while the group was not
    bool slow = false;
  };

  RateConfig cfg_;
  uint64_t rate_;
  bool starting_;
  Micros next_tick_ = 0, hold_until_ = 0;
  uint64_t congested_epochs_ = 0;
  int clear_epochs_ = 0;  // uncongested epochs in a row
  bool draining_ = false;  // under the delivered rate until the queue drained
  int drain_epochs_ = 0, drain_len_ = 1;
  double drain_est_ = 0;   // the delivered rate the drain measured
  bool cruising_ = false;  // a delivered rate was measured: probe above it gently
  std::map<std::string, Peer> peers_;
};

}  // namespace cm::mcast
