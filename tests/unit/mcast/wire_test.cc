#include "mcast/wire.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <random>

int CmFuzzMcastWire(const uint8_t* data, size_t size);

namespace cm::mcast {
namespace {

Message SampleStatus() {
  Message m;
  m.type = Type::kStatus;
  m.session = 77;
  m.status.seq = 3;
  m.status.id = "web1";
  m.status.have_bytes = 123456;
  m.status.lost = 5;
  m.status.heard = 100;
  m.status.qdelay_us = 12345;
  m.status.unicast = 70000;
  m.status.nacks = {{2, 3, 7, 1}, {9, 1, 128, 0}};
  return m;
}

Message SampleAnnounce() {
  Message m;
  m.type = Type::kAnnounce;
  m.session = 9;
  m.announce.hash.fill(3);
  m.announce.flags = kAnnounceHashKnown;
  m.announce.size = 1 << 30;
  m.announce.frame_size = 1440;
  m.announce.block_k = 128;
  m.announce.max_passes = 4;
  m.announce.rate_kbps = 500000;
  m.announce.nack_period_ms = 100;
  m.announce.name = "a.cma";
  m.announce.sender_id = "gl1";
  m.announce.run = 0x1122334455667788ull;
  m.announce.started_ms = 1700000000000ull;
  m.announce.stamp_ms = 1700000000250ull;
  return m;
}

TEST(McastWire, StatusRoundTrips) {
  Message m = SampleStatus(), out;
  ASSERT_EQ(Parse(Encode(m), nullptr, &out), ParseResult::kOk);
  EXPECT_EQ(out.status.id, "web1");
  ASSERT_EQ(out.status.nacks.size(), 2u);
  EXPECT_EQ(out.status.nacks[1].first, 9u);
  EXPECT_EQ(out.status.nacks[1].need, 128);
  EXPECT_EQ(out.status.have_bytes, 123456u);
  EXPECT_EQ(out.status.qdelay_us, 12345u);
  EXPECT_EQ(out.status.unicast, 70000u);
}

Message SampleWant() {
  Message m;
  m.type = Type::kWant;
  m.want.id = "web7";
  for (int i = 0; i < 3; ++i) {
    WantEntry e;
    e.hash.fill(static_cast<uint8_t>(i + 1));
    e.size = 1000u * static_cast<uint64_t>(i + 1);
    e.name = "obj" + std::to_string(i) + ".cma";
    m.want.entries.push_back(e);
  }
  return m;
}

TEST(McastWire, AnnounceRoundTripsAndCarriesVersion) {
  std::string b = Encode(SampleAnnounce());
  EXPECT_EQ(static_cast<uint8_t>(b[2]), kVersion);
  Message out;
  ASSERT_EQ(Parse(b, nullptr, &out), ParseResult::kOk);
  EXPECT_EQ(out.announce.name, "a.cma");
  EXPECT_EQ(out.announce.size, 1u << 30);
  EXPECT_EQ(out.announce.run, 0x1122334455667788ull);
  EXPECT_EQ(out.announce.started_ms, 1700000000000ull);
  EXPECT_EQ(out.announce.stamp_ms, 1700000000250ull);
  b[2] = kVersion + 1;  // a future version is refused, not misread
  EXPECT_EQ(Parse(b, nullptr, &out), ParseResult::kBad);
  b[2] = 1;  // and so is version 1 (its announce had no flags byte)
  EXPECT_EQ(Parse(b, nullptr, &out), ParseResult::kBad);
}

TEST(McastWire, AnnounceWithoutHashYetRoundTrips) {
  Message m = SampleAnnounce(), out;
  m.announce.hash = Hash256{};
  m.announce.flags = kAnnounceGrowing;
  ASSERT_EQ(Parse(Encode(m), nullptr, &out), ParseResult::kOk);
  EXPECT_EQ(out.announce.flags, kAnnounceGrowing);
  EXPECT_EQ(out.announce.hash, Hash256{});
}

TEST(McastWire, AnnounceWithAHashButNoHashFlagIsRejected) {
  // An unknown hash travels as zeros, so every accepted datagram re-encodes identically.
  Message m = SampleAnnounce(), out;
  m.announce.flags = 0;
  EXPECT_EQ(Parse(Encode(m), nullptr, &out), ParseResult::kBad);
  m.announce.flags = 4;  // an unknown flag
  EXPECT_EQ(Parse(Encode(m), nullptr, &out), ParseResult::kBad);
}

TEST(McastWire, WantRoundTrips) {
  Message m = SampleWant(), out;
  ASSERT_EQ(Parse(Encode(m), nullptr, &out), ParseResult::kOk);
  EXPECT_EQ(out.type, Type::kWant);
  EXPECT_EQ(out.session, 0u);
  EXPECT_EQ(out.want.id, "web7");
  ASSERT_EQ(out.want.entries.size(), 3u);
  EXPECT_EQ(out.want.entries[2].name, "obj2.cma");
  EXPECT_EQ(out.want.entries[2].size, 3000u);
  EXPECT_EQ(out.want.entries[2].hash, m.want.entries[2].hash);
  EXPECT_FALSE(out.want.more);
}

TEST(McastWire, WantWithPathInNameIsRejected) {
  Message m = SampleWant(), out;
  m.want.entries[1].name = "../../etc/shadow";
  EXPECT_EQ(Parse(Encode(m), nullptr, &out), ParseResult::kBad);
}

TEST(McastWire, WantEntriesThatFitStayInOneDatagram) {
  GroupKey key{};
  std::vector<WantEntry> entries(100);
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].name = std::string(40 + i * 7 % 215, 'a' + static_cast<char>(i % 26));
    entries[i].size = i * 1'000'000'007ull;
  }
  std::string id(kMaxIdLen, 'r');
  size_t total = 0;
  for (size_t i = 0; i < entries.size();) {
    size_t n = WantEntriesThatFit(entries, i, id.size());
    ASSERT_GT(n, 0u);
    Message m;
    m.type = Type::kWant;
    m.want.id = id;
    m.want.entries.assign(entries.begin() + static_cast<ptrdiff_t>(i), entries.begin() + static_cast<ptrdiff_t>(i + n));
    std::string b = Encode(m, &key);
    EXPECT_LE(b.size(), kMaxDatagram);
    Message out;
    ASSERT_EQ(Parse(b, &key, &out), ParseResult::kOk);
    EXPECT_EQ(out.want.entries.size(), n);
    i += n;
    total += n;
  }
  EXPECT_EQ(total, entries.size());
}

