// Bounded work before trust in a relay's fetch, on loopback against a real
// http::Server: a header that declares a huge chunk table is refused after
// its 256 bytes (the process stays small); with a key, an unsigned header
// never gets its table fetched; the declared size is checked against the
// spool's free space before anything is written; and a file in the spool
// that did not arrive through a checked fetch (planted, truncated, changed,
// renamed, symlinked, signed by another key) is never held, complete or
// served over /v1/content.
#include "pushrun/fetch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "http/client.h"
#include "http/server.h"
#include "pack/keys.h"
#include "pack/packer.h"
#include "push/held_content.h"
#include "push/relay_core.h"
#include "pushrun/content_body.h"
#include "pushrun/relay.h"
#include "support/test_util.h"
#include "unit/push/chunk_plan_fixture.h"

namespace cm::pushrun {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A resource that is `header` followed by zeros up to `size` bytes, made up
// as it is read (so it can claim hundreds of GiB); counts the bytes served.
class LyingSource : public http::BodySource {
 public:
  LyingSource(std::string header, uint64_t size) : header_(std::move(header)), size_(size) {}
  uint64_t size() const override { return size_; }
  Result<size_t> Read(uint64_t offset, std::span<char> out, std::chrono::steady_clock::time_point) override {
    size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), size_ - offset));
    for (size_t i = 0; i < n; ++i) out[i] = offset + i < header_.size() ? header_[offset + i] : '\0';
    served += n;
    return n;
  }
  std::atomic<uint64_t> served{0};

 private:
  std::string header_;
  uint64_t size_;
};

// A valid v2 header (its hash checks) that declares `chunks` chunks of 64 KiB.
std::string HeaderDeclaring(uint64_t chunks, uint64_t serial = 42) {
  pack::Header h;
  h.type = pack::Type::kPublish;
  h.flags = pack::kFlagChunkTable;
  h.serial = serial;
  h.job_id = "big";
  h.chunk_size = pack::kMinChunkSize;
  h.data_size = chunks * pack::kMinChunkSize;
  h.chunk_count = static_cast<uint32_t>(chunks);
  return pack::EncodeHeader(h);
}

