// The simulator's delivery rules: determinism, groups, loss, duplication,
// blocks, crashes, restarts, streams in order and timers.
#include "sim/simulator.h"

#include <gtest/gtest.h>

#include <string>

namespace cm::sim {
namespace {

using proto::Address;
using proto::Micros;

const Address kGroup{0xe0000001, 9000};
Address Host(int i) { return Address{0xc6120000u + static_cast<uint32_t>(i), 9000}; }

// Sends `count` numbered datagrams to `to` (one per `period`) and logs what it receives.
struct Chatter {
  Address to;
  int count = 0;
  Micros period = 1000;
  proto::Transport transport = proto::Transport::kDatagram;
  int sent = 0;
  std::vector<std::string> got;
  void Start(Micros now, proto::Effects* out) { out->wake_at = count ? now : proto::kNever; }
  void OnDatagram(Micros now, const Address&, std::string_view b, proto::Effects* out) {
    got.emplace_back(b);
    out->events.push_back("got " + std::string(b));
    out->wake_at = sent < count ? now : proto::kNever;
  }
  void OnTimer(Micros now, proto::Effects* out) {
    if (sent < count) out->sends.push_back({to, std::to_string(sent++), transport});
    out->wake_at = sent < count ? now + period : proto::kNever;
  }
};

std::unique_ptr<Chatter> Sender(Address to, int n, proto::Transport t = proto::Transport::kDatagram) {
  auto c = std::make_unique<Chatter>();
  c->to = to;
  c->count = n;
  c->transport = t;
  return c;
}

TEST(Simulator, GroupSendReachesEveryJoinedNodeButTheSender) {
  Simulator<Chatter> sim(1, NetParams{});
  int a = sim.AddNode(Host(1), Sender(kGroup, 3));
  int b = sim.AddNode(Host(2), std::make_unique<Chatter>());
  int c = sim.AddNode(Host(3), std::make_unique<Chatter>());
  int d = sim.AddNode(Host(4), std::make_unique<Chatter>());
  for (int n : {a, b, c}) sim.Join(n, kGroup);
  sim.RunUntil(proto::kSeconds);
  EXPECT_EQ(sim.core(b).got.size(), 3u);
  EXPECT_EQ(sim.core(c).got.size(), 3u);
  EXPECT_TRUE(sim.core(a).got.empty());
  EXPECT_TRUE(sim.core(d).got.empty());
  EXPECT_EQ(sim.events(b).size(), 3u);
}

std::vector<std::string> LossyRun(uint64_t seed) {
  NetParams net;
  net.loss = 0.3;
  net.duplicate = 0.2;
  Simulator<Chatter> sim(seed, net);
  sim.AddNode(Host(1), Sender(Host(2), 200));
  int b = sim.AddNode(Host(2), std::make_unique<Chatter>());
  sim.RunUntil(proto::kSeconds);
  return sim.core(b).got;
}

TEST(Simulator, SameSeedSameRunOtherSeedOtherRun) {
  EXPECT_EQ(LossyRun(7), LossyRun(7));
  EXPECT_NE(LossyRun(7), LossyRun(8));
}

TEST(Simulator, LossDuplicationAndReorderingHappenAtRoughlyTheSetRates) {
  NetParams net;
  net.loss = 0.25;
  net.duplicate = 0.1;
  net.min_delay = 0;
  net.max_delay = 5000;  // longer than the send period: reordering
  Simulator<Chatter> sim(3, net);
  sim.AddNode(Host(1), Sender(Host(2), 4000));
  int b = sim.AddNode(Host(2), std::make_unique<Chatter>());
  sim.RunUntil(10 * proto::kSeconds);
  const auto& got = sim.core(b).got;
  std::set<std::string> unique(got.begin(), got.end());
  EXPECT_NEAR(unique.size() / 4000.0, 0.75, 0.03);
  EXPECT_NEAR(double(got.size() - unique.size()) / unique.size(), 0.1, 0.03);
  bool reordered = false;
  for (size_t i = 1; i < got.size(); ++i) reordered |= std::stoi(got[i]) < std::stoi(got[i - 1]);
  EXPECT_TRUE(reordered);
}

TEST(Simulator, ExtraLossAtOneNodeOnly) {
  Simulator<Chatter> sim(4, NetParams{});
  int a = sim.AddNode(Host(1), Sender(kGroup, 1000));
  int b = sim.AddNode(Host(2), std::make_unique<Chatter>());
  int c = sim.AddNode(Host(3), std::make_unique<Chatter>());
  for (int n : {a, b, c}) sim.Join(n, kGroup);
  sim.SetLoss(c, 0.5);
  sim.RunUntil(2 * proto::kSeconds);
  EXPECT_EQ(sim.core(b).got.size(), 1000u);
  EXPECT_NEAR(sim.core(c).got.size() / 1000.0, 0.5, 0.06);
}

TEST(Simulator, BlockIsOneWayAndHealRestores) {
  Simulator<Chatter> sim(5, NetParams{});
  int a = sim.AddNode(Host(1), Sender(Host(2), 10));
  int b = sim.AddNode(Host(2), Sender(Host(1), 10));
  sim.Block(a, b);
  sim.RunUntil(proto::kSeconds);
  EXPECT_TRUE(sim.core(b).got.empty());
  EXPECT_EQ(sim.core(a).got.size(), 10u);
  sim.Heal();
  sim.Restart(a, Sender(Host(2), 10));
  sim.RunUntil(2 * proto::kSeconds);
  EXPECT_EQ(sim.core(b).got.size(), 10u);
}

TEST(Simulator, CrashedNodeGetsNothingAndRestartStartsAFreshCore) {
  Simulator<Chatter> sim(6, NetParams{});
  int a = sim.AddNode(Host(1), Sender(Host(2), 100));
  int b = sim.AddNode(Host(2), std::make_unique<Chatter>());
  sim.RunUntil(50 * proto::kMillis);
  sim.Crash(b);
  EXPECT_FALSE(sim.alive(b));
  size_t before = sim.core(b).got.size();
  sim.RunUntil(70 * proto::kMillis);
  EXPECT_EQ(sim.core(b).got.size(), before);
  sim.Restart(b, std::make_unique<Chatter>());
  EXPECT_TRUE(sim.alive(b));
  sim.RunUntil(proto::kSeconds);
  EXPECT_GT(sim.core(b).got.size(), 0u);
  EXPECT_LT(sim.core(b).got.size(), 40u);
  (void)a;
}

TEST(Simulator, StreamMessagesArriveOnceAndInOrderDespiteLoss) {
  NetParams net;
  net.loss = 0.5;
  net.duplicate = 0.5;
  net.min_delay = 0;
  net.max_delay = 50000;
  Simulator<Chatter> sim(7, net);
  sim.AddNode(Host(1), Sender(Host(2), 300, proto::Transport::kStream));
  int b = sim.AddNode(Host(2), std::make_unique<Chatter>());
  sim.RunUntil(5 * proto::kSeconds);
  ASSERT_EQ(sim.core(b).got.size(), 300u);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(sim.core(b).got[i], std::to_string(i));
}

TEST(Simulator, StepReturnsFalseWhenIdleAndTimeAdvancesToRunUntil) {
  Simulator<Chatter> sim(8, NetParams{});
  sim.AddNode(Host(1), std::make_unique<Chatter>());
  EXPECT_FALSE(sim.Step());
  sim.RunUntil(123);
  EXPECT_EQ(sim.now(), 123);
}

}  // namespace
}  // namespace cm::sim
