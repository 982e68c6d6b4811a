#include "delta/instructions.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <zstd.h>

#include <random>

#include "patch_helpers.h"
#include "util/byte_io.h"

namespace cm::delta {
namespace {

using testing::Apply;

// Builds a stream by hand (including invalid ones).
struct StreamBuilder {
  std::string s;
  ByteWriter w{&s};
  uint64_t prev_end = 0;
  StreamBuilder& Copy(uint64_t off, uint64_t len) {
    w.U8(kOpCopy);
    w.SVarint(static_cast<int64_t>(off - prev_end));
    w.Varint(len);
    prev_end = off + len;
    return *this;
  }
  StreamBuilder& Insert(const std::string& lit) {
    w.U8(kOpInsert);
    w.Varint(lit.size());
    w.Bytes(lit);
    return *this;
  }
  StreamBuilder& End() {
    w.U8(kOpEnd);
    return *this;
  }
};

TEST(InstructionWriter, EncodesCopyInsertEnd) {
  StringSink sink;
  InstructionWriter w(&sink);
  ASSERT_TRUE(w.Copy(10, 5).ok());
  ASSERT_TRUE(w.Insert("ab", 2).ok());
  ASSERT_TRUE(w.Copy(15, 3).ok());  // relative offset 0 after the first copy
  ASSERT_TRUE(w.Finish().ok());
  std::string want = StreamBuilder().Copy(10, 5).Insert("ab").Copy(15, 3).End().s;
  EXPECT_EQ(sink.data(), want);
  EXPECT_EQ(w.output_size(), want.size());
  EXPECT_EQ(w.target_size(), 10u);
}

TEST(InstructionWriter, AdjacentInsertsAreMerged) {
  StringSink sink;
  InstructionWriter w(&sink);
  ASSERT_TRUE(w.Insert("abc", 3).ok());
  ASSERT_TRUE(w.Insert("def", 3).ok());
  ASSERT_TRUE(w.Finish().ok());
  EXPECT_EQ(sink.data(), StreamBuilder().Insert("abcdef").End().s);
}

TEST(InstructionWriter, ZeroLengthCopyIsDropped) {
  StringSink sink;
  InstructionWriter w(&sink);
  ASSERT_TRUE(w.Copy(7, 0).ok());
  ASSERT_TRUE(w.Finish().ok());
  EXPECT_EQ(sink.data(), std::string(1, '\0'));
}

TEST(InstructionWriter, LongLiteralIsSplitAndReassembled) {
  std::mt19937_64 rng(1);
  std::string lit = testing::RandomBytes(rng, (3 << 20) + 17);
  StringSink sink;
  InstructionWriter w(&sink);
  ASSERT_TRUE(w.Insert(lit.data(), lit.size()).ok());
  ASSERT_TRUE(w.Finish().ok());
  auto out = Apply("", sink.data(), lit.size(), 4096);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, lit);
}

// A ZSTD instruction: new compressed with base as its prefix, then END.
std::string ZstdStream(const std::string& base, const std::string& now, int level = 6) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 20);
  ZSTD_CCtx_refPrefix(c, base.data(), base.size());
  std::string frame(ZSTD_compressBound(now.size()), '\0');
  size_t n = ZSTD_compress2(c, frame.data(), frame.size(), now.data(), now.size());
  ZSTD_freeCCtx(c);
  EXPECT_FALSE(ZSTD_isError(n));
  frame.resize(n);
  StringSink sink;
  InstructionWriter w(&sink);
  EXPECT_TRUE(w.Zstd(frame.data(), frame.size(), now.size()).ok());
  EXPECT_TRUE(w.Finish().ok());
  return sink.data();
}

