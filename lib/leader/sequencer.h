// Room for the leader being the group's sequencer (SAM ordering, a later
// issue). The election core calls these hooks; nothing implements them yet.
#pragma once

#include <cstdint>

namespace cm::leader {

class Sequencer {
 public:
  virtual ~Sequencer() = default;
  // Called when this node becomes leader (epoch) or stops being leader.
  virtual void OnLeadership(bool leader, uint64_t epoch) = 0;
  // The highest ordered number, carried in every Leader Alive so members see gaps.
  virtual uint64_t HighestSequence() const = 0;
};

}  // namespace cm::leader
