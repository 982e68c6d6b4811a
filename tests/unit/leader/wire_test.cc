#include "leader/wire.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <random>

// The fuzz target's body (lib/leader/leader_wire_fuzz.cc, linked into this test).
int CmFuzzLeaderWire(const uint8_t* data, size_t size);

namespace cm::leader {
namespace {

Message Sample(MsgType t) {
  Message m;
  m.type = t;
  m.sender = 42;
  m.epoch = 7;
  m.priority = 150 << 16 | 3;
  m.addr = {0xc6120001, 7400};
  if (t == MsgType::kAlive) m.interval_us = 1000000, m.dead_intervals = 3, m.member_count = 5, m.sequence = 9,
                              m.beat = 1234567;
  if (t == MsgType::kRegister)
    m.leader = 41, m.name = "web1", m.free_disk_mb = 1234, m.cpu_permille = 250, m.beat = 77, m.reg_count = 12,
    m.list_hash = ListHash({1, 2, 41, 42, 43, 44, 45, 46, 47}), m.heard = {true, false, true, false, true, true, true, false, true};
  if (t == MsgType::kClaim) m.leader = 41, m.beat = 300, m.preempt = true;
  if (t == MsgType::kVouch) m.leader = 41, m.beat = 301, m.age_us = 150000;
  if (t == MsgType::kMembers) m.members = {1, 2, 42};
  if (t == MsgType::kMove) m.channel = {0xefff0002, 7401};
  return m;
}

TEST(LeaderWire, EveryTypeRoundTrips) {
  for (int t = 1; t <= 7; ++t) {
    Message m = Sample(static_cast<MsgType>(t));
    auto d = Decode(Encode(m));
    ASSERT_TRUE(d) << t;
    EXPECT_EQ(d->msg, m);
    EXPECT_FALSE(d->authenticated);
  }
}

TEST(LeaderWire, TruncatedOrTrailingBytesAreRejected) {
  std::string b = Encode(Sample(MsgType::kRegister));
  for (size_t n = 0; n < b.size(); ++n) EXPECT_FALSE(Decode(b.substr(0, n))) << n;
  EXPECT_FALSE(Decode(b + "x"));
}

TEST(LeaderWire, KeyedGroupRejectsUnsignedAndWrongKeyAndTampering) {
  GroupKey k{}, other{};
  k[0] = 1;
  other[0] = 2;
  Message m = Sample(MsgType::kClaim);
  std::string sealed = Encode(m, &k, 99);
  auto d = Decode(sealed, &k);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->authenticated);
  EXPECT_EQ(d->counter, 99u);
  EXPECT_FALSE(Decode(Encode(m), &k));
  EXPECT_FALSE(Decode(sealed, &other));
  sealed[12] ^= 1;
  EXPECT_FALSE(Decode(sealed, &k));
}

TEST(LeaderWire, UnknownVersionOrTypeIsRejected) {
  std::string b = Encode(Sample(MsgType::kAlive));
  std::string v = b;
  v[2] = 5;
  EXPECT_FALSE(Decode(v));
  v[2] = 0;
  EXPECT_FALSE(Decode(v));
  std::string t = b;
  t[3] = 9;
  EXPECT_FALSE(Decode(t));
  std::string vouch = Encode(Sample(MsgType::kVouch));
  vouch[2] = 2;  // Vouch is version 3
  EXPECT_FALSE(Decode(vouch));
  std::string claim = Encode(Sample(MsgType::kClaim));
  claim[claim.size() - 1] = 2;  // the pre-empt flag is 0 or 1
  EXPECT_FALSE(Decode(claim));
}

// A version-2 Claim (no body) and Register (no beat, no number) still parse,
// with the version-3 fields 0.
TEST(LeaderWire, VersionTwoClaimAndRegisterParseWithTheNewFieldsZero) {
  Message c = Sample(MsgType::kClaim);
  c.leader = 0, c.beat = 0, c.preempt = false;
  std::string b = Encode(c);
  std::string v2 = b.substr(0, b.size() - 10);  // leader u64, beat varint 0, flags u8
  v2[2] = 2;
  auto d = Decode(v2);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->msg, c);
  Message r = Sample(MsgType::kRegister);
  r.beat = 0, r.reg_count = 0, r.list_hash = 0, r.heard.clear();
  b = Encode(r);
  v2 = b.substr(0, b.size() - 2 - 9);  // beat, count, then the empty digest (hash u64, count varint)
  v2[2] = 2;
  d = Decode(v2);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->msg, r);
}

TEST(LeaderWire, VersionOneAliveParsesWithoutABeat) {
  Message m = Sample(MsgType::kAlive);
  m.beat = 0;
  std::string b = Encode(m);
  ASSERT_EQ(b[2], 4);
  ASSERT_EQ(b.back(), 0);  // beat varint 0, last byte of the unkeyed body (Alive is the same in v2-v4)
  std::string v1 = b.substr(0, b.size() - 1);
  v1[2] = 1;
  std::string v2 = b;
  v2[2] = 2;
  ASSERT_TRUE(Decode(v2));
  EXPECT_EQ(Decode(v2)->msg, m);
  auto d = Decode(v1);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->msg, m);
  EXPECT_FALSE(Decode(b.substr(0, b.size() - 1)));  // v2 without the beat is short
  std::string v1long = b;
  v1long[2] = 1;
  EXPECT_FALSE(Decode(v1long));  // v1 with a beat has a trailing byte
}