TEST(PatchApplier, ZstdFrameWithTheBaseAsPrefixDecodesInAnyPieces) {
  std::string base, now;
  for (int i = 0; i < 5000; ++i) base += "word" + std::to_string(i * 7 % 1000) + " ";
  now = base;
  for (size_t i = 100; i < now.size(); i += 997) now[i] = '#';
  std::string s = ZstdStream(base, now);
  EXPECT_LT(s.size(), now.size() / 10);
  for (size_t piece : {size_t{0}, size_t{1}, size_t{7}, size_t{4096}}) {
    auto out = Apply(base, s, now.size(), piece);
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ(*out, now) << "piece " << piece;
  }
  // With a wrong expected size, or truncated, it is corrupt. (A wrong base
  // is the base hash's business: cm-apply checks it before installing.)
  EXPECT_EQ(Apply(base, s, now.size() - 1).status().code(), Code::kCorrupt);
  EXPECT_EQ(Apply(base, s.substr(0, s.size() - 3), now.size()).status().code(), Code::kCorrupt);
}

TEST(PatchApplier, ZstdBytesThatAreNoFrameAreCorrupt) {
  std::string s;
  ByteWriter w(&s);
  w.U8(kOpZstd);
  w.Varint(5);
  w.Bytes("hello", 5);
  w.U8(kOpEnd);
  EXPECT_EQ(Apply("base", s, 5).status().code(), Code::kCorrupt);
  std::string zero;
  ByteWriter z(&zero);
  z.U8(kOpZstd);
  z.Varint(0);
  EXPECT_EQ(Apply("base", zero, 0).status().code(), Code::kCorrupt);
}

TEST(PatchApplier, BackwardCopiesUseNegativeOffsets) {
  std::string base = "0123456789";
  std::string s = StreamBuilder().Copy(8, 2).Copy(0, 3).Copy(5, 1).End().s;
  auto out = Apply(base, s, 6);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "890125");
}

TEST(PatchApplier, EmptyStreamWithOnlyEndGivesEmptyFile) {
  auto out = Apply("base", std::string(1, '\0'), 0);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "");
}

TEST(PatchApplier, CopyPastTheBaseIsCorrupt) {
  std::string base = "0123456789";
  auto out = Apply(base, StreamBuilder().Copy(5, 6).End().s, 6);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kCorrupt);
  out = Apply(base, StreamBuilder().Copy(11, 0).End().s, 0);
  EXPECT_EQ(out.status().code(), Code::kCorrupt);
  // A huge length that would wrap around.
  out = Apply(base, StreamBuilder().Copy(2, UINT64_MAX - 1).End().s, 5);
  EXPECT_EQ(out.status().code(), Code::kCorrupt);
}

TEST(PatchApplier, NegativeOffsetBeforeTheBaseIsCorrupt) {
  std::string s;
  ByteWriter w(&s);
  w.U8(kOpCopy);
  w.SVarint(-1);
  w.Varint(1);
  w.U8(kOpEnd);
  auto out = Apply("abc", s, 1);
  EXPECT_EQ(out.status().code(), Code::kCorrupt);
}

TEST(PatchApplier, OutputLongerThanExpectedIsCorrupt) {
  EXPECT_EQ(Apply("", StreamBuilder().Insert("abcdef").End().s, 5).status().code(), Code::kCorrupt);
  EXPECT_EQ(Apply("abcdef", StreamBuilder().Copy(0, 6).End().s, 5).status().code(), Code::kCorrupt);
  // Huge literal length: rejected up front, not by overflowing a counter.
  std::string s;
  ByteWriter w(&s);
  w.U8(kOpInsert);
  w.Varint(UINT64_MAX);
  EXPECT_EQ(Apply("", s, 10).status().code(), Code::kCorrupt);
}

TEST(PatchApplier, OutputShorterThanExpectedIsCorrupt) {
  EXPECT_EQ(Apply("", StreamBuilder().Insert("abc").End().s, 5).status().code(), Code::kCorrupt);
}

TEST(PatchApplier, UnknownOpcodeIsCorrupt) {
  EXPECT_EQ(Apply("", std::string("\x07", 1), 0).status().code(), Code::kCorrupt);
}

TEST(PatchApplier, DataAfterEndIsCorrupt) {
  std::string s = StreamBuilder().Insert("a").End().s + "x";
  EXPECT_EQ(Apply("", s, 1).status().code(), Code::kCorrupt);
  EXPECT_EQ(Apply("", s, 1, 1).status().code(), Code::kCorrupt);
}

