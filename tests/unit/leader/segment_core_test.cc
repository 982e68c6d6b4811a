// SegmentCore: the election and SAM on one socket, with the SAM envelope
// (MAC, replay window) and the Data answers held back for the edge. A small
// deterministic network of three nodes, and SamStable's text form.
#include "leader/segment_core.h"

#include <gtest/gtest.h>

#include <map>
#include <queue>

#include "leader/sam_stable.h"

namespace cm::leader {
namespace {

using proto::kMillis;
using proto::kSeconds;
using proto::Micros;

const proto::Address kControl{0xefff3201, 7400};
proto::Address Addr(int i) { return proto::Address{0xc6120100u + static_cast<uint32_t>(10 + i), 7400}; }

GroupKey Key(uint8_t b) {
  GroupKey k;
  k.fill(b);
  return k;
}

SegmentConfig Config(int i, std::optional<GroupKey> key) {
  SegmentConfig c;
  c.election.id = Addr(i).ip;
  c.election.self = Addr(i);
  c.election.control = kControl;
  c.election.segment = "site1";
  c.election.admin_priority = static_cast<uint32_t>(200 - 10 * i);
  c.election.timers = ScaledTimers(100 * kMillis);
  c.election.key = key;
  c.election.rng_seed = 7 + static_cast<uint64_t>(i);
  SamConfig s;
  s.id = c.election.id;
  s.group = kControl;
  s.commit_servers = {Addr(0).ip, Addr(1).ip, Addr(2).ip};
  s.rng_seed = 11 + static_cast<uint64_t>(i);
  c.sam = s;
  return c;
}

// Three nodes on one segment; every datagram arrives 1 ms later (to the
// group: every node, the sender included, as with multicast loop).
struct Net {
  explicit Net(std::optional<GroupKey> key = Key(7)) {
    for (int i = 0; i < 3; ++i) nodes.push_back(std::make_unique<SegmentCore>(Config(i, key)));
    wake.assign(3, proto::kNever);
    for (int i = 0; i < 3; ++i) Call(i, [&](proto::Effects* fx) { nodes[i]->Start(now, fx); });
  }
  struct Packet {
    Micros at;
    int to;
    proto::Address from;
    std::string bytes;
    bool operator>(const Packet& o) const { return at > o.at; }
  };
  std::vector<std::unique_ptr<SegmentCore>> nodes;
  std::vector<Micros> wake;
  std::priority_queue<Packet, std::vector<Packet>, std::greater<Packet>> q;
  Micros now = 0;
  std::vector<std::string> sam_sent;  // every SAM datagram that went out
  std::vector<bool> down = {false, false, false};

  template <typename F>
  void Call(int i, F f) {
    proto::Effects fx;
    f(&fx);
    wake[i] = fx.wake_at;
    for (const proto::Send& s : fx.sends) {
      if (SegmentCore::IsSam(s.bytes)) sam_sent.push_back(s.bytes);
      for (int j = 0; j < 3; ++j)
        if (s.to == kControl || s.to == Addr(j)) q.push({now + kMillis, j, Addr(i), s.bytes});
    }
  }
  void Run(Micros until) {
    while (true) {
      Micros next = q.empty() ? proto::kNever : q.top().at;
      int who = -1;
      for (int i = 0; i < 3; ++i)
        if (!down[i] && wake[i] < next) next = wake[i], who = i;
      if (next > until) break;
      now = next;
      if (who >= 0) {
        Call(who, [&](proto::Effects* fx) { nodes[who]->OnTimer(now, fx); });
      } else {
        Packet p = q.top();
        q.pop();
        if (!down[p.to]) Call(p.to, [&](proto::Effects* fx) { nodes[p.to]->OnDatagram(now, p.from, p.bytes, fx); });
      }
    }
    now = until;
  }
  // Data the edges of these nodes found in their spools.
  void Hold(uint64_t id, std::initializer_list<int> at) {
    for (int i : at) nodes[i]->OnData(id, nodes[i]->sam()->known_committed());
  }
};

TEST(SegmentCore, TheElectedLeaderSequencesAndEveryMemberDelivers) {
  Net n;
  n.Run(3 * kSeconds);
  ASSERT_EQ(n.nodes[0]->election().state(), State::kLeader);
  n.Hold(101, {0, 1, 2});
  n.Run(5 * kSeconds);
  n.Hold(102, {0, 1, 2});
  n.Run(7 * kSeconds);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(n.nodes[i]->sam()->delivered(), 2u) << i;
    EXPECT_EQ(n.nodes[i]->sam()->stable().log.at(1), 101u);
    EXPECT_EQ(n.nodes[i]->sam()->stable().log.at(2), 102u);
  }
  // The leader's Alive carries the committed number; members show it.
  n.Run(9 * kSeconds);
  EXPECT_EQ(n.nodes[2]->election().committed_seq(), 2u);
  // Every peer's address was learned from its Hello.
  EXPECT_EQ(n.nodes[2]->sam()->peers().size(), 3u);
}

TEST(SegmentCore, AMemberThatMissedNumbersGetsOffersNotData) {
  Net n;
  n.Run(3 * kSeconds);
  n.down[2] = true;
  n.Hold(201, {0, 1});
  n.Run(5 * kSeconds);
  EXPECT_EQ(n.nodes[0]->sam()->delivered(), 1u);
  n.down[2] = false;
  n.Run(8 * kSeconds);
  // Node 2 heard of number 1 and asked for its data; the holders' Data
  // answers are offers for the edge to fetch: nothing delivered yet.
  auto offers = n.nodes[2]->TakeOffers();
  ASSERT_FALSE(offers.empty());
  EXPECT_EQ(offers[0].id, 201u);
  EXPECT_EQ(n.nodes[2]->sam()->delivered(), 0u);
  // Data it did not ask for is no offer (a peer cannot make it fetch).
  sam::Message junk;
  junk.type = sam::Type::kData;
  junk.sender = Addr(0).ip;
  junk.ids = {999, 201};
  const GroupKey key = Key(7);
  n.Call(2, [&](proto::Effects* fx) {
    n.nodes[2]->OnDatagram(n.now, Addr(0), SegmentCore::Seal(sam::Encode(junk), &key, uint64_t(n.now) + 100), fx);
  });
  auto again = n.nodes[2]->TakeOffers();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, 201u);
  // The edge fetched it: delivered.
  n.Call(2, [&](proto::Effects* fx) { n.nodes[2]->OnFetched(n.now, offers[0].from, 201, fx); });
  n.Run(9 * kSeconds);
  EXPECT_EQ(n.nodes[2]->sam()->delivered(), 1u);
  EXPECT_TRUE(n.nodes[2]->sam()->stable().held.at(201).fetched);
}

