// Assignment format v2: the chunk table after the trailer, the header fields
// that bind it, and that v1 stays readable.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "pack/assignment_reader.h"
#include "pack/assignment_writer.h"
#include "pack/chunk_table.h"
#include "pack/packer.h"
#include "support/test_util.h"

namespace cm::pack {
namespace {

using test::TempDir;

// Writes an assignment with one uncompressed CREATE of `size` bytes.
std::string WriteWithData(const TempDir& d, uint64_t size, uint32_t chunk_size) {
  std::string path = d / ("a" + std::to_string(chunk_size) + ".cma");
  WriterOptions wo;
  wo.serial = 9;
  wo.job_id = "chunks";
  wo.chunk_size = chunk_size;
  AssignmentWriter w;
  EXPECT_TRUE(w.Open(path, wo).ok());
  std::string data(size, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 11);
  Command c;
  c.op = Opcode::kCreate;
  c.path = "f";
  c.size = data.size();
  c.hash = HashBytes(data.data(), data.size());
  StringSource src(data);
  c.data = *w.AddStream(&src, data.size(), false);
  w.AddCommand(c);
  EXPECT_TRUE(w.Finish().ok());
  return path;
}

Header HeaderOf(const std::string& file) {
  Header h;
  EXPECT_TRUE(DecodeHeader(file, &h).ok());
  return h;
}

// Rewrites the header hash after a test edited header bytes.
void Reseal(std::string* f) {
  Hash256 hh = HashBytes(f->data(), kHeaderHashedSize);
  std::memcpy(f->data() + kHeaderHashedSize, hh.data(), 32);
}

Status VerifyFile(const TempDir& d, const std::string& bytes) {
  test::WriteFile(d / "t.cma", bytes);
  auto r = AssignmentReader::Open(d / "t.cma", {});
  if (!r.ok()) return r.status();
  return (*r)->Verify();
}

TEST(ChunkTable, ChunkCountIsTheCeilingAndZeroForNothing) {
  EXPECT_EQ(ChunkCountFor(0, kMinChunkSize), 0u);
  EXPECT_EQ(ChunkCountFor(1, kMinChunkSize), 1u);
  EXPECT_EQ(ChunkCountFor(kMinChunkSize, kMinChunkSize), 1u);
  EXPECT_EQ(ChunkCountFor(kMinChunkSize + 1, kMinChunkSize), 2u);
}

TEST(ChunkTable, ValidChunkSizesArePowersOfTwoFrom64KiBTo64MiB) {
  EXPECT_TRUE(IsValidChunkSize(64 << 10));
  EXPECT_TRUE(IsValidChunkSize(1 << 20));
  EXPECT_TRUE(IsValidChunkSize(64 << 20));
  EXPECT_FALSE(IsValidChunkSize(0));
  EXPECT_FALSE(IsValidChunkSize(32 << 10));
  EXPECT_FALSE(IsValidChunkSize(128 << 20));
  EXPECT_FALSE(IsValidChunkSize(3 << 20));
  EXPECT_TRUE(CheckChunkSizeOption(0).ok());
  EXPECT_EQ(CheckChunkSizeOption(1000).code(), Code::kUsage);
}

TEST(ChunkTable, HasherSplitsAtChunkBoundariesWhateverTheFeedSizes) {
  std::string data(3 * kMinChunkSize + 17, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  ChunkHasher one(kMinChunkSize);
  one.Update(data.data(), data.size());
  one.Finish();
  ChunkHasher bits(kMinChunkSize);
  for (size_t at = 0; at < data.size(); at += 1000) bits.Update(data.data() + at, std::min<size_t>(1000, data.size() - at));
  bits.Finish();
  ASSERT_EQ(one.completed().size(), 4u);
  EXPECT_EQ(one.completed(), bits.completed());
  EXPECT_EQ(one.completed()[3], HashBytes(data.data() + 3 * kMinChunkSize, 17));
}

TEST(ChunkTable, WriterDefaultsToVersion3With64KiBChunks) {
  TempDir d;
  std::string f = test::ReadFile(WriteWithData(d, 3 << 20, kDefaultChunkSize));
  Header h = HeaderOf(f);
  EXPECT_EQ(h.version(), 3);
  EXPECT_EQ(f[4], 3);  // the version field itself
  EXPECT_TRUE(h.compact_body);
  EXPECT_TRUE(h.flags & kFlagChunkTable);
  EXPECT_EQ(h.chunk_size, kDefaultChunkSize);
  const uint64_t covered = h.data_size + h.body_size;
  EXPECT_EQ(h.chunk_count, ChunkCountFor(covered, kDefaultChunkSize));
  EXPECT_EQ(kDefaultChunkSize, 64u * 1024);
  EXPECT_EQ(h.chunk_count, 49u);  // 3 MiB of data (48 chunks) plus segment and command framing
  EXPECT_EQ(f.size(), kHeaderSize + covered + kTrailerSize + 32 * h.chunk_count);
  EXPECT_EQ(WriterOptions().chunk_size, kDefaultChunkSize);
}

TEST(ChunkTable, TableHoldsTheHashOfEachPieceAfterTheHeaderUpToTheTrailer) {
  TempDir d;
  std::string f = test::ReadFile(WriteWithData(d, 200000, kMinChunkSize));
  Header h = HeaderOf(f);
  const Layout l = LayoutOf(h);
  ASSERT_EQ(h.chunk_count, 4u);
  std::string table = f.substr(l.table_begin);
  ASSERT_EQ(table.size(), 4u * 32);
  EXPECT_EQ(HashBytes(table.data(), table.size()), h.table_hash);
  for (uint64_t i = 0; i < h.chunk_count; ++i) {
    uint64_t begin = kHeaderSize + i * kMinChunkSize;
    uint64_t end = std::min<uint64_t>(begin + kMinChunkSize, l.covered_end);
    Hash256 want = HashBytes(f.data() + begin, end - begin);
    EXPECT_EQ(std::memcmp(table.data() + 32 * i, want.data(), 32), 0) << "chunk " << i;
  }
  EXPECT_EQ(TrailerHash(std::string_view(f).substr(l.covered_end, kTrailerSize)), h.trailer_hash);
  EXPECT_EQ(std::string_view(f).substr(l.covered_end, 4), "CMAT");
}

TEST(ChunkTable, ChunkSizeZeroWritesVersion1) {
  TempDir d;
  std::string f = test::ReadFile(WriteWithData(d, 100000, 0));
  Header h = HeaderOf(f);
  EXPECT_EQ(h.version(), 1);
  EXPECT_EQ(f[4], 1);
  EXPECT_EQ(h.flags & kFlagChunkTable, 0);
  EXPECT_EQ(h.chunk_size, 0u);
  EXPECT_EQ(h.chunk_count, 0u);
  EXPECT_EQ(f.size(), kHeaderSize + h.data_size + h.body_size + kTrailerSize);
  for (size_t i = 136; i < kHeaderHashedSize; ++i) EXPECT_EQ(f[i], 0) << "reserved byte " << i;
  EXPECT_TRUE(VerifyFile(d, f).ok());
}

TEST(ChunkTable, WriterRefusesABadChunkSize) {
  TempDir d;
  WriterOptions wo;
  wo.serial = 1;
  wo.job_id = "j";
  wo.chunk_size = 100000;
  AssignmentWriter w;
  EXPECT_EQ(w.Open(d / "x.cma", wo).code(), Code::kUsage);
}

TEST(ChunkTable, ReaderRefusesVersionsItDoesNotKnow) {
  TempDir d;
  std::string f = test::ReadFile(WriteWithData(d, 1000, kDefaultChunkSize));
  f[4] = 4;
  Reseal(&f);
  Status st = VerifyFile(d, f);
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("unsupported assignment version 4"), std::string::npos) << st.message();
}

TEST(ChunkTable, VersionAndChunkTableFlagMustAgree) {
  TempDir d;
  std::string v2 = test::ReadFile(WriteWithData(d, 1000, kDefaultChunkSize));
  std::string bad = v2;
  bad[4] = 1;  // v1 with the flag
  Reseal(&bad);
  EXPECT_EQ(VerifyFile(d, bad).code(), Code::kCorrupt);
  std::string v1 = test::ReadFile(WriteWithData(d, 1000, 0));
  bad = v1;
  bad[4] = 2;  // v2 without the flag
  Reseal(&bad);
  EXPECT_EQ(VerifyFile(d, bad).code(), Code::kCorrupt);
  bad[4] = 3;  // v3 without the flag
  Reseal(&bad);
  EXPECT_EQ(VerifyFile(d, bad).code(), Code::kCorrupt);
}

TEST(ChunkTable, AChunkCountThatDoesNotFitTheSizesIsRefused) {
  TempDir d;
  std::string f = test::ReadFile(WriteWithData(d, 200000, kMinChunkSize));
  uint32_t count = 5;  // 4 is right
  std::memcpy(f.data() + 140, &count, 4);
  Reseal(&f);
  Status st = VerifyFile(d, f);
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("chunk count"), std::string::npos) << st.message();
}

TEST(ChunkTable, ATableEntryThatDoesNotMatchItsChunkIsFoundEvenWithAConsistentTableHash) {
  TempDir d;
  std::string f = test::ReadFile(WriteWithData(d, 200000, kMinChunkSize));
  Header h = HeaderOf(f);
  const Layout l = LayoutOf(h);
  f[l.table_begin + 32 * 2] ^= 1;  // entry of chunk 2
  Hash256 th = HashBytes(f.data() + l.table_begin, f.size() - l.table_begin);
  std::memcpy(f.data() + 144, th.data(), 32);
  Reseal(&f);
  Status st = VerifyFile(d, f);
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("chunk 2 "), std::string::npos) << st.message();
}