uint64_t FileSizeDeclaredBy(const std::string& header) {
  auto r = push::HeadAndTailRanges(header);
  return r.ok() ? r->file_size() : 0;
}

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::unique_ptr<http::Server> Serve(std::shared_ptr<http::BodySource> src) {
  auto s = http::Server::Start({}, [src](const http::Request& req) {
    if (req.path() != "/v1/content/42" && req.path() != "/v1/content/43") return http::Response::Json(404, "{}");
    http::Response r;
    r.content_type = "application/octet-stream";
    r.stream = src;
    return r;
  });
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::string Base(const http::Server& s) { return "http://" + s.address(); }

class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pack::GenerateSigningKey(dir_ / "ccm.key").ok());
    ASSERT_TRUE(pack::GenerateSigningKey(dir_ / "other.key").ok());
    auto k = pack::LoadSigningKey(dir_ / "ccm.key");
    ASSERT_TRUE(k.ok());
    key_ = *k;
    fs::create_directories(spool());
    fs::create_directories(dir_ / "src");
    signed_ = push::testing::MakeAssignment(dir_ / "src/signed.cma", 300'000, pack::kMinChunkSize, &key_);
    unsigned_ = push::testing::MakeAssignment(dir_ / "src/unsigned.cma", 300'000);
    auto o = pack::LoadSigningKey(dir_ / "other.key");
    ASSERT_TRUE(o.ok());
    other_ = push::testing::MakeAssignment(dir_ / "src/other.cma", 300'000, pack::kMinChunkSize, &*o);
    ASSERT_FALSE(signed_.empty());
    ASSERT_FALSE(unsigned_.empty());
    ASSERT_FALSE(other_.empty());
  }
  std::string spool() const { return dir_ / "spool"; }
  FetchTarget Target(uint64_t serial = 42, bool keyed = true) {
    FetchTarget t;
    t.serial = serial;
    t.path = spool() + "/" + std::to_string(serial) + ".cma";
    if (keyed) t.pub_key = dir_ / "ccm.key.pub";
    t.idle_timeout_s = 5;
    return t;
  }
  void Plant(const std::string& bytes, uint64_t serial = 42) {
    std::ofstream(spool() + "/" + std::to_string(serial) + ".cma", std::ios::binary) << bytes;
  }
  bool SpoolEmpty() const { return fs::is_empty(spool()); }

  test::TempDir dir_;
  pack::SigningKey key_;
  std::string signed_, unsigned_, other_;
};

TEST_F(FetchTest, AHeaderDeclaringTwoToThe22ChunksIsRefusedAfterItsHeaderAlone) {
  for (bool keyed : {false, true}) {
    const std::string header = HeaderDeclaring(uint64_t{1} << 22);
    auto src = std::make_shared<LyingSource>(header, FileSizeDeclaredBy(header));
    auto server = Serve(src);
    ASSERT_TRUE(server);
    const long rss0 = RssKb();
    Fetcher f(Target(42, keyed));
    Status st = f.FetchFrom(Base(*server), nullptr);
    EXPECT_EQ(st.code(), Code::kCorrupt) << st.ToString();
    EXPECT_NE(st.message().find("header declares 4194304 chunks (a chunk table of 134217728 bytes); at most 1048576 "
                                "accepted"),
              std::string::npos)
        << st.message();
    EXPECT_EQ(src->served.load(), 256u);  // the header, nothing of the 128 MiB tail
    EXPECT_LT(RssKb() - rss0, 16 * 1024) << "kB of RSS grew";
    EXPECT_FALSE(f.complete());
    EXPECT_EQ(f.held(), nullptr);
    EXPECT_TRUE(SpoolEmpty());
  }
}

TEST_F(FetchTest, WithAKeyAnUnsignedHeadersTableIsNeverFetched) {
  const std::string header = HeaderDeclaring(uint64_t{1} << 16);  // a 2 MiB table, within the limits
  auto src = std::make_shared<LyingSource>(header, FileSizeDeclaredBy(header));
  auto server = Serve(src);
  ASSERT_TRUE(server);
  Fetcher f(Target());
  Status st = f.FetchFrom(Base(*server), nullptr);
  EXPECT_NE(st.code(), Code::kOk);
  EXPECT_EQ(src->served.load(), 256u + pack::kTrailerSize) << st.ToString();  // header and trailer only
  EXPECT_TRUE(SpoolEmpty());
}

TEST_F(FetchTest, AForgedSignatureIsRefusedBeforeTheTable) {
  // other_ is well formed and signed, by a key the relay does not trust.
  auto src = std::make_shared<LyingSource>(other_, other_.size());  // serves other_ exactly
  auto server = Serve(src);
  ASSERT_TRUE(server);
  Fetcher f(Target());
  push::FetchFault fault = push::FetchFault::kNone;
  Status st = f.FetchFrom(Base(*server), nullptr, nullptr, &fault);
  EXPECT_EQ(st.code(), Code::kAuth) << st.ToString();
  EXPECT_EQ(fault, push::FetchFault::kAuth);  // the relay decides whose: its source's, or its own key's
  EXPECT_EQ(src->served.load(), 256u + pack::kTrailerSize);
  EXPECT_TRUE(SpoolEmpty());
}

TEST_F(FetchTest, AllowUnsignedTakesAnUnsignedFileButStillChecksASignedOne) {
  FetchTarget t = Target();
  t.allow_unsigned = true;
  {
    auto server = Serve(std::make_shared<http::StringSource>(unsigned_));
    ASSERT_TRUE(server);
    Fetcher f(t);
    Status st = f.FetchFrom(Base(*server), nullptr);
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE(f.complete());
  }
  fs::remove_all(spool());
  fs::create_directories(spool());
  auto src = std::make_shared<LyingSource>(other_, other_.size());
  auto server = Serve(src);
  ASSERT_TRUE(server);
  Fetcher f(t);
  EXPECT_EQ(f.FetchFrom(Base(*server), nullptr).code(), Code::kAuth) << "signed by another key";
  EXPECT_FALSE(f.complete());
}

TEST_F(FetchTest, DeclaredSizeIsCheckedAgainstFreeSpaceBeforeWriting) {
  auto server = Serve(std::make_shared<http::StringSource>(signed_));
  ASSERT_TRUE(server);
  FetchTarget t = Target();
  std::string asked_dir;
  t.free_space = [&](const std::string& dir) -> Result<uint64_t> {
    asked_dir = dir;
    return uint64_t{1000};
  };
  Fetcher f(t);
  push::FetchFault fault = push::FetchFault::kNone;
  Status st = f.FetchFrom(Base(*server), nullptr, nullptr, &fault);
  EXPECT_EQ(st.code(), Code::kNoSpace) << st.ToString();
  EXPECT_EQ(fault, push::FetchFault::kLocal);  // the server's failure, not its source's (issue 12)
  EXPECT_NE(st.message().find("no space: need " + std::to_string(signed_.size()) + ", have 1000"), std::string::npos)
      << st.message();
  EXPECT_EQ(asked_dir, spool());
  EXPECT_TRUE(SpoolEmpty());

  t.free_space = [](const std::string&) -> Result<uint64_t> { return uint64_t{1} << 30; };
  Fetcher ok(t);
  ASSERT_TRUE(ok.FetchFrom(Base(*server), nullptr).ok());
  EXPECT_TRUE(ok.complete());
  EXPECT_EQ(test::ReadFile(t.path), signed_);
}

TEST_F(FetchTest, AnUnreachableSourceIsTheSourcesFault) {
  Fetcher f(Target());
  push::FetchFault fault = push::FetchFault::kNone;
  Status st = f.FetchFrom("http://127.0.0.1:1", nullptr, nullptr, &fault);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(fault, push::FetchFault::kSource);
}

TEST_F(FetchTest, AnAssignmentWithoutChunksIsFetchedWithAKey) {
  pack::PackOptions po;
  po.type = pack::Type::kCommit;
  po.job_id = "rel";
  po.serial = 42;
  po.output = dir_ / "src/commit.cma";
  po.sign = key_;
  ASSERT_TRUE(pack::PackControl(po).ok());
  const std::string commit = test::ReadFile(dir_ / "src/commit.cma");
  auto server = Serve(std::make_shared<http::StringSource>(commit));
  ASSERT_TRUE(server);
  Fetcher f(Target());
  Status st = f.FetchFrom(Base(*server), nullptr);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(f.complete());
  EXPECT_EQ(test::ReadFile(Target().path), commit);
  Fetcher again(Target());
  EXPECT_TRUE(again.OpenExisting());
}

TEST_F(FetchTest, ARealStatvfsIsConsulted) {
  auto have = push::FreeSpace(spool());
  ASSERT_TRUE(have.ok()) << have.status().ToString();
  EXPECT_GT(*have, 0u);
  Status st = push::CheckSpaceFor(spool() + "/9.cma", *have + (uint64_t{1} << 30), nullptr);
  EXPECT_EQ(st.code(), Code::kNoSpace) << st.ToString();
}

TEST_F(FetchTest, AVerifiedCopyInTheSpoolIsUsed) {
  Plant(signed_);
  Fetcher f(Target());
  ASSERT_TRUE(f.OpenExisting());
  EXPECT_TRUE(f.complete());
  ASSERT_NE(f.held(), nullptr);
  EXPECT_EQ(f.held()->size(), signed_.size());
  EXPECT_EQ(f.verified(), push::testing::PlanOf(signed_).covered_end() - 256);
}

TEST_F(FetchTest, PlantedSpoolFilesAreNeverHeldOrComplete) {
  std::string flipped = signed_;
  flipped[signed_.size() / 2] ^= 1;  // in the middle: only the chunk hash can tell
  const std::vector<std::pair<std::string, std::string>> plants = {
      {"unsigned", unsigned_},
      {"signed by another key", other_},
      {"truncated", signed_.substr(0, signed_.size() - 1000)},
      {"one byte changed", flipped},
      {"garbage", std::string(5000, 'x')},
      {"empty", ""},
  };
  for (const auto& [what, bytes] : plants) {
    SCOPED_TRACE(what);
    Plant(bytes);
    Fetcher f(Target());
    EXPECT_FALSE(f.OpenExisting());
    EXPECT_FALSE(f.complete());
    EXPECT_EQ(f.held(), nullptr);
    EXPECT_EQ(f.verified(), 0u);
    EXPECT_EQ(test::ReadFile(Target().path), bytes);  // left alone
  }
}

TEST_F(FetchTest, AnotherSerialsFileRenamedIntoPlaceIsRefused) {
  Plant(signed_, 43);  // signed_ is serial 42
  Fetcher f(Target(43));
  EXPECT_FALSE(f.OpenExisting());
  EXPECT_FALSE(f.complete());
}

TEST_F(FetchTest, ASymlinkInTheSpoolIsNotFollowed) {
  std::ofstream(dir_ / "src/real.cma", std::ios::binary) << signed_;
  fs::create_symlink(dir_ / "src/real.cma", Target().path);
  Fetcher f(Target());
  EXPECT_FALSE(f.OpenExisting());
  EXPECT_FALSE(f.complete());
}

TEST_F(FetchTest, ARelayDoesNotServeAPlantedFile) {
  Plant(unsigned_, 42);
  Plant(signed_, 43);  // the right bytes under the wrong serial
  RelayOptions o;
  o.name = "r1";
  o.listen = "127.0.0.1:0";
  o.spool = spool();
  o.pub_key = dir_ / "ccm.key.pub";
  ASSERT_TRUE(pack::GenerateGroupKey(dir_ / "group.key").ok());
  o.group_key = dir_ / "group.key";
  auto relay = Relay::Start(o);
  ASSERT_TRUE(relay.ok()) << relay.status().ToString();
  for (const char* serial : {"42", "43"}) {
    auto res = http::Call("GET", (*relay)->url() + "/v1/content/" + serial, "", 5000ms);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 404) << serial;
  }
  (*relay)->Stop();

  // The genuine file is served.
  fs::remove(spool() + "/42.cma");
  Plant(signed_, 42);
  auto again = Relay::Start(o);
  ASSERT_TRUE(again.ok());
  auto res = http::Call("GET", (*again)->url() + "/v1/content/42", "", 5000ms);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, signed_);
}

}  // namespace
}  // namespace cm::pushrun
