// libFuzzer target for job mode's bodies (lib/push/job_messages.h): the
// offer a node takes from any peer and the calls the base takes from nodes.
// Build with -DCM_FUZZ=ON and clang; run:
//   build-fuzz/fuzz/job_messages_fuzz corpus/ -max_total_time=60
// The first byte picks the body, the rest is the body. Properties: every
// parser is total, and a parsed message encodes to JSON that parses to the
// same message.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "push/job_messages.h"

namespace {

template <typename Parse, typename Enc>
void RoundTrip(std::string_view body, Parse parse, Enc encode) {
  auto m = parse(body);
  if (!m.ok()) return;
  const std::string encoded = encode(*m);
  auto again = parse(encoded);
  if (!again.ok() || !(*again == *m)) {
    std::fprintf(stderr, "round trip changed the message:\n  in:  %.*s\n  out: %s\n", static_cast<int>(body.size()),
                 body.data(), encoded.c_str());
    std::abort();
  }
}

}  // namespace

int CmFuzzJobBodies(const uint8_t* data, size_t size) {
  using namespace cm::push;
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto enc = [](const auto& m) { return Encode(m); };
  switch (data[0] % 10) {
    case 0: RoundTrip(body, ParseJobObject, enc); break;
    case 1: RoundTrip(body, ParseJobOffer, enc); break;
    case 2: RoundTrip(body, ParseOfferAnswer, enc); break;
    case 3: RoundTrip(body, ParseJobProgress, enc); break;
    case 4: RoundTrip(body, ParseJobHelp, enc); break;
    case 5: RoundTrip(body, ParseJobHelpReply, enc); break;
    case 6: RoundTrip(body, ParseJobSourceFailed, enc); break;
    case 7: RoundTrip(body, ParseSourceReply, [](NodeRef r) { return EncodeSourceReply(r); }); break;
    case 8: RoundTrip(body, ParseJobUnreachable, enc); break;
    case 9: RoundTrip(body, ParseJobEntries, enc); break;
  }
  return 0;
}

#ifdef CM_FUZZ_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CmFuzzJobBodies(data, size);
  return 0;
}
#endif
