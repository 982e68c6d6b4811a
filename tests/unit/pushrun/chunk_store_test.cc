// A node's store of one job item (lib/pushrun/chunk_store.h): append and
// complete, refusal of anything unverified, recovery after a crash at every
// byte of the last record, reading a growing item, and the final name.
#include "pushrun/chunk_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/test_util.h"
#include "unit/push/job_chunk_fixture.h"

namespace cm::pushrun {
namespace {

using push::kChunkHeaderSize;

using push::testing::SeededKey;

const pack::SigningKey& Base() {
  static const pack::SigningKey k = SeededKey(3);
  return k;
}

constexpr char kJob[] = "job-9";
constexpr uint32_t kItem = 2;

struct Item {
  std::vector<std::string> records;  // header and payload each; the last is END
  std::string content;
  std::string all() const {
    std::string s;
    for (const auto& r : records) s += r;
    return s;
  }
};

Item MakeItem(const std::vector<size_t>& sizes, const std::string& last = "", const std::string& job = kJob,
              uint32_t item = kItem, const pack::SigningKey& key = Base()) {
  Item it;
  std::vector<std::string> payloads;
  char c = 'a';
  for (size_t n : sizes) {
    std::string p;
    for (size_t i = 0; i < n; ++i) p.push_back(static_cast<char>(c + i % 13));
    ++c;
    it.content += p;
    payloads.push_back(p);
  }
  it.content += last;
  it.records = push::testing::SignRecords(key, job, item, payloads, last);
  return it;
}

std::unique_ptr<ChunkStore> OpenOk(const std::string& dir, const ChunkStoreOptions& o = {}) {
  auto s = ChunkStore::Open(dir, kJob, kItem, Base().pub, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

// Opens a store in dir, appends the item's first n records, closes it.
void StoreRecords(const std::string& dir, const Item& it, size_t n) {
  auto s = OpenOk(dir);
  ASSERT_TRUE(s);
  for (size_t i = 0; i < n; ++i) ASSERT_TRUE(s->Append(it.records[i]).ok()) << "record " << i;
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

uint64_t SizeOf(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : UINT64_MAX;
}

void TruncateFile(const std::string& p, uint64_t n) { ASSERT_EQ(::truncate(p.c_str(), static_cast<off_t>(n)), 0); }

TEST(ChunkStore, StoresAnItemAndNamesItOnlyWhenComplete) {
  test::TempDir d;
  const Item it = MakeItem({100, 1, 5000}, "end");
  auto s = OpenOk(d.path());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->part_path(), d / "job-9.2.part");
  EXPECT_EQ(s->records_path(), d / "job-9.2.rec");
  EXPECT_EQ(s->final_path(), d / "job-9.2");
  for (size_t i = 0; i < it.records.size(); ++i) {
    EXPECT_FALSE(s->complete());
    EXPECT_FALSE(Exists(s->final_path())) << "before record " << i;
    ASSERT_TRUE(s->Append(it.records[i]).ok()) << i;
    EXPECT_EQ(s->record_count(), i + 1);
    EXPECT_EQ(SizeOf(s->records_path()), (i + 1) * kChunkHeaderSize);
  }
  EXPECT_TRUE(s->complete());
  EXPECT_TRUE(s->cursor().ended);
  EXPECT_EQ(test::ReadFile(s->final_path()), it.content);
  EXPECT_FALSE(Exists(s->part_path()));
  auto r = s->Read(0, SIZE_MAX);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->bytes, it.all());
  EXPECT_EQ(r->count, it.records.size());
  EXPECT_TRUE(r->ended);
  // Reopened, a complete item stays complete and serves the same records.
  s.reset();
  s = OpenOk(d.path());
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->complete());
  EXPECT_EQ(s->recovery().dropped_records, 0u);
  EXPECT_EQ(s->Read(0, SIZE_MAX)->bytes, it.all());
  EXPECT_EQ(s->Append(it.records.back()).code(), Code::kOrder);
}

TEST(ChunkStore, RefusesUnverifiedRecordsAndWritesNothing) {
  test::TempDir d;
  const Item it = MakeItem({50, 50});
  const Item other_key = MakeItem({50, 50}, "", kJob, kItem, SeededKey(77));
  const Item other_item = MakeItem({50, 50}, "", kJob, kItem + 1);
  auto s = OpenOk(d.path());
  ASSERT_TRUE(s);
  std::string flipped = it.records[0];
  flipped[kChunkHeaderSize + 3] ^= 1;
  EXPECT_EQ(s->Append(flipped).code(), Code::kCorrupt);
  EXPECT_EQ(s->Append(other_key.records[0]).code(), Code::kAuth);
  EXPECT_EQ(s->Append(other_item.records[0]).code(), Code::kOrder);
  EXPECT_EQ(s->Append(it.records[1]).code(), Code::kOrder);
  EXPECT_EQ(s->Append(it.records[0].substr(0, 100)).code(), Code::kCorrupt);
  EXPECT_EQ(SizeOf(s->part_path()), 0u);
  EXPECT_EQ(SizeOf(s->records_path()), 0u);
  EXPECT_EQ(s->record_count(), 0u);
  ASSERT_TRUE(s->Append(it.records[0]).ok());
  auto h = push::ParseChunkHeader(it.records[1]);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(s->CheckHeader(*h).ok());
  EXPECT_EQ(s->CheckHeader(*push::ParseChunkHeader(it.records[0])).code(), Code::kOrder);
}

TEST(ChunkStore, ReopenResumesWhereItStopped) {
  test::TempDir d;
  const Item it = MakeItem({10, 20, 30});
  {
    auto s = OpenOk(d.path());
    ASSERT_TRUE(s->Append(it.records[0]).ok());
    ASSERT_TRUE(s->Append(it.records[1]).ok());
  }
  auto s = OpenOk(d.path());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->record_count(), 2u);
  EXPECT_EQ(s->cursor().index, 2u);
  EXPECT_EQ(s->cursor().offset, 30u);
  EXPECT_EQ(s->Append(it.records[1]).code(), Code::kOrder);
  ASSERT_TRUE(s->Append(it.records[2]).ok());
  ASSERT_TRUE(s->Append(it.records[3]).ok());
  EXPECT_TRUE(s->complete());
  EXPECT_EQ(test::ReadFile(s->final_path()), it.content);
}

// A process killed while appending record n leaves its payload partly or
// wholly written and its header partly or not at all written. Every such
// state, at every byte, reopens to exactly the records before n, and the
// item then completes from there.
TEST(ChunkStore, CrashAtEveryByteOfTheLastRecordRecoversToTheRecordBefore) {
  const Item it = MakeItem({40, 64, 33});
  const size_t last = 2;  // the record being appended when killed
  const uint64_t data_before = 40 + 64, data_full = data_before + 33;
  struct Cut {
    uint64_t data, rec;
  };
  std::vector<Cut> cuts;
  for (uint64_t k = 0; k < 33; ++k) cuts.push_back({data_before + k, last * kChunkHeaderSize});  // payload partial
  for (uint64_t k = 0; k < kChunkHeaderSize; ++k) cuts.push_back({data_full, last * kChunkHeaderSize + k});
  // Also: the sidecar got its header but the data lost bytes (kAtEnd and a power cut).
  for (uint64_t k = 0; k < 33; ++k) cuts.push_back({data_before + k, (last + 1) * kChunkHeaderSize});
  for (const Cut& c : cuts) {
    test::TempDir d;
    ASSERT_NO_FATAL_FAILURE(StoreRecords(d.path(), it, last + 1));
    TruncateFile(d / "job-9.2.part", c.data);
    TruncateFile(d / "job-9.2.rec", c.rec);
    auto s = OpenOk(d.path());
    ASSERT_TRUE(s) << c.data << " " << c.rec;
    EXPECT_EQ(s->record_count(), last) << c.data << " " << c.rec;
    EXPECT_EQ(s->cursor().offset, data_before);
    EXPECT_EQ(SizeOf(s->part_path()), data_before);
    EXPECT_EQ(SizeOf(s->records_path()), last * kChunkHeaderSize);
    EXPECT_EQ(s->recovery().dropped_data_bytes, c.data - data_before);
    EXPECT_EQ(s->recovery().dropped_records, c.rec > last * kChunkHeaderSize ? 1u : 0u);
    ASSERT_TRUE(s->Append(it.records[last]).ok());
    ASSERT_TRUE(s->Append(it.records[last + 1]).ok());
    ASSERT_TRUE(s->complete());
    ASSERT_EQ(test::ReadFile(s->final_path()), it.content);
  }
}

TEST(ChunkStore, ADamagedRecordDropsItAndEverythingAfter) {
  test::TempDir d;
  const Item it = MakeItem({10, 10, 10});
  ASSERT_NO_FATAL_FAILURE(StoreRecords(d.path(), it, 3));
  {
    int fd = ::open((d / "job-9.2.part").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "X", 1, 15), 1);  // inside record 1's payload
    ::close(fd);
  }
  auto s = OpenOk(d.path());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->record_count(), 1u);
  EXPECT_EQ(SizeOf(s->part_path()), 10u);
  EXPECT_EQ(s->recovery().dropped_records, 2u);
  EXPECT_EQ(s->recovery().dropped_data_bytes, 20u);
}

