// Election and registration timing, in one block with units in the names.
#pragma once

#include "proto/core.h"

namespace cm::leader {

struct Timers {
  proto::Micros interval = proto::kSeconds;  // Leader Alive period
  int dead_intervals = 3;                    // missed intervals before the leader is dead
  // Group evidence (docs/protocol/leader.md): a member that has peers to
  // vouch for the leader claims after hearing no heartbeat, from the leader
  // or vouched for by a peer, for group_dead (plus its skew). Its claim names
  // the newest heartbeat it knows; a peer that heard a newer one within
  // group_dead answers with a Vouch, and the claimant goes back to following.
  // At most `vouchers` peers (chosen per claim by a hash) answer one claim.
  proto::Micros group_dead = 2040 * proto::kMillis;  // two heartbeats and a jitter allowance
  int vouchers = 8;
  // The claim is sent claim_sends..claim_sends_max times over its voting
  // window, as many as it takes for the chance that every answer of a live
  // leader and its vouchers is lost to fall below vote_fail_target at the
  // estimated loss; if even claim_sends_max copies do not, the window lasts
  // one more heartbeat interval (a live leader's next heartbeat answers).
  int claim_sends_max = 16;
  double vote_fail_target = 1e-6;
  // Loss-adaptive dead interval (alone, or with fewer than two peers): a member estimates the Leader Alive loss rate
  // p from gaps in the heartbeat numbers (EWMA, weight loss_weight per beat)
  // and waits k = max(dead_intervals, smallest k with q^k < dead_miss_target)
  // intervals, at most dead_intervals_max, where q = p + two standard
  // deviations of the estimate. Without loss k = dead_intervals.
  int dead_intervals_max = 8;
  double dead_miss_target = 1e-4;
  double loss_weight = 1.0 / 20;
  // Extra wait after the dead intervals: skew_min for the strongest priority,
  // skew_max for the weakest, linear in between; a recently deposed leader
  // uses deposed_skew (it reclaims first).
  proto::Micros skew_min = 20 * proto::kMillis;
  proto::Micros skew_max = 100 * proto::kMillis;
  proto::Micros deposed_skew = 0;
  // Voting window: a claim heard by no stronger candidate for this long wins.
  // Its copies go out over the first half; the second is for the answers
  // (a busy host answers a few milliseconds late).
  proto::Micros vote_min = 40 * proto::kMillis;
  proto::Micros vote_max = 40 * proto::kMillis;
  int claim_sends = 3;  // a claim is sent at least this many times
  // Registration: members refresh every member_refresh; the leader drops a
  // member silent for member_expiry, or longer under loss: it estimates each
  // member's loss from the gaps in its registration numbers and waits until
  // k refreshes lost in a row have a chance below member_miss_target (the
  // estimate plus two standard deviations), at most member_expiry_max. It
  // multicasts its list list_quiet after the last change, and every
  // list_period anyway.
  proto::Micros member_refresh = 3 * proto::kSeconds;
  proto::Micros member_expiry = 10 * proto::kSeconds;
  proto::Micros member_expiry_max = 40 * proto::kSeconds;
  double member_miss_target = 1e-6;
  proto::Micros list_quiet = proto::kSeconds;
  proto::Micros list_period = 5 * proto::kSeconds;
  proto::Micros register_backoff = 500 * proto::kMillis;  // random 0..this before (re)registering

  proto::Micros DeadInterval() const { return dead_intervals * interval + skew_max; }
};

// An upper estimate of a loss rate p learned by an EWMA of weight w: p plus
// two standard deviations of the estimate, at most 1.
double LossUpper(double p, double w);
// The smallest k >= base with LossUpper(p, w)^k < target, at most cap.
int LossRun(double p, double w, int base, int cap, double target);

// Defaults scaled to a heartbeat interval (1 s gives the defaults above;
// group_dead, the skews and the voting window are bounded in milliseconds,
// timers.cc).
Timers ScaledTimers(proto::Micros interval);
// The source document's values: reclaim after 5 s, initial claim after 10 s,
// a 10-15 s voting window.
Timers SourceTimers();

}  // namespace cm::leader
