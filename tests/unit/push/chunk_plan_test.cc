// The relay's view of an assignment before its middle arrives: header and
// tail in, chunk plan out (lib/push/chunk_plan.h).
#include "push/chunk_plan.h"

#include <gtest/gtest.h>

#include "pack/keys.h"
#include "pack/packer.h"
#include "chunk_plan_fixture.h"
#include "util/exit_codes.h"

namespace cm::push {
namespace {

using testing::HeaderOf;
using testing::MakeAssignment;
using testing::TailOf;
using test::TempDir;

constexpr uint64_t kData = 200000;  // four chunks of 64 KiB, the last one short

class ChunkPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pack::GenerateSigningKey(d_ / "k").ok());
    ASSERT_TRUE(pack::GenerateSigningKey(d_ / "other").ok());
    sk_ = *pack::LoadSigningKey(d_ / "k");
    pk_ = *pack::LoadPublicKey(d_ / "k.pub");
    other_ = *pack::LoadPublicKey(d_ / "other.pub");
    file_ = MakeAssignment(d_ / "a.cma", kData);
    signed_ = MakeAssignment(d_ / "s.cma", kData, pack::kMinChunkSize, &sk_);
    ASSERT_FALSE(file_.empty());
    ASSERT_FALSE(signed_.empty());
  }
  TempDir d_;
  pack::SigningKey sk_;
  pack::PublicKey pk_, other_;
  std::string file_, signed_;
};

TEST_F(ChunkPlanTest, HeadAndTailRangesNameTheHeaderThenTrailerAndTable) {
  auto r = HeadAndTailRanges(HeaderOf(file_));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->head, (ByteRange{0, 256}));
  EXPECT_EQ(r->tail.end, file_.size());
  EXPECT_EQ(r->tail.size(), 128u + 32u * 4);
  EXPECT_EQ(file_.substr(r->tail.begin, 4), "CMAT");
}

TEST_F(ChunkPlanTest, PlanDescribesTheFileAndItsChunks) {
  auto p = ParseChunkPlan(HeaderOf(file_), TailOf(file_), nullptr);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->file_size(), file_.size());
  EXPECT_EQ(p->chunk_size(), pack::kMinChunkSize);
  EXPECT_EQ(p->chunk_count(), 4u);
  EXPECT_EQ(p->covered_begin(), 256u);
  EXPECT_EQ(p->covered_end(), file_.size() - 128 - 4 * 32);
  EXPECT_EQ(p->tail(), (ByteRange{p->covered_end(), file_.size()}));
  EXPECT_EQ(p->serial(), 42u);
  EXPECT_EQ(p->job_id(), "rel-42");
  EXPECT_EQ(p->type(), pack::Type::kPublish);
  EXPECT_EQ(p->part(), 2u);
  EXPECT_EQ(p->flags(), pack::kFlagLastPart | pack::kFlagChunkTable);
  EXPECT_FALSE(p->signature_checked());
  EXPECT_EQ(p->header_bytes(), HeaderOf(file_));
  for (uint64_t i = 0; i < p->chunk_count(); ++i) {
    ByteRange r = p->ChunkRange(i);
    EXPECT_EQ(p->hashes()[i], HashBytes(file_.data() + r.begin, r.size())) << "chunk " << i;
  }
}

TEST_F(ChunkPlanTest, ChunksTileTheMiddleAndTheLastIsShorter) {
  ChunkPlan p = testing::PlanOf(file_);
  uint64_t next = p.covered_begin();
  for (uint64_t i = 0; i < p.chunk_count(); ++i) {
    ByteRange r = p.ChunkRange(i);
    EXPECT_EQ(r.begin, next);
    EXPECT_EQ(p.ChunkOf(r.begin), i);
    EXPECT_EQ(p.ChunkOf(r.end - 1), i);
    EXPECT_EQ(r.size(), i + 1 < p.chunk_count() ? p.chunk_size() : p.covered_end() - r.begin);
    next = r.end;
  }
  EXPECT_EQ(next, p.covered_end());
  EXPECT_LT(p.ChunkRange(3).size(), p.chunk_size());
  EXPECT_EQ(p.ChunkRange(4), (ByteRange{p.covered_end(), p.covered_end()}));
  EXPECT_FALSE(p.ChunkOf(0).has_value());    // header
  EXPECT_FALSE(p.ChunkOf(255).has_value());
  EXPECT_FALSE(p.ChunkOf(p.covered_end()).has_value());  // trailer
  EXPECT_FALSE(p.ChunkOf(p.file_size()).has_value());
}

TEST_F(ChunkPlanTest, SignatureIsCheckedWhenAKeyIsGiven) {
  auto p = ParseChunkPlan(HeaderOf(signed_), TailOf(signed_), &pk_);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(p->signature_checked());
  EXPECT_TRUE(p->flags() & pack::kFlagSigned);
}

