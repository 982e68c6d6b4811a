#include "leader/timers.h"

namespace cm::leader {

Timers ScaledTimers(proto::Micros interval) {
  Timers t;
  auto scale = [&](proto::Micros v) { return v * interval / proto::kSeconds; };
  t.interval = interval;
  t.skew_min = scale(t.skew_min);
  t.skew_max = scale(t.skew_max);
  t.vote_min = scale(t.vote_min);
  t.vote_max = scale(t.vote_max);
  t.member_refresh = scale(t.member_refresh);
  t.member_expiry = scale(t.member_expiry);
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
  return t;
}

}  // namespace cm::leader
