#include "leader/priority.h"

#include <algorithm>

namespace cm::leader {

uint32_t QuantizeSteps(const Measurements& m) {
  uint32_t s = 0;
  s += m.load_per_cpu < 0.25 ? 3 : m.load_per_cpu < 0.5 ? 2 : m.load_per_cpu < 1.0 ? 1 : 0;
  s += m.free_disk_mb >= 100 * 1024 ? 3 : m.free_disk_mb >= 10 * 1024 ? 2 : m.free_disk_mb >= 1024 ? 1 : 0;
  s += m.uptime >= 24 * 3600 * proto::kSeconds ? 2 : m.uptime >= 3600 * proto::kSeconds ? 1 : 0;
  s += m.content_current ? 2 : 0;
  return std::min(s, kMaxMeasuredSteps);
}

uint32_t PriorityDamper::Update(uint32_t steps) {
  steps = std::min(steps, kMaxMeasuredSteps);
  if (!primed_) {
    primed_ = true;
    value_ = steps;
    return value_;
  }
  const uint32_t delta = steps > value_ ? steps - value_ : value_ - steps;
  if (delta < min_delta_) {
    pending_count_ = 0;  // back within one step: the change did not hold
    return value_;
  }
  // Consecutive far samples on the same side count towards one change; the
  // change goes to the least extreme of them (noise on top of a real shift
  // neither blocks it nor overshoots).
  const bool up = steps > value_;
  if (pending_count_ > 0 && up == pending_up_) {
    ++pending_count_;
    pending_ = up ? std::min(pending_, steps) : std::max(pending_, steps);
  } else {
    pending_up_ = up;
    pending_ = steps;
    pending_count_ = 1;
  }
  if (pending_count_ >= hold_) {
    value_ = pending_;
    pending_count_ = 0;
  }
  return value_;
}

}  // namespace cm::leader
