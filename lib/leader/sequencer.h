// The leader is also its group's sequencer (SAM ordering,
// docs/protocol/ordering.md). The election core calls these hooks; the SAM
// core (leader/sam.h, class Sam) implements them. Its Leader Alive carries
// HighestSequence() in `sequence`, and members expose what they heard as
// Election::committed_seq().
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
