// Runs the chunk plan fuzz target's body (lib/push/chunk_plan_fuzz.cc) on
// thousands of seeded mutations of valid assignments, with and without the
// hashes recomputed (so mutations get past the header and table hashes).
// The property: the parser never crashes or over-allocates, a plan it returns
// tiles the middle exactly, and no unsigned input passes a key check.
#include <gtest/gtest.h>

#include <random>

#include "chunk_plan_fixture.h"
#include "pack/packer.h"

int CmFuzzChunkPlan(const uint8_t* data, size_t size, bool rehash);

namespace cm::push {
namespace {

TEST(ChunkPlanFuzz, RandomMutationsNeverCrashTheParser) {
  test::TempDir d;
  // One chunk, several chunks, none (a commit), and format v1.
  pack::PackOptions po;
  po.type = pack::Type::kCommit;
  po.job_id = "rel";
  po.serial = 9;
  po.output = d / "c.cma";
  ASSERT_TRUE(pack::PackControl(po).ok());
  const std::string bases[] = {testing::MakeAssignment(d / "a.cma", 3000, pack::kDefaultChunkSize),
                               testing::MakeAssignment(d / "b.cma", 140000, pack::kMinChunkSize),
                               test::ReadFile(d / "c.cma"), testing::MakeAssignment(d / "d.cma", 3000, 0)};
  for (const auto& b : bases) ASSERT_FALSE(b.empty());
  std::mt19937 rng(4242);
  int matched = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string m = bases[(iter / 2) % 4];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % m.size();
      switch (rng() % 6) {
        case 0: m[at] = static_cast<char>(rng()); break;
        case 1: m[at] ^= static_cast<char>(1 << (rng() % 8)); break;
        case 2: m.resize(at + 1); break;
        case 3: m.insert(at, std::string(1 + rng() % 16, static_cast<char>(rng()))); break;
        case 4: m.erase(at, 1 + rng() % 16); break;
        case 5: m[at % 256] = static_cast<char>(rng()); break;  // the header's fields
      }
      if (m.empty()) m = "x";
    }
    matched += CmFuzzChunkPlan(reinterpret_cast<const uint8_t*>(m.data()), m.size(), iter % 2 == 0);
  }
  // With hashes recomputed, many mutations must yield a plan whose chunks
  // match the file, or this test would exercise little past the header.
  EXPECT_GT(matched, 300);
}

TEST(ChunkPlanFuzz, ValidAssignmentsMatchTheirPlan) {
  test::TempDir d;
  for (uint64_t size : {0, 1, 65536, 200000}) {
    std::string f = testing::MakeAssignment(d / "a.cma", size, pack::kMinChunkSize);
    EXPECT_EQ(CmFuzzChunkPlan(reinterpret_cast<const uint8_t*>(f.data()), f.size(), false), 1) << size;
  }
}

}  // namespace
}  // namespace cm::push