TEST_F(ChunkPlanTest, SignatureFailuresAreAuthErrorsWithExitCode5) {
  auto wrong_key = ParseChunkPlan(HeaderOf(signed_), TailOf(signed_), &other_);
  EXPECT_EQ(wrong_key.status().code(), Code::kAuth);
  EXPECT_EQ(ExitCodeFor(wrong_key.status()), kExitAuth);
  EXPECT_NE(wrong_key.status().message().find("another key"), std::string::npos);

  std::string tail = TailOf(signed_);
  tail[40 + 5] ^= 1;  // inside the signature
  auto bad_sig = ParseChunkPlan(HeaderOf(signed_), tail, &pk_);
  EXPECT_EQ(bad_sig.status().code(), Code::kAuth);
  EXPECT_NE(bad_sig.status().message().find("bad signature"), std::string::npos);

  auto unsigned_with_key = ParseChunkPlan(HeaderOf(file_), TailOf(file_), &pk_);
  EXPECT_EQ(unsigned_with_key.status().code(), Code::kAuth);
  EXPECT_NE(unsigned_with_key.status().message().find("not signed"), std::string::npos);
}

TEST_F(ChunkPlanTest, WithoutAKeyASignedAssignmentParsesUnchecked) {
  auto p = ParseChunkPlan(HeaderOf(signed_), TailOf(signed_), nullptr);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_FALSE(p->signature_checked());
}

TEST_F(ChunkPlanTest, UnsignedAssignmentWithSignatureBytesIsCorrupt) {
  std::string tail = TailOf(file_);
  tail[50] = 1;
  EXPECT_EQ(ParseChunkPlan(HeaderOf(file_), tail, nullptr).status().code(), Code::kCorrupt);
}

TEST_F(ChunkPlanTest, EveryFlippedByteOfHeaderOrTailIsRefused) {
  const std::string header = HeaderOf(signed_), tail = TailOf(signed_);
  for (size_t i = 0; i < header.size() + tail.size(); ++i) {
    std::string h = header, t = tail;
    if (i < h.size())
      h[i] ^= 0x10;
    else
      t[i - h.size()] ^= 0x10;
    auto p = ParseChunkPlan(h, t, &pk_);
    ASSERT_FALSE(p.ok()) << "flip at " << i;
    EXPECT_TRUE(p.status().code() == Code::kCorrupt || p.status().code() == Code::kAuth) << p.status().message();
  }
}

TEST_F(ChunkPlanTest, ATailOfTheWrongSizeIsRefused) {
  const std::string tail = TailOf(file_);
  for (std::string t : {std::string(), tail.substr(0, 128), tail.substr(0, tail.size() - 1), tail + "x",
                        tail + std::string(32, '\0')}) {
    auto p = ParseChunkPlan(HeaderOf(file_), t, nullptr);
    EXPECT_EQ(p.status().code(), Code::kCorrupt) << "tail of " << t.size() << " bytes";
  }
}

TEST_F(ChunkPlanTest, AChangedTableIsCaughtByTheTableHash) {
  std::string tail = TailOf(file_);
  tail[128 + 40] ^= 1;  // second chunk's hash
  auto p = ParseChunkPlan(HeaderOf(file_), tail, nullptr);
  EXPECT_EQ(p.status().code(), Code::kCorrupt);
  EXPECT_NE(p.status().message().find("chunk table hash"), std::string::npos) << p.status().message();
}

TEST_F(ChunkPlanTest, AChangedTrailerIsCaughtWithoutAKey) {
  std::string tail = TailOf(file_);
  tail[8] ^= 1;  // body hash
  auto p = ParseChunkPlan(HeaderOf(file_), tail, nullptr);
  EXPECT_EQ(p.status().code(), Code::kCorrupt);
  EXPECT_NE(p.status().message().find("trailer hash"), std::string::npos) << p.status().message();
}

TEST_F(ChunkPlanTest, Version1HasNoChunkTableAndIsRefused) {
  std::string v1 = MakeAssignment(d_ / "v1.cma", 1000, 0);
  auto r = HeadAndTailRanges(HeaderOf(v1));
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
  EXPECT_NE(r.status().message().find("version 1"), std::string::npos) << r.status().message();
  auto p = ParseChunkPlan(HeaderOf(v1), v1.substr(v1.size() - 128), nullptr);
  EXPECT_EQ(p.status().code(), Code::kCorrupt);
}

TEST_F(ChunkPlanTest, AShortOrGarbageHeaderIsRefused) {
  EXPECT_EQ(HeadAndTailRanges("").status().code(), Code::kCorrupt);
  EXPECT_EQ(HeadAndTailRanges(HeaderOf(file_).substr(0, 255)).status().code(), Code::kCorrupt);
  EXPECT_EQ(HeadAndTailRanges(std::string(256, 'x')).status().code(), Code::kCorrupt);
  EXPECT_EQ(ParseChunkPlan(file_.substr(0, 257), TailOf(file_), nullptr).status().code(), Code::kCorrupt);
}

TEST_F(ChunkPlanTest, AControlAssignmentHasNoChunks) {
  pack::PackOptions po;
  po.type = pack::Type::kCommit;
  po.job_id = "rel-42";
  po.serial = 43;
  po.output = d_ / "c.cma";
  po.sign = sk_;
  ASSERT_TRUE(pack::PackControl(po).ok());
  std::string c = test::ReadFile(d_ / "c.cma");
  auto p = ParseChunkPlan(HeaderOf(c), TailOf(c), &pk_);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->chunk_count(), 0u);
  EXPECT_EQ(p->covered_begin(), p->covered_end());
  EXPECT_EQ(p->file_size(), 384u);
  EXPECT_EQ(p->type(), pack::Type::kCommit);
}

}  // namespace
}  // namespace cm::push
