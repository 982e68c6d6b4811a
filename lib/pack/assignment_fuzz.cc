// libFuzzer target for the assignment reader: header, trailer, command and
// segment parsers. Build with -DCM_FUZZ=ON and clang (see docs/FORMATS.md);
// run: build-fuzz/fuzz/assignment_fuzz corpus/ -max_total_time=60
// Inputs are taken as a whole assignment file (format v1, v2 or v3); to reach the
// inner parsers past the hash checks, the sizes, chunk table and hashes are
// recomputed before reading (pack/rehash.h; the fuzzer's mutations then land
// in the command and segment parsers).
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <string>

#include "pack/assignment_format.h"
#include "pack/assignment_reader.h"
#include "pack/rehash.h"
#include "util/file_util.h"
#include "util/hash.h"

// Exposed for the unit test that runs the same checks on random mutations.
// Returns 1 when the input passed Verify (so the inner parsers ran), else 0.
int CmFuzzAssignment(const uint8_t* data, size_t size, bool rehash) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (rehash) cm::pack::RehashForFuzzing(&bytes);
  char path[] = "/tmp/cm-fuzz-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 0;
  (void)cm::WriteFull(fd, bytes.data(), bytes.size());
  close(fd);
  auto r = cm::pack::AssignmentReader::Open(path, {});
  int verified = 0;
  if (r.ok() && (*r)->Verify().ok()) {
    verified = 1;
    cm::pack::Command c;
    for (int i = 0; i < 100000; ++i) {
      auto more = (*r)->NextCommand(&c);
      if (!more.ok() || !*more) break;
      if (c.op == cm::pack::Opcode::kBase) std::abort();  // taken by Verify (base()), never returned
      if (c.op != cm::pack::Opcode::kCreate && c.op != cm::pack::Opcode::kPatch) continue;
      auto src = (*r)->OpenData(c.data);
      if (!src.ok()) break;
      char buf[4096];
      uint64_t total = 0;
      for (;;) {
        auto n = (*src)->Read(buf, sizeof buf);
        if (!n.ok() || *n == 0) break;
        total += *n;
        if (total > (64u << 20)) break;
      }
    }
  }
  unlink(path);
  return verified;
}

#ifdef CM_FUZZ_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CmFuzzAssignment(data, size, size > 0 && (data[0] & 1));
  return 0;
}
#endif
