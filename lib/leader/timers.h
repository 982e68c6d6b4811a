// Election and registration timing, in one block with units in the names.
#pragma once

#include "proto/core.h"

namespace cm::leader {

struct Timers {
  proto::Micros interval = proto::kSeconds;  // Leader Alive period
  int dead_intervals = 3;                    // missed intervals before the leader is dead
  // Loss-adaptive dead interval: a member estimates the Leader Alive loss rate
  // p from gaps in the heartbeat numbers (EWMA, weight loss_weight per beat)
  // and waits k = max(dead_intervals, smallest k with q^k < dead_miss_target)
  // intervals, at most dead_intervals_max, where q = p + two standard
  // deviations of the estimate. Without loss k = dead_intervals.
  int dead_intervals_max = 8;
  double dead_miss_target = 1e-4;
  double loss_weight = 1.0 / 20;
  // Above this estimated loss a claim's voting window lasts at least one
  // heartbeat interval (so a live leader's heartbeat can answer it).
  double lossy = 0.02;
  // Extra wait after the dead intervals: skew_min for the strongest priority,
  // skew_max for the weakest, linear in between; a recently deposed leader
  // uses deposed_skew (it reclaims first).
  proto::Micros skew_min = 20 * proto::kMillis;
  proto::Micros skew_max = 250 * proto::kMillis;
  proto::Micros deposed_skew = 0;
  // Voting window: a claim heard by no stronger candidate for this long wins.
  proto::Micros vote_min = 100 * proto::kMillis;
  proto::Micros vote_max = 100 * proto::kMillis;
  int claim_sends = 3;  // a claim is sent this many times, spread over the voting window
  // Registration: members refresh every member_refresh; the leader drops a
  // member silent for member_expiry; it multicasts its list list_quiet after
  // the last change, and every list_period anyway.
  proto::Micros member_refresh = 3 * proto::kSeconds;
  proto::Micros member_expiry = 10 * proto::kSeconds;
  proto::Micros list_quiet = proto::kSeconds;
  proto::Micros list_period = 5 * proto::kSeconds;
  proto::Micros register_backoff = 500 * proto::kMillis;  // random 0..this before (re)registering

  proto::Micros DeadInterval() const { return dead_intervals * interval + skew_max; }
};

// Defaults scaled to a heartbeat interval (1 s gives the defaults above).
Timers ScaledTimers(proto::Micros interval);
// The source document's values: reclaim after 5 s, initial claim after 10 s,
// a 10-15 s voting window.
Timers SourceTimers();

}  // namespace cm::leader