// A version-3 Register (no digest) parses with an empty digest; a v4 digest
// is canonical: a hash with no bits, bits without a hash, set padding bits,
// more bits than a member list holds are rejected.
TEST(LeaderWire, RegisterDigestIsCanonicalAndBounded) {
  Message r = Sample(MsgType::kRegister);
  r.list_hash = 0, r.heard.clear();
  std::string b = Encode(r);
  std::string v3 = b.substr(0, b.size() - 9);
  v3[2] = 3;
  auto d = Decode(v3);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->msg, r);
  EXPECT_FALSE(Decode(b.substr(0, b.size() - 9)));  // v4 without the digest is short
  std::string hash_no_bits = b;
  hash_no_bits[hash_no_bits.size() - 9] = 1;
  EXPECT_FALSE(Decode(hash_no_bits));
  // Nine bits: two bytes, the last with seven padding bits.
  std::string full = Encode(Sample(MsgType::kRegister));
  ASSERT_TRUE(Decode(full));
  std::string pad = full;
  pad.back() = static_cast<char>(pad.back() | 0x80);
  EXPECT_FALSE(Decode(pad));
  // A member list of 4096 fits (512 bytes of bits); 4097 bits are refused.
  Message big = Sample(MsgType::kRegister);
  big.heard.assign(kMaxMembersOnWire, true);
  std::string bb = Encode(big);
  ASSERT_TRUE(Decode(bb));
  EXPECT_EQ(Decode(bb)->msg.heard.size(), kMaxMembersOnWire);
  EXPECT_LT(bb.size(), 600u);
  big.heard.push_back(true);
  EXPECT_EQ(Decode(Encode(big))->msg.heard.size(), kMaxMembersOnWire);  // the encoder caps it
  std::string over = bb;
  // Patch the count varint (4096 = 0x80 0x20) to 4097 (0x81 0x20).
  const size_t at = bb.size() - 512 - 2;
  ASSERT_EQ(static_cast<uint8_t>(over[at]), 0x80);
  over[at] = static_cast<char>(0x81);
  EXPECT_FALSE(Decode(over));
}

TEST(LeaderWire, ListHashNamesTheList) {
  EXPECT_NE(ListHash({1, 2, 3}), ListHash({1, 2, 4}));
  EXPECT_NE(ListHash({1, 2}), ListHash({1, 2, 0}));
  EXPECT_EQ(ListHash({5, 9}), ListHash({5, 9}));
  EXPECT_NE(ListHash({}), 0u);
}

RC_GTEST_PROP(LeaderWire, AliveRoundTripsForAnyBeatAndSequence, (uint64_t beat, uint64_t sequence, uint32_t interval)) {
  Message m = Sample(MsgType::kAlive);
  m.beat = beat;
  m.sequence = sequence;
  m.interval_us = interval;
  auto d = Decode(Encode(m));
  RC_ASSERT(d.has_value());
  RC_ASSERT(d->msg == m);
}

RC_GTEST_PROP(LeaderWire, RegisterRoundTripsForAnyFields, (uint64_t sender, uint64_t epoch, std::string name)) {
  Message m = Sample(MsgType::kRegister);
  m.sender = sender;
  m.epoch = epoch;
  m.name = name.substr(0, kMaxNameLen);
  auto d = Decode(Encode(m));
  RC_ASSERT(d.has_value());
  RC_ASSERT(d->msg == m);
}

RC_GTEST_PROP(LeaderWire, RegisterDigestRoundTripsForAnyBits, (std::vector<bool> bits, uint64_t hash)) {
  Message m = Sample(MsgType::kRegister);
  if (bits.size() > kMaxMembersOnWire) bits.resize(kMaxMembersOnWire);
  m.heard = bits;
  m.list_hash = bits.empty() ? 0 : (hash ? hash : 1);
  auto d = Decode(Encode(m));
  RC_ASSERT(d.has_value());
  RC_ASSERT(d->msg == m);
}

TEST(LeaderWire, FuzzBodySurvivesRandomMutations) {
  std::mt19937_64 rng(1);
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = Encode(Sample(static_cast<MsgType>(1 + i % 7)));
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t pos = rng() % b.size();
      switch (rng() % 3) {
        case 0: b[pos] = static_cast<char>(rng()); break;
        case 1: b.erase(pos, 1); break;
        case 2: b.insert(pos, 1, static_cast<char>(rng())); break;
      }
    }
    parsed += CmFuzzLeaderWire(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  }
  EXPECT_GT(parsed, 100);  // the mutations reach past the header
}

}  // namespace
}  // namespace cm::leader
