// The SAM core's edge cases, one member driven by hand: the wire, fencing of
// an old ballot, a restart from stable storage, the repair rate limit, a
// checkpoint install, numbering after k holders, recovery.
#include "leader/sam.h"

#include <gtest/gtest.h>

#include <random>

#include "sim_harness.h"

namespace cm::leader {
namespace {

using proto::kMillis;
using proto::Micros;
using sam::Ballot;
using sam::Entry;
using sam::Message;
using sam::Type;

const proto::Address kGroup{0xefff0101, 7500};
proto::Address Addr(uint64_t id) { return proto::Address{0xc6140000u + static_cast<uint32_t>(id), 7500}; }

SamConfig Config(uint64_t self) {
  SamConfig c;
  c.id = self;
  c.group = kGroup;
  for (uint64_t id = 1; id <= 5; ++id) c.members.push_back({id, Addr(id)});
  c.commit_servers = {1, 2, 3};
  return c;
}

// One core and the messages it sent.
struct Member {
  explicit Member(SamConfig c, SamStable st = {}) : core(std::move(c), std::move(st)) { Call([&] { core.Start(0, &fx); }); }
  Sam core;
  proto::Effects fx;
  std::vector<std::pair<proto::Address, Message>> sent;
  Micros now = 0;

  template <typename F>
  void Call(F f) {
    fx.Clear();
    f();
    for (const proto::Send& s : fx.sends) {
      Message m;
      EXPECT_TRUE(sam::Decode(s.bytes, &m));
      sent.push_back({s.to, m});
    }
  }
  void Tick(Micros dt = 100 * kMillis) {
    now += dt;
    Call([&] { core.OnTimer(now, &fx); });
  }
  void Hear(uint64_t from, const Message& m) {
    Call([&] { core.OnDatagram(now, Addr(from), sam::Encode(m), &fx); });
  }
  std::vector<Message> Sent(Type t, std::optional<proto::Address> to = std::nullopt) const {
    std::vector<Message> v;
    for (const auto& [a, m] : sent)
      if (m.type == t && (!to || a == *to)) v.push_back(m);
    return v;
  }
};

Message Msg(Type t, uint64_t sender, Ballot b = {}) {
  Message m;
  m.type = t;
  m.sender = sender;
  m.ballot = b;
  return m;
}

TEST(SamWire, RoundTripsAndRefusesAnythingMalformed) {
  Message m = Msg(Type::kPromise, 7, Ballot{3, 1, 7});
  m.n1 = 10;
  m.n2 = UINT64_MAX;
  m.n3 = 1u << 20;
  m.entries.push_back(Entry{11, 42, Ballot{2, 0, 5}, {1, 2}});
  m.entries.push_back(Entry{12, 0, sam::kChosen, {}});
  m.ids = {5, 6};
  const std::string b = sam::Encode(m);
  Message back;
  ASSERT_TRUE(sam::Decode(b, &back));
  EXPECT_EQ(back, m);
  for (size_t n = 0; n < b.size(); ++n) EXPECT_FALSE(sam::Decode(b.substr(0, n), &back)) << n;
  EXPECT_FALSE(sam::Decode(b + "x", &back));
  std::string v2 = b;
  v2[0] = 2;
  EXPECT_FALSE(sam::Decode(v2, &back));
  std::string bad_type = b;
  bad_type[1] = 99;
  EXPECT_FALSE(sam::Decode(bad_type, &back));
}

// Random mutations of valid messages: the parser never crashes, and whatever
// it accepts encodes back to bytes it parses to the same message.
TEST(SamWire, MutationsParseTotallyAndRoundTrip) {
  std::mt19937_64 rng(13);
  Message m = Msg(Type::kCkpt, 3, Ballot{1, 2, 3});
  m.n1 = 300;
  for (uint64_t i = 0; i < 20; ++i) m.entries.push_back(Entry{i, i * 977, Ballot{i, 0, 1}, {i % 5}});
  m.ids = {1, uint64_t{1} << 40};
  const std::string good = sam::Encode(m);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % b.size();
      switch (rng() % 3) {
        case 0: b[at] = static_cast<char>(rng()); break;
        case 1: b.erase(at, 1 + rng() % 3); break;
        default: b.insert(at, 1, static_cast<char>(rng())); break;
      }
      if (b.empty()) b = "x";
    }
    Message out, again;
    if (!sam::Decode(b, &out)) continue;
    ++accepted;
    ASSERT_TRUE(sam::Decode(sam::Encode(out), &again));
    EXPECT_EQ(again, out);
    EXPECT_LE(out.entries.size(), sam::kMaxEntries);
  }
  EXPECT_GT(accepted, 0);
}