TEST(ChunkStore, AnotherKeysOrItemsFilesAreRefusedNotTruncated) {
  test::TempDir d;
  const Item it = MakeItem({10, 10});
  {
    auto s = OpenOk(d.path());
    ASSERT_TRUE(s->Append(it.records[0]).ok());
  }
  auto wrong_key = ChunkStore::Open(d.path(), kJob, kItem, SeededKey(77).pub);
  EXPECT_EQ(wrong_key.status().code(), Code::kAuth);
  EXPECT_EQ(SizeOf(d / "job-9.2.rec"), kChunkHeaderSize);
  EXPECT_EQ(SizeOf(d / "job-9.2.part"), 10u);
  // Another item's sidecar under this item's name.
  ASSERT_EQ(::rename((d / "job-9.2.rec").c_str(), (d / "job-9.5.rec").c_str()), 0);
  ASSERT_EQ(::rename((d / "job-9.2.part").c_str(), (d / "job-9.5.part").c_str()), 0);
  auto wrong_item = ChunkStore::Open(d.path(), kJob, 5, Base().pub);
  EXPECT_EQ(wrong_item.status().code(), Code::kCorrupt);
  EXPECT_EQ(SizeOf(d / "job-9.5.rec"), kChunkHeaderSize);
  EXPECT_EQ(ChunkStore::Open(d.path(), "bad/job", kItem, Base().pub).status().code(), Code::kUsage);
}

