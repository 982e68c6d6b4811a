// libFuzzer target for the delta table reader (excluded from the library
// build). Build with clang:
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Ilib \
//     lib/delta/delta_table_fuzz.cc lib/delta/delta_table.cc lib/util/*.cc \
//     -lsodium -lzstd -o delta_table_fuzz
//   ./delta_table_fuzz corpus/
// The reader must end every input in ok or kCorrupt, never crash, hang or
// allocate from an unchecked length.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "delta/delta_table.h"
#include "util/byte_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cm::StringSource src(std::string(reinterpret_cast<const char*>(data), size));
  cm::delta::DeltaTableReader reader(&src);
  cm::Status st = reader.Begin();
  if (!st.ok()) {
    if (st.code() != cm::Code::kCorrupt) std::abort();
    return 0;
  }
  cm::delta::DeltaEntry e;
  char buf[97];
  for (int i = 0; i < 1 << 20; ++i) {
    auto more = reader.Next(&e);
    if (!more.ok()) {
      if (more.status().code() != cm::Code::kCorrupt) std::abort();
      return 0;
    }
    if (!*more) return 0;
    if (!cm::delta::IsSafeRelativePath(e.path)) std::abort();  // the reader validated it
    // Read part of the instruction bytes of every other entry; Next skips the rest.
    if (i % 2 == 0) {
      auto n = reader.ReadDeltaBytes(buf, sizeof buf);
      if (!n.ok() && n.status().code() != cm::Code::kCorrupt) std::abort();
    }
  }
  return 0;
}
