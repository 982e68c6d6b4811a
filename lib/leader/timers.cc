#include "leader/timers.h"

#include <algorithm>
#include <cmath>

namespace cm::leader {

Timers ScaledTimers(proto::Micros interval) {
  Timers t;
  auto scale = [&](proto::Micros v) { return v * interval / proto::kSeconds; };
  t.interval = interval;
  t.member_refresh = scale(t.member_refresh);
  t.member_expiry = scale(t.member_expiry);
  t.member_expiry_max = scale(t.member_expiry_max);
  // Some timers guard against missed heartbeats, others against the hosts'
  // and the network's delays, which do not grow with the interval:
  // group_dead is two heartbeats plus a jitter allowance (half a heartbeat,
  // at most 40 ms); the skews are 0.02-0.25 I, at most 20-100 ms; the voting
  // window (the claim's copies, then time for the answers) is 40 ms at any
  // I: the answers of a leader and peers on busy hosts (scheduling delays
  // of tens of ms at a load of 10 on two cores) do not come sooner at a
  // shorter heartbeat. At 0.1 s: 0.24 s, 2-25 ms; at 1 s: 2.04 s, 20-100 ms.
  t.group_dead = 2 * interval + std::min(interval / 2, 40 * proto::kMillis);
  t.skew_min = std::min(interval / 50, 20 * proto::kMillis);
  t.skew_max = std::min(interval / 4, 100 * proto::kMillis);
  t.vote_min = t.vote_max = 40 * proto::kMillis;
  t.list_quiet = scale(t.list_quiet);
  t.list_period = scale(t.list_period);
  t.register_backoff = scale(t.register_backoff);
  return t;
}

Timers SourceTimers() {
  Timers t;
  t.interval = proto::kSeconds;
  t.dead_intervals = 3;
  t.deposed_skew = 2 * proto::kSeconds;  // 3 s + 2 s = the 5 s minimum reclaim
  t.skew_min = 7 * proto::kSeconds;      // 3 s + 7 s = the 10 s initial claim
  t.skew_max = 8 * proto::kSeconds;
  t.vote_min = 10 * proto::kSeconds;
  t.vote_max = 15 * proto::kSeconds;
  t.group_dead = 3 * proto::kSeconds;
  return t;
}

double LossUpper(double p, double w) {
  return std::min(1.0, p + 2 * std::sqrt(p * (1 - p) * w / (2 - w)));
}

int LossRun(double p, double w, int base, int cap, double target) {
  int k = std::max(base, 1);
  cap = std::max(k, cap);
  const double q = LossUpper(p, w);
  double qk = std::pow(q, k);
  while (k < cap && qk >= target) {
    ++k;
    qk *= q;
  }
  return k;
}

}  // namespace cm::leader
