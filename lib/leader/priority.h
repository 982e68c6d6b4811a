// The measured part of a node's priority (0..65535, the low 16 bits of
// admin << 16 | measured): quantized into a few coarse steps, then damped so
// leadership does not flap when a host's load or disk wobbles.
// Pure: the tool reads /proc and statvfs and passes the numbers in.
#pragma once

#include <cstdint>

#include "proto/core.h"

namespace cm::leader {

// One sample of what the tool measured.
struct Measurements {
  double load_per_cpu = 0;       // 1-minute load average / online CPUs
  uint64_t free_disk_mb = 0;     // free space under the content root
  proto::Micros uptime = 0;      // how long this cm-leader has run (reliability)
  bool content_current = true;   // holds the newest content serial it knows of
};

// Each step of the measured priority is worth kMeasuredStep; at most
// kMaxMeasuredSteps steps (so the measured part stays below 65536).
constexpr uint32_t kMeasuredStep = 4096;
constexpr uint32_t kMaxMeasuredSteps = 15;

// Steps (0..kMaxMeasuredSteps): idle CPU 0..3 (load per CPU < 0.25 / 0.5 / 1),
// free disk 0..3 (>= 1 GB / 10 GB / 100 GB), uptime 0..2 (>= 1 h / 1 day),
// content current 0..2. The members a node knows are left out: in a converged
// segment every node knows the same list, and the count jumps at each
// election, which would tie the priority to the leadership it decides.
uint32_t QuantizeSteps(const Measurements& m);

// Hysteresis over quantized steps: the damped value changes only after `hold`
// consecutive samples all differ from it by at least `min_delta` steps on the
// same side; it then moves to the least extreme of those samples. So a signal
// that wobbles by one step, or jumps for fewer than `hold` samples, never
// changes the priority, and a sustained change of two or more steps does.
// Not thread-safe.
class PriorityDamper {
 public:
  explicit PriorityDamper(int hold = 3, uint32_t min_delta = 2) : hold_(hold), min_delta_(min_delta) {}
  // Feeds one sample (quantized steps); returns the damped steps. The first
  // sample is taken as is.
  uint32_t Update(uint32_t steps);
  uint32_t steps() const { return value_; }
  // The measured priority (steps * kMeasuredStep).
  uint32_t measured() const { return value_ * kMeasuredStep; }

 private:
  int hold_;
  uint32_t min_delta_;
  bool primed_ = false;
  uint32_t value_ = 0;
  uint32_t pending_ = 0;
  bool pending_up_ = false;
  int pending_count_ = 0;
};

}  // namespace cm::leader
