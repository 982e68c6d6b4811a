#include "leader/observer.h"

#include <gtest/gtest.h>

namespace cm::leader {
namespace {

using proto::kMillis;
using proto::kSeconds;

Message Alive(uint64_t sender, uint64_t epoch) {
  Message m;
  m.type = MsgType::kAlive;
  m.sender = sender;
  m.epoch = epoch;
  m.addr = {0x7f000001, 7400};
  m.interval_us = static_cast<uint32_t>(kSeconds);
  m.dead_intervals = 3;
  return m;
}

TEST(Observer, NoLeaderHeardEndsAtTheTimeout) {
  Observer o(nullptr, 4 * kSeconds, false);
  proto::Effects fx;
  o.Start(0, &fx);
  EXPECT_EQ(fx.wake_at, 4 * kSeconds);
  fx.Clear();
  o.OnTimer(4 * kSeconds, &fx);
  EXPECT_TRUE(o.done());
  EXPECT_FALSE(o.leader());
  EXPECT_TRUE(fx.sends.empty());
}

TEST(Observer, KeepsTheNewestEpochHeardWithinTheExtraListening) {
  Observer o(nullptr, 4 * kSeconds, false);
  proto::Effects fx;
  o.Start(0, &fx);
  o.OnDatagram(100 * kMillis, {}, Encode(Alive(7, 3)), &fx);
  EXPECT_EQ(fx.wake_at, 100 * kMillis + 1100 * kMillis);  // 1.1 intervals more
  o.OnDatagram(200 * kMillis, {}, Encode(Alive(9, 4)), &fx);
  o.OnDatagram(300 * kMillis, {}, Encode(Alive(7, 3)), &fx);  // a stale leader
  o.OnTimer(1200 * kMillis, &fx);
  ASSERT_TRUE(o.done());
  EXPECT_EQ(o.leader()->sender, 9u);
}

// Two leaders at once (a split brain): both are reported, the newest epoch
// first; a registration's name is kept.
TEST(Observer, ReportsEveryLeaderHeardAndMembersNames) {
  Observer o(nullptr, 4 * kSeconds, false);
  proto::Effects fx;
  o.Start(0, &fx);
  o.OnDatagram(100 * kMillis, {}, Encode(Alive(7, 3)), &fx);
  o.OnDatagram(150 * kMillis, {}, Encode(Alive(9, 5)), &fx);
  o.OnDatagram(200 * kMillis, {}, Encode(Alive(7, 3)), &fx);
  Message reg;
  reg.type = MsgType::kRegister;
  reg.sender = 4;
  reg.leader = 9;
  reg.name = "web4";
  o.OnDatagram(250 * kMillis, {}, Encode(reg), &fx);
  const std::vector<Message> all = o.leaders();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].sender, 9u);
  EXPECT_EQ(all[1].sender, 7u);
  EXPECT_EQ(o.leader()->sender, 9u);
  EXPECT_EQ(o.names().at(4), "web4");
}

TEST(Observer, WantingMembersEndsWhenTheLeadersListArrives) {
  Observer o(nullptr, 4 * kSeconds, true);
  proto::Effects fx;
  o.Start(0, &fx);
  o.OnDatagram(10 * kMillis, {}, Encode(Alive(7, 3)), &fx);
  Message list;
  list.type = MsgType::kMembers;
  list.sender = 8;  // not the leader: ignored
  list.members = {1, 2};
  o.OnDatagram(20 * kMillis, {}, Encode(list), &fx);
  EXPECT_FALSE(o.done());
  list.sender = 7;
  list.members = {1, 2, 7};
  o.OnDatagram(30 * kMillis, {}, Encode(list), &fx);
  EXPECT_TRUE(o.done());
  EXPECT_EQ(o.members(), (std::vector<uint64_t>{1, 2, 7}));
}

TEST(Observer, WithAKeyOnlyAuthenticatedMessagesCount) {
  GroupKey k{};
  k[0] = 5;
  Observer o(&k, 4 * kSeconds, false);
  proto::Effects fx;
  o.Start(0, &fx);
  o.OnDatagram(10 * kMillis, {}, Encode(Alive(7, 3)), &fx);
  EXPECT_FALSE(o.leader());
  o.OnDatagram(20 * kMillis, {}, Encode(Alive(7, 3), &k, 1), &fx);
  EXPECT_TRUE(o.leader());
}

}  // namespace
}  // namespace cm::leader
