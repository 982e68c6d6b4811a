// The receiving side's holding file (lib/push/chunked_file.h): chunks checked
// as they arrive, only checked bytes served, resume after a restart, rename
// when complete; one writer and many readers at once.
#include "push/chunked_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "chunk_plan_fixture.h"
#include "pack/assignment_reader.h"
#include "pack/packer.h"

namespace cm::push {
namespace {

using namespace std::chrono_literals;
using testing::HeaderOf;
using testing::MakeAssignment;
using testing::PlanOf;
using testing::TailOf;
using test::TempDir;

bool Exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

Deadline In(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

class ChunkedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = MakeAssignment(d_ / "src.cma", 200000);  // 4 chunks of 64 KiB, the last short
    ASSERT_FALSE(file_.empty());
    plan_ = PlanOf(file_);
    ASSERT_EQ(plan_.chunk_count(), 4u);
    final_ = d_ / "recv.cma";
  }
  std::unique_ptr<ChunkedFile> Open() {
    auto f = ChunkedFile::Open(final_, plan_, HeaderOf(file_), TailOf(file_));
    EXPECT_TRUE(f.ok()) << f.status().message();
    return f.ok() ? std::move(*f) : nullptr;
  }
  // The file's bytes [begin, end) appended in pieces of `piece` bytes.
  Status Feed(ChunkedFile* f, uint64_t begin, uint64_t end, size_t piece = 7919) {
    for (uint64_t at = begin; at < end; at += piece) {
      uint64_t n = std::min<uint64_t>(piece, end - at);
      CM_RETURN_IF_ERROR(f->Append(at, std::string_view(file_).substr(at, n)));
    }
    return Status::Ok();
  }
  std::string Read(const ChunkedFile& f, uint64_t offset, size_t n) {
    std::string buf(n, '\0');
    auto got = f.ReadAt(offset, std::span<char>(buf.data(), buf.size()));
    EXPECT_TRUE(got.ok()) << got.status().message();
    buf.resize(got.ok() ? *got : 0);
    return buf;
  }
  ByteRange Chunk(uint64_t i) const { return plan_.ChunkRange(i); }