TEST(McastWire, SessionIdCoversNameSizeAndFirstBytesOnly) {
  std::string a(100000, 'x'), b = a;
  b[kSessionPrefix + 10] = 'y';  // past the prefix: the same session
  EXPECT_EQ(SessionId("f", a.size(), a), SessionId("f", b.size(), b));
  std::string c = a;
  c[10] = 'y';
  EXPECT_NE(SessionId("f", a.size(), a), SessionId("f", c.size(), c));
  EXPECT_NE(SessionId("f", a.size(), a), SessionId("g", a.size(), a));
  EXPECT_NE(SessionId("f", a.size(), a), SessionId("f", a.size() + 1, a));
  EXPECT_NE(SessionId("", 0, ""), 0u);
}

TEST(McastWire, AnnounceWithPathInNameIsRejected) {
  Message m = SampleAnnounce(), out;
  m.announce.name = "../etc/passwd";
  EXPECT_EQ(Parse(Encode(m), nullptr, &out), ParseResult::kBad);
}

TEST(McastWire, EveryTruncationIsRejected) {
  for (const Message& m : {SampleStatus(), SampleAnnounce(), SampleWant()}) {
    std::string b = Encode(m);
    for (size_t n = 0; n < b.size(); ++n) {
      Message out;
      EXPECT_NE(Parse(b.substr(0, n), nullptr, &out), ParseResult::kOk) << n;
    }
  }
}

