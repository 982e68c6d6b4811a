// libFuzzer target for the cm-mcast wire parser (docs/protocol/mcast.md).
// Build with -DCM_FUZZ=ON and clang; run:
//   build-fuzz/fuzz/mcast_wire_fuzz corpus/ -max_total_time=60
// Every input is parsed without and with a key; whatever parses must
// re-encode to a datagram that parses to the same message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mcast/wire.h"

// Exposed for the unit test that runs it on random mutations. Returns 1 when
// the input parsed.
int CmFuzzMcastWire(const uint8_t* data, size_t size) {
  using namespace cm::mcast;
  using cm::GroupKey;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  GroupKey key{};
  int parsed = 0;
  const GroupKey* keys[] = {nullptr, &key};
  for (const GroupKey* k : keys) {
    Message m;
    if (Parse(in, k, &m) != ParseResult::kOk) continue;
    parsed = 1;
    std::string again = Encode(m, k);
    Message m2;
    if (Parse(again, k, &m2) != ParseResult::kOk || m2.type != m.type || m2.session != m.session) std::abort();
    if (Encode(m2, k) != again) std::abort();
  }
  return parsed;
}

#ifdef CM_FUZZ_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CmFuzzMcastWire(data, size);
  return 0;
}
#endif