  TempDir d_;
  std::string file_, final_;
  ChunkPlan plan_;
};

TEST_F(ChunkedFileTest, ReceivesTheMiddleInOrderAndRenamesWhenComplete) {
  auto f = Open();
  ASSERT_TRUE(f);
  EXPECT_TRUE(Exists(final_ + ".part"));
  EXPECT_FALSE(Exists(final_));
  ASSERT_TRUE(Feed(f.get(), plan_.covered_begin(), plan_.covered_end()).ok());
  EXPECT_TRUE(f->complete());
  EXPECT_EQ(f->verified(), plan_.covered_end() - plan_.covered_begin());
  EXPECT_EQ(f->watermark(), plan_.covered_end());
  EXPECT_FALSE(Exists(final_ + ".part"));
  EXPECT_EQ(test::ReadFile(final_), file_);
  // And it is a valid assignment for cm-apply's reader.
  auto r = pack::AssignmentReader::Open(final_, {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE((*r)->Verify().ok());
}

TEST_F(ChunkedFileTest, HeaderAndTailAreHeldFromTheStart) {
  auto f = Open();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->size(), file_.size());
  EXPECT_EQ(f->verified(), 0u);
  EXPECT_TRUE(f->held(0));
  EXPECT_TRUE(f->held(255));
  EXPECT_FALSE(f->held(256));
  EXPECT_TRUE(f->held(plan_.covered_end()));
  EXPECT_TRUE(f->held(file_.size() - 1));
  EXPECT_FALSE(f->held(file_.size()));
  EXPECT_EQ(Read(*f, 0, 1000), HeaderOf(file_));  // stops where the held bytes stop
  EXPECT_EQ(Read(*f, 256, 10), "");
  EXPECT_EQ(Read(*f, plan_.covered_end(), 100000), TailOf(file_));
  EXPECT_EQ(Read(*f, file_.size(), 10), "");
}

TEST_F(ChunkedFileTest, TheMiddleIsHeldOnlyUpToTheVerifiedWatermark) {
  auto f = Open();
  ASSERT_TRUE(f);
  const uint64_t half = Chunk(0).begin + Chunk(0).size() / 2;
  ASSERT_TRUE(Feed(f.get(), Chunk(0).begin, half).ok());
  EXPECT_EQ(f->verified(), 0u);  // received, not checked
  EXPECT_FALSE(f->held(Chunk(0).begin));
  ASSERT_TRUE(Feed(f.get(), half, Chunk(1).begin + 10).ok());
  EXPECT_EQ(f->watermark(), Chunk(0).end);
  EXPECT_TRUE(f->held(Chunk(0).end - 1));
  EXPECT_FALSE(f->held(Chunk(0).end));
  EXPECT_EQ(Read(*f, 100, 1 << 20), file_.substr(100, Chunk(0).end - 100));
  EXPECT_FALSE(f->complete());
}

TEST_F(ChunkedFileTest, ACorruptChunkIsDiscardedAndFetchedAgain) {
  auto f = Open();
  ASSERT_TRUE(f);
  ASSERT_TRUE(Feed(f.get(), Chunk(0).begin, Chunk(0).end).ok());
  std::string bad = file_.substr(Chunk(1).begin, Chunk(1).size());
  bad[1234] ^= 1;
  Status st = f->Append(Chunk(1).begin, bad);
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("chunk 1 "), std::string::npos) << st.message();
  EXPECT_EQ(f->watermark(), Chunk(1).begin);
  EXPECT_EQ(f->bad_chunks(), 1u);
  EXPECT_FALSE(f->held(Chunk(1).begin));
  EXPECT_TRUE(f->failure().ok());  // not fatal: fetch again from the watermark
  ASSERT_TRUE(Feed(f.get(), f->watermark(), plan_.covered_end()).ok());
  EXPECT_TRUE(f->complete());
  EXPECT_EQ(test::ReadFile(final_), file_);
}

TEST_F(ChunkedFileTest, AMismatchDropsTheRestOfThatAppend) {
  auto f = Open();
  ASSERT_TRUE(f);
  std::string bytes = file_.substr(Chunk(0).begin, Chunk(2).end - Chunk(0).begin);
  bytes[Chunk(1).begin - Chunk(0).begin + 5] ^= 1;
  EXPECT_EQ(f->Append(Chunk(0).begin, bytes).code(), Code::kCorrupt);
  EXPECT_EQ(f->watermark(), Chunk(1).begin);
  // What followed the bad chunk was dropped: continuing after it is a gap.
  EXPECT_EQ(f->Append(Chunk(2).begin, file_.substr(Chunk(2).begin, 10)).code(), Code::kFailure);
}

TEST_F(ChunkedFileTest, BytesBeforeTheWatermarkAndInTheTailAreIgnored) {
  auto f = Open();
  ASSERT_TRUE(f);
  ASSERT_TRUE(Feed(f.get(), Chunk(0).begin, Chunk(1).end).ok());
  std::string junk(Chunk(1).end, 'j');
  EXPECT_TRUE(f->Append(0, junk).ok());  // all below the watermark
  EXPECT_EQ(f->watermark(), Chunk(1).end);
  EXPECT_EQ(Read(*f, Chunk(0).begin, 100), file_.substr(Chunk(0).begin, 100));
  EXPECT_TRUE(f->Append(plan_.covered_end(), std::string(50, 'j')).ok());
  EXPECT_EQ(Read(*f, plan_.covered_end(), 200), TailOf(file_).substr(0, 200));
}

TEST_F(ChunkedFileTest, TheWholeFileFromOffsetZeroCompletesIt) {
  auto f = Open();
  ASSERT_TRUE(f);
  ASSERT_TRUE(f->Append(0, file_).ok());  // a plain "Range: bytes=0-" stream
  EXPECT_TRUE(f->complete());
  EXPECT_EQ(test::ReadFile(final_), file_);
}

TEST_F(ChunkedFileTest, AGapIsAnError) {
  auto f = Open();
  ASSERT_TRUE(f);
  ASSERT_TRUE(Feed(f.get(), Chunk(0).begin, Chunk(0).begin + 100).ok());
  Status st = f->Append(Chunk(0).begin + 200, file_.substr(Chunk(0).begin + 200, 100));
  EXPECT_EQ(st.code(), Code::kFailure);
  EXPECT_NE(st.message().find("gap"), std::string::npos);
  ASSERT_TRUE(Feed(f.get(), Chunk(0).begin + 100, plan_.covered_end()).ok());
  EXPECT_TRUE(f->complete());
}

TEST_F(ChunkedFileTest, ANewSourceResumingAtTheWatermarkRestartsAHalfChunk) {
  auto f = Open();
  ASSERT_TRUE(f);
  ASSERT_TRUE(Feed(f.get(), Chunk(0).begin, Chunk(0).end).ok());
  // The first source sent garbage for half of chunk 1, then went away.
  ASSERT_TRUE(f->Append(Chunk(1).begin, std::string(30000, 'g')).ok());
  EXPECT_EQ(f->watermark(), Chunk(1).begin);
  ASSERT_TRUE(Feed(f.get(), Chunk(1).begin, plan_.covered_end()).ok());
  EXPECT_EQ(f->bad_chunks(), 0u);
  EXPECT_TRUE(f->complete());
  EXPECT_EQ(test::ReadFile(final_), file_);
}

TEST_F(ChunkedFileTest, ResumeContinuesAfterTheLastGoodChunk) {
  {
    auto f = Open();
    ASSERT_TRUE(f);
    ASSERT_TRUE(Feed(f.get(), Chunk(0).begin, Chunk(2).begin + 5000).ok());
    EXPECT_EQ(f->watermark(), Chunk(2).begin);
  }  // the receiver stops
  auto f = Open();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->watermark(), Chunk(2).begin);
  EXPECT_TRUE(f->held(Chunk(1).end - 1));
  EXPECT_EQ(f->Append(Chunk(2).begin + 5000, "x").code(), Code::kFailure);  // the half chunk is gone
  ASSERT_TRUE(Feed(f.get(), f->watermark(), plan_.covered_end()).ok());
  EXPECT_TRUE(f->complete());
  EXPECT_EQ(test::ReadFile(final_), file_);
}

