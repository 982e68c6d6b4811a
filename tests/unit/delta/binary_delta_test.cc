#include "delta/binary_delta.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <random>

#include "patch_helpers.h"

namespace cm::delta {
namespace {

using testing::Apply;
using testing::Delta;
using testing::RandomBytes;
using testing::RandomText;

// Computes the delta, applies it, and checks the result is new_data.
testing::DeltaResult RoundTrip(const std::string& old_data, const std::string& new_data,
                               const DeltaOptions& opts = {}) {
  auto d = Delta(old_data, new_data, opts);
  EXPECT_FALSE(d.stats.exceeded);
  EXPECT_EQ(d.stats.stream_bytes, d.stream.size());
  EXPECT_EQ(d.stats.copied + d.stats.inserted, new_data.size());
  auto out = Apply(old_data, d.stream, new_data.size());
  EXPECT_TRUE(out.ok()) << out.status().message();
  if (out.ok()) {
    EXPECT_TRUE(*out == new_data) << "patched output differs";
  }
  return d;
}

TEST(ComputeDelta, EmptyOldAndEmptyNew) {
  auto d = RoundTrip("", "");
  EXPECT_EQ(d.stream, std::string(1, '\0'));
}

TEST(ComputeDelta, EmptyOldIsAllLiteral) {
  auto d = RoundTrip("", "hello world");
  EXPECT_EQ(d.stats.inserted, 11u);
}

TEST(ComputeDelta, EmptyNewIsJustEnd) {
  auto d = RoundTrip("some old content that goes away", "");
  EXPECT_EQ(d.stream.size(), 1u);
}

TEST(ComputeDelta, TinyFiles) {
  RoundTrip("a", "b");
  RoundTrip("abc", "abc");
  RoundTrip("abcdefg", "abcdefgh");
  RoundTrip("x", "");
  auto d = RoundTrip("0123456789abcdef", "0123456789abcdef");
  EXPECT_EQ(d.stats.copied, 16u);
}

TEST(ComputeDelta, IdenticalFilesAreOneCopy) {
  std::mt19937_64 rng(1);
  std::string data = RandomBytes(rng, 1 << 20);
  auto d = RoundTrip(data, data);
  EXPECT_EQ(d.stats.inserted, 0u);
  EXPECT_LT(d.stream.size(), 16u);
}

TEST(ComputeDelta, RandomUnrelatedDataIsAllLiteral) {
  std::mt19937_64 rng(2);
  auto d = RoundTrip(RandomBytes(rng, 100000), RandomBytes(rng, 100000));
  EXPECT_EQ(d.stats.copied, 0u);
}

TEST(ComputeDelta, InsertAtTheStartOfOneMiBIsCheap) {
  std::mt19937_64 rng(3);
  std::string old_data = RandomBytes(rng, 1 << 20);
  std::string new_data = "a few new bytes at the very start" + old_data;
  auto d = RoundTrip(old_data, new_data);
  EXPECT_LT(d.stream.size(), 64u);
  EXPECT_EQ(d.stats.inserted, 33u);
}

TEST(ComputeDelta, ShiftedDataIsFoundAtEveryOffset) {
  std::mt19937_64 rng(4);
  std::string old_data = RandomBytes(rng, 300000);
  for (size_t shift : {1u, 2u, 3u, 7u, 13u, 100u, 4097u}) {
    std::string new_data = old_data.substr(shift) + RandomBytes(rng, shift);
    auto d = RoundTrip(old_data, new_data);
    EXPECT_EQ(d.stats.inserted, shift) << "shift " << shift;
  }
}

TEST(ComputeDelta, LiteralsAreExactAroundScatteredRewrites) {
  std::mt19937_64 rng(5);
  std::string old_data = RandomBytes(rng, 4 << 20);
  std::string new_data = old_data;
  for (int i = 0; i < 20; ++i) {
    size_t off = (i * 200000) + rng() % 1000;
    new_data.replace(off, 4096, RandomBytes(rng, 4096));
  }
  auto d = RoundTrip(old_data, new_data);
  // Matches are extended to the exact byte: only the rewritten bytes (give
  // or take the odd byte that happens to equal its old value) are literal.
  EXPECT_LE(d.stats.inserted, 20u * 4096);
  EXPECT_GE(d.stats.inserted, 20u * 4096 - 64);
  EXPECT_LT(d.stream.size(), 20u * 4096 + 20 * 16 + 64);
}

TEST(ComputeDelta, SmallTextEditsGiveTinyDeltas) {
  std::mt19937_64 rng(6);
  std::string old_text = RandomText(rng, 120);  // ~5 KiB
  std::string new_text = old_text;
  // Insert one line, delete another, change a word.
  size_t at = new_text.find('\n', 1000) + 1;
  new_text.insert(at, "a brand new line here\n");
  size_t del = new_text.find('\n', 3000) + 1;
  new_text.erase(del, new_text.find('\n', del) + 1 - del);
  new_text.replace(new_text.find("mover", 2000), 5, "MOVER");
  auto d = RoundTrip(old_text, new_text);
  EXPECT_LT(d.stream.size(), 80u) << "stream " << d.stream.size() << " for " << new_text.size();
}

TEST(ComputeDelta, RepeatedPatterns) {
  std::string old_data(100000, 'a');
  std::string new_data(100500, 'a');
  new_data[50000] = 'b';
  auto d = RoundTrip(old_data, new_data);
  EXPECT_LT(d.stream.size(), 40u);
  std::string pat;
  for (int i = 0; i < 20000; ++i) pat += "abcd";
  RoundTrip(pat, pat.substr(3) + "xyz" + pat);
}

TEST(ComputeDelta, MovedBlocksAreCopiedFromAnywhere) {
  std::mt19937_64 rng(7);
  std::string a = RandomBytes(rng, 50000), b = RandomBytes(rng, 50000), c = RandomBytes(rng, 50000);
  auto d = RoundTrip(a + b + c, c + a + b);
  EXPECT_EQ(d.stats.inserted, 0u);
}

TEST(ComputeDelta, ExplicitBlockSizesWork) {
  std::mt19937_64 rng(8);
  std::string old_data = RandomText(rng, 2000);
  std::string new_data = old_data.substr(0, 10000) + "inserted" + old_data.substr(10000);
  for (uint32_t bs : {4u, 8u, 16u, 64u, 1024u}) {
    DeltaOptions o;
    o.block_size = bs;
    auto d = RoundTrip(old_data, new_data, o);
    EXPECT_EQ(d.stats.inserted, 8u) << "block " << bs;
  }
}

TEST(ComputeDelta, TinyIndexBudgetStillWorks) {
  std::mt19937_64 rng(9);
  std::string old_data = RandomBytes(rng, 1 << 20);
  std::string new_data = old_data;
  new_data.insert(500000, "xx");
  DeltaOptions o;
  o.max_index_bytes = 0;
  auto d = RoundTrip(old_data, new_data, o);
  EXPECT_LT(d.stream.size(), 100000u);
}

TEST(ComputeDelta, StopsWhenTheStreamWouldExceedTheLimit) {
  std::mt19937_64 rng(10);
  std::string old_data = RandomBytes(rng, 200000), new_data = RandomBytes(rng, 200000);
  DeltaOptions o;
  o.max_stream_bytes = new_data.size() - 1;
  auto d = Delta(old_data, new_data, o);
  EXPECT_TRUE(d.stats.exceeded);
}

TEST(ComputeDelta, GivesUpWhenNothingCopiesEarly) {
  std::mt19937_64 rng(11);
  std::string old_data = RandomBytes(rng, 1 << 20), new_data = RandomBytes(rng, 1 << 20);
  DeltaOptions o;
  o.give_up_without_copy = 200000;
  auto d = Delta(old_data, new_data, o);
  EXPECT_TRUE(d.stats.exceeded);
  EXPECT_LT(d.stream.size(), 400000u);
}

TEST(LooksHighEntropy, RandomYesTextNo) {
  std::mt19937_64 rng(12);
  std::string r = RandomBytes(rng, 1 << 20);
  std::string t = RandomText(rng, 20000);
  EXPECT_TRUE(LooksHighEntropy(reinterpret_cast<const uint8_t*>(r.data()), r.size()));
  EXPECT_FALSE(LooksHighEntropy(reinterpret_cast<const uint8_t*>(t.data()), t.size()));
  std::string small = RandomBytes(rng, 100);
  EXPECT_FALSE(LooksHighEntropy(reinterpret_cast<const uint8_t*>(small.data()), small.size()));
  std::string zeros(1 << 16, '\0');
  EXPECT_FALSE(LooksHighEntropy(reinterpret_cast<const uint8_t*>(zeros.data()), zeros.size()));
}

// Generators for the property tests.
rc::Gen<std::string> Bytes(int max_len) {
  return rc::gen::mapcat(rc::gen::inRange(0, max_len), [](int n) {
    // Small alphabets make accidental repeats (and so copy choices) likely.
    return rc::gen::oneOf(rc::gen::container<std::string>(n, rc::gen::arbitrary<char>()),
                          rc::gen::container<std::string>(n, rc::gen::elementOf(std::string("ab\n"))));
  });
}

RC_GTEST_PROP(ComputeDelta, ArbitraryPairsRoundTrip, ()) {
  const auto old_data = *Bytes(3000);
  const auto new_data = *Bytes(3000);
  auto d = Delta(old_data, new_data);
  RC_ASSERT(!d.stats.exceeded);
  auto out = Apply(old_data, d.stream, new_data.size());
  RC_ASSERT(out.ok());
  RC_ASSERT(*out == new_data);
}

// new = old with random inserts, deletes and rewrites.
RC_GTEST_PROP(ComputeDelta, DerivedVersionsRoundTripAndStaySmall, ()) {
  const auto old_data = *Bytes(20000);
  std::string new_data = old_data;
  const int edits = *rc::gen::inRange(0, 12);
  uint64_t edited_bytes = 0;
  for (int i = 0; i < edits; ++i) {
    size_t pos = new_data.empty() ? 0 : *rc::gen::inRange<size_t>(0, new_data.size());
    const int kind = *rc::gen::inRange(0, 3);
    const auto lit = *rc::gen::container<std::string>(*rc::gen::inRange(1, 60), rc::gen::arbitrary<char>());
    if (kind == 0) {
      new_data.insert(pos, lit);
    } else if (kind == 1) {
      new_data.erase(pos, lit.size());
    } else {
      new_data.replace(pos, lit.size(), lit);
    }
    edited_bytes += lit.size();
  }
  const auto bs = *rc::gen::element<uint32_t>(0, 0, 4, 8, 32);
  DeltaOptions o;
  o.block_size = bs;
  auto d = Delta(old_data, new_data, o);
  auto out = Apply(old_data, d.stream, new_data.size());
  RC_ASSERT(out.ok());
  RC_ASSERT(*out == new_data);
  // Every edit costs at most its bytes plus a few instruction bytes, and the
  // delta never costs more than the file itself plus framing.
  RC_ASSERT(d.stream.size() <= new_data.size() + 16);
  if (old_data.size() >= 4096 && bs != 4) RC_ASSERT(d.stream.size() <= 2 * edited_bytes + edits * 80 + 64);
}

}  // namespace
}  // namespace cm::delta
