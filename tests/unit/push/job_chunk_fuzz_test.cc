// Runs the job chunk fuzz target's body (lib/push/job_chunk_fuzz.cc) on
// seeded random inputs: edits of a genuine signed item, and raw bytes. The
// body aborts when a property fails (a forged, reordered or spliced record
// accepted; a split past the bound; a header that does not re-encode), and
// returns 1 when the whole genuine item was accepted.
#include <gtest/gtest.h>

#include <random>
#include <string>

int CmFuzzJobChunk(const uint8_t* data, size_t size);

namespace {

int RunBody(const std::string& in) { return CmFuzzJobChunk(reinterpret_cast<const uint8_t*>(in.data()), in.size()); }

TEST(JobChunkFuzz, TheGenuineItemIsAccepted) {
  EXPECT_EQ(RunBody(std::string(1, '\0')), 1);  // no edits
  EXPECT_EQ(RunBody(std::string("\0\0\0", 3)), 1);  // too few bytes for one edit
}

TEST(JobChunkFuzz, RandomEditsAndBytesNeverGetPastTheVerifier) {
  std::mt19937 rng(1717);
  int whole = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string in(1, static_cast<char>(iter % 2));  // even: edits of the genuine item; odd: raw bytes
    const size_t n = 1 + rng() % (iter % 2 ? 900 : 12);
    for (size_t i = 0; i < n; ++i) in.push_back(static_cast<char>(rng()));
    whole += RunBody(in);
  }
  // Edits that change nothing (an erase or resize past the end, an insert
  // of nothing) leave the item whole: some runs must, or the property above
  // would hold vacuously for a verifier that refuses everything.
  EXPECT_GT(whole, 0);
  EXPECT_LT(whole, 1500);
}

}  // namespace
