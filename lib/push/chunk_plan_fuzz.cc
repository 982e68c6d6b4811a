// libFuzzer target for the relay's chunk plan parser (lib/push/chunk_plan.h).
// Build with -DCM_FUZZ=ON and clang; run:
//   build-fuzz/fuzz/chunk_plan_fuzz corpus/ -max_total_time=60
// The input is taken as a whole assignment file. With rehash, sizes, chunk
// table and hashes are made consistent first (pack/rehash.h), so mutations
// get past the hash checks. The body then does what a relay does: header ->
// ranges -> tail -> plan, and checks the middle against the plan's hashes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pack/keys.h"
#include "pack/rehash.h"
#include "push/chunk_plan.h"

namespace {

// LoadChunkPlan over the input as a file: it asks for the header first,
// never for a range outside what the header declares or past the limits,
// never for the table of a header over the limits, and agrees with
// ParseChunkPlan.
void CheckLoader(std::string_view file, const cm::push::ChunkPlan& parsed) {
  using namespace cm::push;
  for (uint64_t max_chunks : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 20}) {
    PlanLimits limits;
    limits.max_chunk_count = max_chunks;
    uint64_t asked = 0;
    int calls = 0;
    RangeReader read = [&](const ByteRange& r) -> cm::Result<std::string> {
      if (calls++ == 0 && r != ByteRange{0, 256}) std::abort();
      if (r.begin > r.end || r.end > parsed.file_size()) std::abort();
      asked += r.size();
      if (r.end > file.size()) return cm::Error(cm::Code::kIo, "short");
      return std::string(file.substr(r.begin, r.size()));
    };
    auto loaded = LoadChunkPlan(read, nullptr, limits);
    const bool within = parsed.chunk_count() <= max_chunks;
    if (!within && (loaded.ok() || asked != 256)) std::abort();
    if (within && (!loaded.ok() || loaded->plan.hashes() != parsed.hashes() || loaded->header != parsed.header_bytes()))
      std::abort();
  }
}

}  // namespace

// Exposed for the unit test that runs it on random mutations. Returns 1 when
// a plan was parsed and every chunk of the input matched it, else 0.
int CmFuzzChunkPlan(const uint8_t* data, size_t size, bool rehash) {
  using namespace cm::push;
  std::string f(reinterpret_cast<const char*>(data), size);
  if (rehash) cm::pack::RehashForFuzzing(&f);
  std::string_view file(f);
  std::string_view header = file.substr(0, 256);
  // Where a fetcher would take the tail from; else whatever follows the header.
  std::string_view tail = file.size() > 256 ? file.substr(256) : std::string_view();
  auto ranges = HeadAndTailRanges(header);
  if (ranges.ok()) {
    if (ranges->head != ByteRange{0, 256} || ranges->tail.begin > ranges->tail.end) std::abort();
    if (ranges->tail.begin < file.size()) tail = file.substr(ranges->tail.begin, ranges->tail.size());
  }
  // A key that signed nothing here: a signed input must fail with kAuth.
  cm::pack::PublicKey key;
  key.bytes.fill(7);
  auto keyed = ParseChunkPlan(header, tail, &key);
  if (keyed.ok()) std::abort();
  auto plan = ParseChunkPlan(header, tail, nullptr);
  if (!plan.ok()) return 0;
  const ChunkPlan& p = *plan;
  if (!ranges.ok() || p.tail() != ranges->tail || p.covered_begin() != 256 || p.covered_end() > p.file_size())
    std::abort();
  uint64_t next = p.covered_begin();
  bool all_match = p.file_size() == file.size();
  for (uint64_t i = 0; i < p.chunk_count(); ++i) {
    ByteRange r = p.ChunkRange(i);
    if (r.begin != next || r.end <= r.begin || r.size() > p.chunk_size()) std::abort();
    if (p.ChunkOf(r.begin) != i || p.ChunkOf(r.end - 1) != i) std::abort();
    next = r.end;
    if (all_match) {
      std::string_view bytes = file.substr(r.begin, r.size());
      all_match = cm::HashBytes(bytes.data(), bytes.size()) == p.hashes()[i];
    }
  }
  if (next != p.covered_end() || p.ChunkOf(p.covered_end()) || p.ChunkOf(0)) std::abort();
  CheckLoader(file, p);
  return all_match ? 1 : 0;
}

#ifdef CM_FUZZ_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CmFuzzChunkPlan(data, size, size > 0 && (data[0] & 1));
  return 0;
}
#endif