TEST(ChunkStore, ReadsAGrowingItemWhatIsThereNow) {
  test::TempDir d;
  const Item it = MakeItem({100, 100, 100});
  auto s = OpenOk(d.path());
  auto r = s->Read(0, 1 << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 0u);
  EXPECT_FALSE(r->ended);
  ASSERT_TRUE(s->Append(it.records[0]).ok());
  ASSERT_TRUE(s->Append(it.records[1]).ok());
  r = s->Read(0, 1 << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 2u);
  EXPECT_EQ(r->bytes, it.records[0] + it.records[1]);
  // A byte budget gives the records that fit, and never none.
  r = s->Read(0, 2 * (kChunkHeaderSize + 100) - 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 1u);
  EXPECT_EQ(r->bytes, it.records[0]);
  r = s->Read(1, 10);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 1u);
  EXPECT_EQ(r->count, 1u);
  EXPECT_EQ(r->bytes, it.records[1]);
  EXPECT_EQ(s->Read(2, 1 << 20)->count, 0u);
  EXPECT_EQ(s->Read(7, 1 << 20)->count, 0u);
  ASSERT_TRUE(s->Append(it.records[2]).ok());
  ASSERT_TRUE(s->Append(it.records[3]).ok());
  r = s->Read(2, 2 * (kChunkHeaderSize + 100));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 2u);  // 356 + 256 bytes fit
  EXPECT_TRUE(r->ended);
  EXPECT_EQ(s->Read(4, 1 << 20).status().code(), Code::kNotFound);
}