TEST(McastWire, DataPayloadLengthMustMatch) {
  Message m;
  m.type = Type::kData;
  m.data.block = 4;
  m.data.esi = 130;
  m.data.pass = 2;
  m.data.seq = 0xfffffff0u;
  m.data.sent_us = 0x89abcdefu;
  std::string payload(100, 'x');
  m.data.payload = payload;
  std::string b = Encode(m);
  Message out;
  ASSERT_EQ(Parse(b, nullptr, &out), ParseResult::kOk);
  EXPECT_EQ(out.data.payload, payload);
  EXPECT_EQ(out.data.esi, 130);
  EXPECT_EQ(out.data.seq, 0xfffffff0u);
  EXPECT_EQ(out.data.sent_us, 0x89abcdefu);
  EXPECT_EQ(Parse(b + "y", nullptr, &out), ParseResult::kBad);
}

TEST(McastWire, WithoutTheKeyNothingIsAccepted) {
  GroupKey key{}, other{};
  key.fill(1);
  other.fill(2);
  std::string b = Encode(SampleStatus(), &key);
  Message out;
  EXPECT_EQ(Parse(b, &key, &out), ParseResult::kOk);
  EXPECT_EQ(Parse(b, &other, &out), ParseResult::kUnauthenticated);
  EXPECT_EQ(Parse(b, nullptr, &out), ParseResult::kUnauthenticated);
  // An unauthenticated packet is refused by a keyed receiver.
  EXPECT_EQ(Parse(Encode(SampleStatus()), &key, &out), ParseResult::kUnauthenticated);
  // Any flipped bit breaks the tag.
  for (size_t i = 0; i < b.size(); ++i) {
    std::string c = b;
    c[i] ^= 1;
    EXPECT_NE(Parse(c, &key, &out), ParseResult::kOk) << i;
  }
}

RC_GTEST_PROP(McastWire, StatusRoundTripProperty, (uint32_t seq, std::string id, std::vector<uint8_t> needs)) {
  Message m;
  m.type = Type::kStatus;
  m.status.seq = seq;
  m.status.id = id.substr(0, kMaxIdLen);
  uint32_t b = 0;
  for (uint8_t n : needs) {
    if (m.status.nacks.size() >= kMaxListEntries) break;
    m.status.nacks.push_back({b, 1u + n % 5, n, static_cast<uint8_t>(n / 3)});
    b += 1 + n % 5 + n % 3;
  }
  Message out;
  RC_ASSERT(Parse(Encode(m), nullptr, &out) == ParseResult::kOk);
  RC_ASSERT(out.status.id == m.status.id);
  RC_ASSERT(out.status.nacks.size() == m.status.nacks.size());
  for (size_t i = 0; i < out.status.nacks.size(); ++i) {
    RC_ASSERT(out.status.nacks[i].first == m.status.nacks[i].first);
    RC_ASSERT(out.status.nacks[i].count == m.status.nacks[i].count);
  }
}

TEST(McastWire, FuzzBodyOnRandomMutations) {
  std::mt19937_64 rng(1);
  GroupKey key{};
  std::vector<std::string> seeds = {Encode(SampleStatus()), Encode(SampleAnnounce()), Encode(SampleStatus(), &key),
                                    Encode(SampleWant()), Encode(SampleWant(), &key)};
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = seeds[i % seeds.size()];
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      switch (rng() % 3) {
        case 0: b[rng() % b.size()] = static_cast<char>(rng()); break;
        case 1: b.resize(rng() % (b.size() + 1)); break;
        case 2: b.insert(rng() % (b.size() + 1), 1, static_cast<char>(rng())); break;
      }
      if (b.empty()) b = "x";
    }
    parsed += CmFuzzMcastWire(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  }
  EXPECT_GT(parsed, 0);  // some mutations stay valid: the round-trip check ran
}

}  // namespace
}  // namespace cm::mcast
