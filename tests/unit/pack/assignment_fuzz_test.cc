// Runs the assignment fuzz target's body (lib/pack/assignment_fuzz.cc) on
// thousands of seeded mutations of valid assignments, with and without the
// hashes recomputed (so mutations reach the command and segment parsers), for
// format v1 and v2 (chunk table) inputs alike.
// The property: the reader never crashes, hangs or over-allocates; ASan and
// UBSan in scripts/test catch what a plain run would not.
#include <gtest/gtest.h>

#include <random>

#include "pack/assignment_writer.h"
#include "pack/rehash.h"
#include "support/test_util.h"
#include "util/hash.h"

int CmFuzzAssignment(const uint8_t* data, size_t size, bool rehash);

namespace cm::pack {
namespace {

std::string ValidAssignment(const test::TempDir& d, uint32_t chunk_size) {
  AssignmentWriter w;
  WriterOptions wo;
  wo.serial = 3;
  wo.job_id = "fuzz";
  wo.chunk_size = chunk_size;
  EXPECT_TRUE(w.Open(d / "a.cma", wo).ok());
  const std::string texts[] = {"alpha", std::string(3000, 'b'), "", std::string(70000, 'c')};
  int i = 0;
  for (const auto& t : texts) {
    Command c;
    c.op = Opcode::kCreate;
    c.path = "dir/f" + std::to_string(i);
    c.size = t.size();
    c.hash = HashBytes(t.data(), t.size());
    c.data = *w.AddBlob(t.data(), t.size(), i++ % 2 == 0);
    w.AddCommand(c);
  }
  Command m;
  m.op = Opcode::kMkdir;
  m.path = "dir";
  w.AddCommand(m);
  Command s;
  s.op = Opcode::kSymlink;
  s.path = "l";
  s.path2 = "../x";
  w.AddCommand(s);
  EXPECT_TRUE(w.Finish().ok());
  return test::ReadFile(d / "a.cma");
}

TEST(AssignmentFuzz, RehashLeavesAValidAssignmentAsItIs) {
  test::TempDir d;
  for (uint32_t cs : {0u, kDefaultChunkSize, kMinChunkSize}) {
    const std::string base = ValidAssignment(d, cs);
    std::string copy = base;
    RehashForFuzzing(&copy);
    EXPECT_EQ(copy, base) << "chunk size " << cs;
  }
}

TEST(AssignmentFuzz, RandomMutationsNeverCrashTheReader) {
  test::TempDir d;
  // v1, v2 with one chunk, v2 with two (64 KiB chunks; the data is ~70 KiB).
  const std::string bases[] = {ValidAssignment(d, 0), ValidAssignment(d, kDefaultChunkSize),
                               ValidAssignment(d, kMinChunkSize)};
  std::mt19937 rng(12345);
  int reached_commands = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string m = bases[(iter / 2) % 3];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % m.size();
      switch (rng() % 5) {
        case 0: m[at] = static_cast<char>(rng()); break;
        case 1: m[at] ^= static_cast<char>(1 << (rng() % 8)); break;
        case 2: m.resize(at + 1); break;
        case 3: m.insert(at, std::string(1 + rng() % 16, static_cast<char>(rng()))); break;
        case 4: m.erase(at, 1 + rng() % 16); break;
      }
      if (m.empty()) m = "x";
    }
    reached_commands += CmFuzzAssignment(reinterpret_cast<const uint8_t*>(m.data()), m.size(), iter % 2 == 0);
  }
  // With hashes recomputed, many mutations must get past verification into
  // the command and segment parsers, or this test would exercise nothing.
  EXPECT_GT(reached_commands, 100);
}

}  // namespace
}  // namespace cm::pack