TEST(Sam, CommitServerFencesAnOlderBallot) {
  Member cs(Config(1));
  Message rec = Msg(Type::kRecover, 4, Ballot{5, 0, 4});
  cs.Hear(4, rec);
  ASSERT_EQ(cs.Sent(Type::kPromise).size(), 1u);
  Message old = Msg(Type::kAssign, 5, Ballot{4, 0, 5});
  old.entries.push_back(Entry{1, 99, {}, {}});
  cs.Hear(5, old);
  EXPECT_TRUE(cs.Sent(Type::kAck).empty());
  ASSERT_EQ(cs.Sent(Type::kFenced, Addr(5)).size(), 1u);
  EXPECT_EQ(cs.Sent(Type::kFenced)[0].ballot, (Ballot{5, 0, 4}));
  EXPECT_TRUE(cs.core.stable().accepted.empty());
  // The fenced sequencer stops.
  Member seq(Config(5));
  seq.core.OnLeadership(true, 4);
  seq.Tick();
  EXPECT_TRUE(seq.core.leading());
  seq.Hear(1, cs.Sent(Type::kFenced)[0]);
  EXPECT_FALSE(seq.core.leading());
}

TEST(Sam, MemberRefusesHeartbeatsAndCommitsOfAnOlderBallot) {
  Member m(Config(4));
  Message alive = Msg(Type::kAlive, 2, Ballot{7, 0, 2});
  alive.n1 = 3;
  m.Hear(2, alive);
  EXPECT_EQ(m.core.known_committed(), 3u);
  Message stale = Msg(Type::kAlive, 1, Ballot{6, 0, 1});
  stale.n1 = 9;
  m.Hear(1, stale);
  Message commit = Msg(Type::kCommit, 1, Ballot{6, 0, 1});
  commit.entries.push_back(Entry{1, 55, {}, {}});
  m.core.OnData(55, 0);
  m.Hear(1, commit);
  EXPECT_EQ(m.core.known_committed(), 3u);
  EXPECT_EQ(m.core.delivered(), 0u);
  EXPECT_EQ(m.core.rejected(), 2u);
}

TEST(Sam, AppliesStrictlyInOrder) {
  Member m(Config(4));
  m.core.OnData(11, 0);
  m.core.OnData(12, 0);
  Message c2 = Msg(Type::kCommit, 1, Ballot{1, 0, 1});
  c2.entries.push_back(Entry{2, 12, {}, {}});
  m.Hear(1, c2);
  EXPECT_EQ(m.core.delivered(), 0u);
  Message c1 = c2;
  c1.entries = {Entry{1, 11, {}, {}}};
  m.Hear(1, c1);
  EXPECT_EQ(m.core.delivered(), 2u);
  EXPECT_EQ(m.core.stable().log.at(1), 11u);
  EXPECT_EQ(m.core.stable().log.at(2), 12u);
  EXPECT_EQ(m.core.state_hash(), sam::ChainHash(sam::ChainHash(0, 1, 11), 2, 12));
  m.Hear(1, c1);  // a duplicate changes nothing
  EXPECT_EQ(m.core.delivered(), 2u);
}

// A sequencer with commit servers 1..3 (it is 1), driven to commit one id.
TEST(Sam, NumbersAnIdOnlyOnceKMembersHoldItAndCommitsAfterTheQuorum) {
  Member s(Config(1));
  s.core.OnLeadership(true, 1);
  s.Tick();
  ASSERT_EQ(s.Sent(Type::kRecover).size(), 2u);  // to 2 and 3 (1 promised itself)
  Message p = Msg(Type::kPromise, 2, s.core.ballot());
  s.Hear(2, p);
  ASSERT_TRUE(s.core.sequencing());
  Message have = Msg(Type::kHave, 4);
  have.entries.push_back(Entry{0, 77, {}, {}});
  s.Hear(4, have);
  EXPECT_TRUE(s.Sent(Type::kAssign).empty()) << "one holder is not k=2";
  have.sender = 5;
  s.Hear(5, have);
  const auto assigns = s.Sent(Type::kAssign);
  ASSERT_FALSE(assigns.empty());
  EXPECT_EQ(assigns[0].entries.at(0).seq, 1u);
  EXPECT_EQ(assigns[0].entries.at(0).id, 77u);
  EXPECT_EQ(s.core.stable().next_seq, 2u) << "the number is in stable storage before the Assign";
  EXPECT_EQ(s.core.committed(), 0u) << "its own ack is one of two";
  Message ack = Msg(Type::kAck, 3, s.core.ballot());
  ack.entries.push_back(Entry{1, 77, {}, {}});
  s.Hear(3, ack);
  EXPECT_EQ(s.core.committed(), 1u);
  EXPECT_EQ(s.core.HighestSequence(), 1u);
  ASSERT_EQ(s.Sent(Type::kCommit, kGroup).size(), 1u);
  EXPECT_EQ(s.Sent(Type::kCommit, kGroup)[0].entries.at(0).id, 77u);
  // A third holder does not number it again.
  have.sender = 2;
  s.Hear(2, have);
  s.Tick();
  EXPECT_EQ(s.core.stable().next_seq, 2u);
}