TEST(ChunkTable, AChangedTableIsCaughtByTheTableHash) {
  TempDir d;
  std::string f = test::ReadFile(WriteWithData(d, 200000, kMinChunkSize));
  f[f.size() - 1] ^= 1;
  Status st = VerifyFile(d, f);
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("chunk table hash mismatch"), std::string::npos) << st.message();
}

TEST(ChunkTable, AChangedTrailerIsCaughtByTheTrailerHashAtOpen) {
  TempDir d;
  std::string f = test::ReadFile(WriteWithData(d, 1000, kDefaultChunkSize));
  const Layout l = LayoutOf(HeaderOf(f));
  f[l.covered_end + 10] ^= 1;  // body hash in the trailer
  test::WriteFile(d / "t.cma", f);
  auto r = AssignmentReader::Open(d / "t.cma", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
  EXPECT_NE(r.status().message().find("trailer hash mismatch"), std::string::npos) << r.status().message();
}

TEST(ChunkTable, ControlAssignmentsCarryAnEmptyTable) {
  TempDir d;
  PackOptions po;
  po.type = Type::kCommit;
  po.job_id = "rel";
  po.serial = 4;
  po.output = d / "c.cma";
  auto r = PackControl(po);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string f = test::ReadFile(d / "c.cma");
  Header h = HeaderOf(f);
  EXPECT_EQ(h.version(), 3);
  EXPECT_EQ(h.chunk_count, 0u);  // nothing between header and trailer (no commands: an empty body)
  EXPECT_EQ(f.size(), kHeaderSize + kTrailerSize);
  EXPECT_EQ(h.table_hash, HashBytes("", 0));
  EXPECT_TRUE(VerifyFile(d, f).ok());
  po.chunk_size = 0;
  po.output = d / "c1.cma";
  ASSERT_TRUE(PackControl(po).ok());
  EXPECT_EQ(HeaderOf(test::ReadFile(d / "c1.cma")).version(), 1);
}

TEST(ChunkTable, PackerRefusesABadChunkSizeBeforeTakingASerial) {
  TempDir d;
  PackOptions po;
  po.type = Type::kRollback;
  po.job_id = "rel";
  po.serial_file = d / "serial";
  po.output = d / "c.cma";
  po.chunk_size = 12345;
  EXPECT_EQ(PackControl(po).status().code(), Code::kUsage);
  EXPECT_NE(access((d / "serial").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace cm::pack