TEST_F(ChunkedFileTest, ResumeRechecksTheChunksOnDisk) {
  {
    auto f = Open();
    ASSERT_TRUE(f);
    ASSERT_TRUE(Feed(f.get(), Chunk(0).begin, Chunk(2).end).ok());
  }
  // Damage chunk 1 on disk: the resume keeps chunk 0 only.
  std::string part = test::ReadFile(final_ + ".part");
  part[Chunk(1).begin + 77] ^= 1;
  test::WriteFile(final_ + ".part", part);
  auto f = Open();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->watermark(), Chunk(1).begin);
  ASSERT_TRUE(Feed(f.get(), f->watermark(), plan_.covered_end()).ok());
  EXPECT_EQ(test::ReadFile(final_), file_);
}

TEST_F(ChunkedFileTest, APartFileOfAnotherAssignmentIsStartedAfresh) {
  std::string other = MakeAssignment(d_ / "other.cma", 200000);
  other[30] ^= 1;  // another header under the same name
  test::WriteFile(final_ + ".part", other);
  auto f = Open();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->verified(), 0u);
  test::WriteFile(final_ + ".part", std::string(10, 'z'));  // truncated junk
  f = Open();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->verified(), 0u);
  ASSERT_TRUE(Feed(f.get(), plan_.covered_begin(), plan_.covered_end()).ok());
  EXPECT_EQ(test::ReadFile(final_), file_);
}

TEST_F(ChunkedFileTest, AnExistingCompleteCopyOpensComplete) {
  test::WriteFile(final_, file_);
  auto f = Open();
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->complete());
  EXPECT_EQ(f->watermark(), plan_.covered_end());
  EXPECT_EQ(Read(*f, 0, file_.size() + 10), file_);
  EXPECT_TRUE(f->Append(300, "ignored").ok());
  EXPECT_FALSE(Exists(final_ + ".part"));
}

TEST_F(ChunkedFileTest, AnExistingFinalFileWithOtherContentIsLeftAlone) {
  std::string other = file_;
  other[100000] ^= 1;
  test::WriteFile(final_, other);
  auto f = ChunkedFile::Open(final_, plan_, HeaderOf(file_), TailOf(file_));
  EXPECT_EQ(f.status().code(), Code::kFailure);
  EXPECT_EQ(test::ReadFile(final_), other);
}

TEST_F(ChunkedFileTest, OpenRefusesAHeaderOrTailThatIsNotThePlans) {
  std::string header = HeaderOf(file_), tail = TailOf(file_);
  std::string h2 = header, t2 = tail, t3 = tail;
  h2[30] ^= 1;
  t2[tail.size() - 1] ^= 1;  // the table
  t3[60] ^= 1;               // the signature field
  EXPECT_EQ(ChunkedFile::Open(final_, plan_, h2, tail).status().code(), Code::kFailure);
  EXPECT_EQ(ChunkedFile::Open(final_, plan_, header, t2).status().code(), Code::kFailure);
  EXPECT_EQ(ChunkedFile::Open(final_, plan_, header, t3).status().code(), Code::kFailure);
  EXPECT_EQ(ChunkedFile::Open(final_, plan_, header, tail.substr(1)).status().code(), Code::kFailure);
  EXPECT_FALSE(Exists(final_ + ".part"));
}