TEST(PatchApplier, OverlongVarintIsCorrupt) {
  std::string s(1, static_cast<char>(kOpCopy));
  s += std::string(40, '\xff');
  EXPECT_EQ(Apply("abc", s, 1).status().code(), Code::kCorrupt);
}

TEST(PatchApplier, EveryTruncationIsRejected) {
  std::string base = "the quick brown fox jumps over the lazy dog";
  std::string s = StreamBuilder().Copy(4, 6).Insert("RED").Copy(16, 10).Insert("!").Copy(0, 3).End().s;
  auto full = Apply(base, s, 23);
  ASSERT_TRUE(full.ok()) << full.status().message();
  EXPECT_EQ(*full, "quick REDfox jumps !the");
  for (size_t n = 0; n < s.size(); ++n) {
    auto out = Apply(base, s.substr(0, n), 23);
    EXPECT_FALSE(out.ok()) << "prefix " << n;
    EXPECT_EQ(out.status().code(), Code::kCorrupt) << "prefix " << n;
  }
}

TEST(PatchApplier, FeedingByteByByteMatchesFeedingAtOnce) {
  std::mt19937_64 rng(5);
  std::string base = testing::RandomBytes(rng, 5000);
  StreamBuilder b;
  std::string want;
  for (int i = 0; i < 200; ++i) {
    if (rng() % 2) {
      uint64_t off = rng() % 4000, len = rng() % 1000;
      b.Copy(off, len);
      want += base.substr(off, len);
    } else {
      std::string lit = testing::RandomBytes(rng, rng() % 70);
      b.Insert(lit);
      want += lit;
    }
  }
  b.End();
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{31}, size_t{4096}, size_t{0}}) {
    auto out = Apply(base, b.s, want.size(), piece);
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ(*out, want) << "piece " << piece;
  }
}

TEST(PatchApplier, ShortBaseFileIsABaseMismatch) {
  // The applier trusts base_size; a base that is really shorter is caught on read.
  UniqueFd b = testing::MemFd("abc");
  UniqueFd out = testing::MemFd("");
  PatchApplier pa(b.get(), 100, out.get(), 50);
  std::string s = StreamBuilder().Copy(0, 50).End().s;
  Status st = pa.Feed(s.data(), s.size());
  EXPECT_EQ(st.code(), Code::kBaseMismatch);
}

// Random instruction streams against a random base: the writer's encoding
// applies to exactly the bytes the instructions describe.
RC_GTEST_PROP(Instructions, WriterStreamsRoundTrip, ()) {
  const auto base = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  const auto nops = *rc::gen::inRange<int>(0, 40);
  StringSink sink;
  InstructionWriter w(&sink);
  std::string want;
  for (int i = 0; i < nops; ++i) {
    if (!base.empty() && *rc::gen::arbitrary<bool>()) {
      uint64_t off = *rc::gen::inRange<uint64_t>(0, base.size());
      uint64_t len = *rc::gen::inRange<uint64_t>(0, base.size() - off + 1);
      RC_ASSERT(w.Copy(off, len).ok());
      want += base.substr(off, len);
    } else {
      const auto lit = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
      RC_ASSERT(w.Insert(lit.data(), lit.size()).ok());
      want += lit;
    }
  }
  RC_ASSERT(w.Finish().ok());
  RC_ASSERT(w.target_size() == want.size());
  RC_ASSERT(w.output_size() == sink.data().size());
  const auto piece = *rc::gen::inRange<size_t>(1, 64);
  auto out = Apply(base, sink.data(), want.size(), piece);
  RC_ASSERT(out.ok());
  RC_ASSERT(*out == want);
}

// Arbitrary bytes never crash the applier; they either apply or are kCorrupt.
RC_GTEST_PROP(Instructions, GarbageIsRejectedOrApplied, ()) {
  const auto base = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  const auto junk = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  const auto expected = *rc::gen::inRange<uint64_t>(0, 512);
  auto out = Apply(base, junk, expected, 7);
  if (!out.ok()) {
    RC_ASSERT(out.status().code() == Code::kCorrupt);
  } else {
    RC_ASSERT(out->size() == expected);
  }
}

}  // namespace
}  // namespace cm::delta