TEST(Sam, RestartFromStableStorageKeepsPromisesAndNeverReusesABallot) {
  Member s(Config(1));
  s.core.OnLeadership(true, 3);
  s.Tick();
  EXPECT_EQ(s.core.ballot(), (Ballot{3, 0, 1}));
  Message old = Msg(Type::kAssign, 2, Ballot{2, 0, 2});
  old.entries.push_back(Entry{1, 5, {}, {}});
  // The crash: only stable() survives.
  const SamStable disk = s.core.stable();
  Member again(Config(1), disk);
  EXPECT_EQ(again.core.stable().promised, (Ballot{3, 0, 1}));
  again.Hear(2, old);
  EXPECT_EQ(again.Sent(Type::kFenced).size(), 1u) << "the promise survived the restart";
  again.core.OnLeadership(true, 3);  // the election gives it the same epoch again
  again.Tick();
  EXPECT_EQ(again.core.ballot(), (Ballot{3, 1, 1})) << "a new round: no two incarnations share a ballot";
}

TEST(Sam, RepairRequestsAreRateLimited) {
  SamConfig c = Config(4);
  c.max_repairs = 3;
  Member m(c);
  Message alive = Msg(Type::kAlive, 1, Ballot{1, 0, 1});
  alive.n1 = 500;  // far ahead, nobody answers
  m.Hear(1, alive);
  for (int i = 0; i < 20; ++i) {
    m.Tick();
    EXPECT_LE(m.core.outstanding_repairs(), 3u);
  }
  // 2 s: each of the 3 requests re-sent at most once per repair_retry (300 ms).
  const size_t nacks = m.Sent(Type::kNack).size();
  EXPECT_GE(nacks, 3u);
  EXPECT_LE(nacks, 3u * (2000 / 300 + 1));
  for (const Message& n : m.Sent(Type::kNack)) EXPECT_LE(n.n2, 16u);
}

TEST(Sam, MemberBehindTheCheckpointInstallsItAndContinues) {
  Member m(Config(4));
  Message alive = Msg(Type::kAlive, 1, Ballot{1, 0, 1});
  alive.n1 = 17;
  alive.n2 = 16;
  alive.ids = {2};
  m.Hear(1, alive);
  m.Tick();
  const auto asks = m.Sent(Type::kCkptFetch, Addr(2));
  ASSERT_FALSE(asks.empty());
  EXPECT_EQ(asks[0].n1, 16u);
  EXPECT_TRUE(m.Sent(Type::kNack).empty()) << "no per-number repair below the checkpoint";
  Message ck = Msg(Type::kCkpt, 2);
  ck.n1 = 16;
  ck.n2 = 0xabcdef;
  ck.entries = {Entry{15, 8, {}, {}}, Entry{16, 9, {}, {}}};
  m.Hear(2, ck);
  EXPECT_EQ(m.core.delivered(), 16u);
  EXPECT_EQ(m.core.state_hash(), 0xabcdefu);
  EXPECT_EQ(m.core.installs(), 1u);
  EXPECT_EQ(m.core.stable().log.at(16), 9u) << "the checkpoint's id window is kept";
  // Then 17 through a Nack answer and a data fetch.
  m.Tick(400 * kMillis);
  ASSERT_FALSE(m.Sent(Type::kNack).empty());
  EXPECT_EQ(m.Sent(Type::kNack).back().n1, 17u);
  Message ans = Msg(Type::kAnswer, 2);
  ans.entries = {Entry{17, 10, {}, {3}}};
  m.Hear(2, ans);
  ASSERT_FALSE(m.Sent(Type::kFetch, Addr(3)).empty());
  Message data = Msg(Type::kData, 3);
  data.ids = {10};
  m.Hear(3, data);
  EXPECT_EQ(m.core.delivered(), 17u);
  EXPECT_EQ(m.core.state_hash(), sam::ChainHash(0xabcdef, 17, 10));
}

