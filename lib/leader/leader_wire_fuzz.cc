// libFuzzer target for the cm-leader wire parser (Decode), with and without a
// key. Build with -DCM_FUZZ=ON and clang; the unit tests run the same body on
// random mutations. Checks: no crash, and re-encoding a parsed message parses
// back to the same message (every field, the version-4 Register digest's
// bits included: its padding bits must be 0, so each message has one encoding).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "leader/wire.h"

int CmFuzzLeaderWire(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  cm::GroupKey key{};
  key[0] = 7;
  (void)cm::leader::Decode(bytes, &key);
  auto d = cm::leader::Decode(bytes);
  if (!d) return 0;
  auto again = cm::leader::Decode(cm::leader::Encode(d->msg));
  if (!again || !(again->msg == d->msg)) std::abort();
  return 1;
}

#ifdef CM_FUZZ_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CmFuzzLeaderWire(data, size);
  return 0;
}
#endif