// One thread appends while another waits, reads and re-verifies what it
// gets, as a node serving onward does; a third follows the .part file as
// tail -f does, through completion.
TEST(ChunkStore, ReadersFollowAnItemWhileItIsAppended) {
  test::TempDir d;
  std::vector<size_t> sizes;
  for (int i = 0; i < 60; ++i) sizes.push_back(1 + (i * 37) % 700);
  const Item it = MakeItem(sizes, "fin");
  auto s = OpenOk(d.path(), {ChunkSync::kAtEnd});
  ASSERT_TRUE(s);
  const int tail_fd = ::open(s->part_path().c_str(), O_RDONLY);
  ASSERT_GE(tail_fd, 0);
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (const auto& r : it.records) {
      if (!s->Append(r).ok()) failed = true;
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  std::string served;
  push::ChunkVerifier v(Base().pub, kJob, kItem);
  uint64_t next = 0;
  std::string tailed;
  char buf[4096];
  while (true) {
    s->WaitForRecords(next, std::chrono::milliseconds(50));
    auto r = s->Read(next, 3000);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kNotFound);
      break;
    }
    std::string_view rest(r->bytes);
    for (uint64_t k = 0; k < r->count; ++k) {
      auto n = push::NextChunkRecordSize(rest);
      ASSERT_TRUE(n.ok() && *n > 0);
      ASSERT_TRUE(v.Check(rest.substr(0, *n)).ok()) << "record " << next + k;
      served += rest.substr(0, *n);
      rest.remove_prefix(*n);
    }
    EXPECT_TRUE(rest.empty());
    next += r->count;
    ssize_t got;
    while ((got = ::read(tail_fd, buf, sizeof buf)) > 0) tailed.append(buf, static_cast<size_t>(got));
    // What tail -f shows is always a prefix of the item.
    ASSERT_EQ(tailed, it.content.substr(0, tailed.size()));
  }
  writer.join();
  ssize_t got;
  while ((got = ::read(tail_fd, buf, sizeof buf)) > 0) tailed.append(buf, static_cast<size_t>(got));
  ::close(tail_fd);
  EXPECT_FALSE(failed);
  EXPECT_EQ(served, it.all());
  EXPECT_TRUE(v.cursor().ended);
  EXPECT_EQ(tailed, it.content);
  EXPECT_TRUE(s->complete());
}

TEST(ChunkStore, BothNamesOnOneFileOpenAsTheFinishedItem) {
  test::TempDir d;
  const Item it = MakeItem({10});
  ASSERT_NO_FATAL_FAILURE(StoreRecords(d.path(), it, it.records.size()));
  ASSERT_EQ(::link((d / "job-9.2").c_str(), (d / "job-9.2.part").c_str()), 0);
  auto s = OpenOk(d.path());
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->complete());
  EXPECT_FALSE(Exists(d / "job-9.2.part"));
  EXPECT_EQ(test::ReadFile(d / "job-9.2"), it.content);
}

TEST(ChunkStore, EndStoredButNotRenamedIsCompletedOnOpen) {
  test::TempDir d;
  const Item it = MakeItem({10, 5});
  ASSERT_NO_FATAL_FAILURE(StoreRecords(d.path(), it, it.records.size()));
  // As if killed after the END record's header but before the rename.
  ASSERT_EQ(::rename((d / "job-9.2").c_str(), (d / "job-9.2.part").c_str()), 0);
  auto s = OpenOk(d.path());
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->complete());
  EXPECT_EQ(test::ReadFile(d / "job-9.2"), it.content);
}

TEST(ChunkStore, AFinalNameWithoutItsEndIsUnfinishedAgain) {
  test::TempDir d;
  const Item it = MakeItem({10, 5}, "zz");
  ASSERT_NO_FATAL_FAILURE(StoreRecords(d.path(), it, it.records.size()));
  TruncateFile(d / "job-9.2.rec", 2 * kChunkHeaderSize + 100);  // the END record's header damaged
  auto s = OpenOk(d.path());
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->complete());
  EXPECT_FALSE(Exists(d / "job-9.2"));
  EXPECT_EQ(test::ReadFile(d / "job-9.2.part"), it.content.substr(0, 15));
  ASSERT_TRUE(s->Append(it.records.back()).ok());
  EXPECT_TRUE(s->complete());
  EXPECT_EQ(test::ReadFile(d / "job-9.2"), it.content);
}

}  // namespace
}  // namespace cm::pushrun