TEST_F(ChunkedFileTest, AnAssignmentWithNoChunksIsCompleteAtOnce) {
  pack::PackOptions po;
  po.type = pack::Type::kCommit;
  po.job_id = "rel-42";
  po.serial = 43;
  po.output = d_ / "c.cma";
  ASSERT_TRUE(pack::PackControl(po).ok());
  std::string c = test::ReadFile(d_ / "c.cma");
  auto f = ChunkedFile::Open(d_ / "c-recv.cma", PlanOf(c), HeaderOf(c), TailOf(c));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_TRUE((*f)->complete());
  EXPECT_EQ(test::ReadFile(d_ / "c-recv.cma"), c);
}

TEST_F(ChunkedFileTest, WaitForWakesWhenTheByteIsChecked) {
  auto f = Open();
  ASSERT_TRUE(f);
  std::atomic<int> result{-1};
  std::thread reader([&] {
    auto r = f->WaitFor(Chunk(1).begin + 3, In(10s));
    result = r.ok() ? (*r ? 1 : 0) : 2;
  });
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(Feed(f.get(), Chunk(0).begin, Chunk(1).end - 1).ok());
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(result.load(), -1);  // chunk 1 received but for one byte: not held
  ASSERT_TRUE(Feed(f.get(), Chunk(1).end - 1, Chunk(1).end).ok());
  reader.join();
  EXPECT_EQ(result.load(), 1);
}

TEST_F(ChunkedFileTest, WaitForTimesOutPastTheEndIsNotFoundAndAFailureWakesWaiters) {
  auto f = Open();
  ASSERT_TRUE(f);
  auto held = f->WaitFor(10, In(0ms));
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(*held);
  auto late = f->WaitFor(300, In(30ms));
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(*late);
  EXPECT_EQ(f->WaitFor(file_.size(), In(10s)).status().code(), Code::kNotFound);

  Status got;
  std::thread reader([&] { got = f->WaitFor(300, In(10s)).status(); });
  std::this_thread::sleep_for(20ms);
  f->Fail(Error(Code::kIo, "source gone"));
  reader.join();
  EXPECT_EQ(got.code(), Code::kIo);
  EXPECT_EQ(f->Append(256, "x").code(), Code::kIo);
  EXPECT_TRUE(f->held(0));  // held bytes stay readable
  EXPECT_EQ(Read(*f, 0, 256), HeaderOf(file_));
}

// One writer appends in random pieces (with some corrupt chunks it must
// refetch) while readers stream the whole file the way an HTTP handler does:
// every byte a reader gets must be the original's.
TEST_F(ChunkedFileTest, ReadersOnlyEverSeeCheckedBytesWhileTheWriterAppends) {
  file_ = MakeAssignment(d_ / "big.cma", 1500000);  // 23 chunks
  plan_ = PlanOf(file_);
  ASSERT_GT(plan_.chunk_count(), 20u);
  std::shared_ptr<ChunkedFile> f = Open();
  ASSERT_TRUE(f);
  std::atomic<int> bad_reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      std::string buf(1000 + 3000 * t, '\0');
      uint64_t pos = t * 1000;  // some start mid-file
      while (pos < f->size()) {
        auto w = f->WaitFor(pos, In(20s));
        if (!w.ok() || !*w) {
          ++bad_reads;
          return;
        }
        auto n = f->ReadAt(pos, std::span<char>(buf.data(), buf.size()));
        if (!n.ok() || *n == 0 || file_.compare(pos, *n, buf, 0, *n) != 0) {
          ++bad_reads;
          return;
        }
        pos += *n;
      }
    });
  }
  std::mt19937 rng(7);
  uint64_t pos = plan_.covered_begin();
  int corrupted = 0;
  while (!f->complete()) {
    size_t n = std::min<uint64_t>(1 + rng() % 40000, plan_.covered_end() - pos);
    std::string piece = file_.substr(pos, n);
    if (rng() % 25 == 0) {
      piece[rng() % n] ^= 0x20;
      ++corrupted;
    }
    Status st = f->Append(pos, piece);
    if (st.ok()) {
      pos += n;
    } else {
      ASSERT_EQ(st.code(), Code::kCorrupt) << st.message();
      pos = f->watermark();  // fetch again from there
    }
  }
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_GT(corrupted, 0);
  EXPECT_EQ(test::ReadFile(final_), file_);
}

}  // namespace
}  // namespace cm::push