TEST(SegmentCore, ForgedTamperedAndReplayedSamDatagramsAreRefused) {
  Net n;
  n.Run(3 * kSeconds);
  ASSERT_FALSE(n.sam_sent.empty());
  SegmentCore& victim = *n.nodes[1];
  const uint64_t before = victim.sam_rejected();
  // A replay of something it already took.
  const std::string old = n.sam_sent.front();
  n.Call(1, [&](proto::Effects* fx) { victim.OnDatagram(n.now, Addr(0), old, fx); });
  EXPECT_EQ(victim.sam_rejected(), before + 1);
  // One bit flipped.
  std::string bad = n.sam_sent.back();
  bad[6] ^= 1;
  n.Call(1, [&](proto::Effects* fx) { victim.OnDatagram(n.now, Addr(0), bad, fx); });
  EXPECT_EQ(victim.sam_rejected(), before + 2);
  // Sealed with another key: a forged Commit of an id nobody sent.
  sam::Message m;
  m.type = sam::Type::kCommit;
  m.sender = Addr(0).ip;
  m.ballot = n.nodes[0]->sam()->ballot();
  m.entries = {sam::Entry{1, 666, {}, {}}};
  const GroupKey other = Key(9);
  const std::string forged =
      SegmentCore::Seal(sam::Encode(m), &other, static_cast<uint64_t>(n.now + 10 * kSeconds));
  n.Call(1, [&](proto::Effects* fx) { victim.OnDatagram(n.now, Addr(0), forged, fx); });
  EXPECT_EQ(victim.sam_rejected(), before + 3);
  // The same with the right key but a stale counter (outside the replay window).
  const GroupKey right = Key(7);
  const std::string stale = SegmentCore::Seal(sam::Encode(m), &right, 1);
  n.Call(1, [&](proto::Effects* fx) { victim.OnDatagram(n.now + 60 * kSeconds, Addr(0), stale, fx); });
  EXPECT_EQ(victim.sam_rejected(), before + 4);
  n.Run(6 * kSeconds);
  EXPECT_EQ(victim.sam()->delivered(), 0u);
}

TEST(SamStable, TextFormRoundTripsAndRefusesGarbage) {
  SamStable s;
  s.delivered = 40;
  s.hash = 0xdeadbeefcafef00dull;
  s.install_floor = 32;
  s.log = {{31, 7}, {40, 9}};
  s.held = {{9, SamStable::Held{38, 40, true}}, {12, SamStable::Held{39, 0, false}}};
  s.ckpt_seq = 32;
  s.ckpt_hash = 5;
  s.seen = {3, 1, 77};
  s.promised = {3, 1, 77};
  s.accepted = {{41, sam::Entry{41, 12, {3, 1, 77}, {1, 2}}}};
  s.accepted_committed = {41};
  s.trim_floor = 32;
  s.led = {2, 0, 5};
  s.next_seq = 42;
  auto back = DecodeSamStable(EncodeSamStable(s));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, s);
  EXPECT_FALSE(DecodeSamStable("").ok());
  EXPECT_FALSE(DecodeSamStable("cm-sam-stable 1\ndelivered x\n").ok());
  EXPECT_FALSE(DecodeSamStable("cm-sam-stable 1\ndelivered 4").ok());  // no final newline: torn
  EXPECT_FALSE(DecodeSamStable("cm-sam-stable 2\n").ok());
  EXPECT_FALSE(DecodeSamStable("cm-sam-stable 1\nheld 1 2 3 7\n").ok());
}

}  // namespace
}  // namespace cm::leader