TEST(Sam, DataUnderTheAdvertisedCheckpointIsDroppable) {
  Member m(Config(4));
  m.core.OnData(11, 0);
  m.core.OnData(12, 0);
  Message c = Msg(Type::kCommit, 1, Ballot{1, 0, 1});
  c.entries = {Entry{1, 11, {}, {}}, Entry{2, 12, {}, {}}};
  m.Hear(1, c);
  ASSERT_EQ(m.core.delivered(), 2u);
  Message alive = Msg(Type::kAlive, 1, Ballot{1, 0, 1});
  alive.n1 = 2;
  alive.n2 = 1;  // checkpoint at 1
  m.Hear(1, alive);
  EXPECT_EQ(m.core.TakeDroppable(), std::vector<uint64_t>{11});
  EXPECT_EQ(m.core.stable().held.count(12), 1u);
}

TEST(Sam, RecoveryReproposesTheHighestBallotFillsGapsAndDropsADuplicateId) {
  Member s(Config(4));  // not a commit server: needs 2 promises of 3
  s.core.OnLeadership(true, 9);
  s.Tick();
  EXPECT_EQ(s.Sent(Type::kRecover).size(), 3u);
  Message p2 = Msg(Type::kPromise, 2, s.core.ballot());
  p2.n2 = 4;
  p2.entries = {Entry{1, 50, Ballot{3, 0, 2}, {2}}, Entry{4, 60, Ballot{3, 0, 2}, {2}}};
  Message p3 = Msg(Type::kPromise, 3, s.core.ballot());
  p3.n2 = 3;
  p3.entries = {Entry{1, 51, Ballot{5, 0, 3}, {3}}, Entry{3, 60, Ballot{5, 0, 3}, {3}}};
  s.Hear(2, p2);
  EXPECT_FALSE(s.core.sequencing()) << "one promise is not the recovery quorum";
  s.Hear(3, p3);
  ASSERT_TRUE(s.core.sequencing());
  EXPECT_EQ(s.core.stable().next_seq, 5u);
  const auto assigns = s.Sent(Type::kAssign, Addr(1));
  ASSERT_EQ(assigns.size(), 1u);
  std::vector<std::pair<uint64_t, uint64_t>> got;
  for (const Entry& e : assigns[0].entries) got.push_back({e.seq, e.id});
  // 1: the higher ballot's id; 2: a gap, no-op; 3: id 60 at ballot 5; 4: id
  // 60 again at a lower ballot, no-op.
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, uint64_t>>{{1, 51}, {2, 0}, {3, 60}, {4, 0}}));
  EXPECT_EQ(assigns[0].ballot, s.core.ballot());
}

// The election core drives the Sequencer hook: the leader's Alive carries its
// highest committed number, and members keep the highest they heard.
struct FixedSequencer : Sequencer {
  uint64_t n = 42;
  std::vector<std::pair<bool, uint64_t>> calls;
  void OnLeadership(bool leader, uint64_t epoch) override { calls.push_back({leader, epoch}); }
  uint64_t HighestSequence() const override { return n; }
};

TEST(SamElection, LeaderAliveCarriesTheCommittedNumberAndMembersKeepIt) {
  testing::Sim s(3, sim::NetParams{});
  FixedSequencer seq[3];
  for (int i = 0; i < 3; ++i) {
    leader::Config c = testing::NodeConfig(i, i == 2 ? 200 : 100, 3);
    const int n = s.AddNode(c.self, std::make_unique<Election>(c, &seq[i]));
    s.Join(n, testing::kControl);
  }
  s.RunUntil(10 * proto::kSeconds);
  ASSERT_EQ(s.core(2).state(), State::kLeader);
  ASSERT_FALSE(seq[2].calls.empty());
  EXPECT_EQ(seq[2].calls.back(), (std::pair<bool, uint64_t>{true, s.core(2).epoch()}));
  EXPECT_TRUE(seq[0].calls.empty());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.core(i).committed_seq(), 42u) << i;
  seq[2].n = 50;
  s.RunUntil(13 * proto::kSeconds);
  EXPECT_EQ(s.core(0).committed_seq(), 50u);
  EXPECT_EQ(s.core(1).committed_seq(), 50u);
  seq[2].n = 7;  // a new sequencer may start lower: what members show never goes down
  s.RunUntil(16 * proto::kSeconds);
  EXPECT_EQ(s.core(0).committed_seq(), 50u);
}

TEST(SamElection, TheElectionTellsASamCoreToSequence) {
  Member sam(Config(1));
  testing::Sim s(4, sim::NetParams{});
  leader::Config c = testing::NodeConfig(0, 200, 4);
  s.Join(s.AddNode(c.self, std::make_unique<Election>(c, &sam.core)), testing::kControl);
  s.RunUntil(10 * proto::kSeconds);
  ASSERT_EQ(s.core(0).state(), State::kLeader);
  sam.Tick();
  EXPECT_TRUE(sam.core.leading());
  EXPECT_EQ(sam.core.ballot().epoch, s.core(0).epoch());
}

}  // namespace
}  // namespace cm::leader
