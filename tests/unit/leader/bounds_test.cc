// An unkeyed group refuses messages whose priority or epoch is out of
// bounds (election.h: kMaxPriority, kMaxEpoch, kMaxEpochJump): a forged
// priority 0xffffffff does not take the leadership, and a forged epoch of
// 2^64-1 (or one far above the group's) neither moves nor wraps the epoch.
#include <gtest/gtest.h>

#include <limits>

#include "leader/election.h"
#include "leader/wire.h"
#include "sim_harness.h"

namespace cm::leader::testing {
namespace {

using proto::kSeconds;

constexpr uint64_t kForger = 999999;

// A segment of three led by node 2 (the strongest), settled.
void Settle(Sim* s) {
  AddSegment(s, {50, 100, 150}, 3);
  s->RunUntil(20 * kSeconds);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(s->core(i).leader(), NodeId(2)) << Dump(*s);
}

// Sends a forged Leader Alive to every node, then lets the segment run on.
void Forge(Sim* s, uint32_t priority, uint64_t epoch) {
  Message m;
  m.type = MsgType::kAlive;
  m.sender = kForger;
  m.epoch = epoch;
  m.priority = priority;
  m.addr = proto::Address{0xc6120063u, 7400};
  m.interval_us = 1000000;
  m.dead_intervals = 3;
  m.beat = 1;
  std::string bytes = Encode(m);
  for (int i = 0; i < s->size(); ++i) {
    proto::Effects fx;
    s->core(i).OnDatagram(s->now(), m.addr, bytes, &fx);
  }
  s->RunUntil(s->now() + 5 * kSeconds);
}

TEST(LeaderBounds, ForgedPriorityAboveTheRangeDoesNotTakeOver) {
  Sim s(3, sim::NetParams{});
  Settle(&s);
  uint64_t epoch = s.core(2).epoch();
  Forge(&s, 0xffffffffu, epoch + 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s.core(i).leader(), NodeId(2)) << Dump(s);
    EXPECT_EQ(s.core(i).epoch(), epoch);
    EXPECT_GT(s.core(i).rejected(), 0u);
  }
  EXPECT_EQ(s.core(2).state(), State::kLeader);
}

TEST(LeaderBounds, ForgedMaximalEpochNeitherMovesNorWrapsTheGroup) {
  Sim s(4, sim::NetParams{});
  Settle(&s);
  uint64_t epoch = s.core(2).epoch();
  Forge(&s, 10, std::numeric_limits<uint64_t>::max());
  Forge(&s, 10, epoch + kMaxEpochJump + 1);
  Forge(&s, 10, kMaxEpoch + 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s.core(i).leader(), NodeId(2)) << Dump(s);
    EXPECT_EQ(s.core(i).epoch(), epoch) << Dump(s);
    EXPECT_EQ(s.core(i).rejected(), 3u);
  }
}

TEST(LeaderBounds, EpochWithinTheJumpIsStillFollowed) {
  // A healed partition's higher term is within the bound: the leader leads above it.
  Sim s(5, sim::NetParams{});
  Settle(&s);
  uint64_t epoch = s.core(2).epoch();
  Forge(&s, 10, epoch + kMaxEpochJump);
  EXPECT_EQ(s.core(2).state(), State::kLeader);
  EXPECT_GT(s.core(2).epoch(), epoch + kMaxEpochJump) << Dump(s);
  EXPECT_EQ(s.core(0).rejected(), 0u);
}

}  // namespace
}  // namespace cm::leader::testing
