// libFuzzer target for every request and answer body of the push protocol
// (lib/push/messages.h) and its CM-Auth header (lib/push/auth.h): what a
// relay's or the CCM's HTTP handler parses from the network. Build with
// -DCM_FUZZ=ON and clang; run:
//   build-fuzz/fuzz/messages_fuzz corpus/ -max_total_time=60
// The first byte picks the endpoint, the rest is the body. Properties: every
// parser is total (no crash, no exception), a parsed message encodes to JSON
// that parses to the same message, and a CM-Auth header that parses formats
// to one that parses to the same stamp.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "push/auth.h"
#include "push/messages.h"
#include "util/group_key.h"

namespace {

template <typename Parse>
void RoundTrip(std::string_view body, Parse parse) {
  auto m = parse(body);
  if (!m.ok()) return;
  const std::string encoded = cm::push::Encode(*m);
  auto again = parse(encoded);
  if (!again.ok() || !(*again == *m)) {
    std::fprintf(stderr, "round trip changed the message:\n  in:  %.*s\n  out: %s\n", static_cast<int>(body.size()),
                 body.data(), encoded.c_str());
    std::abort();
  }
}

}  // namespace

int CmFuzzPushBodies(const uint8_t* data, size_t size) {
  using namespace cm::push;
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 14) {
    case 0: RoundTrip(body, ParseFetchOrder); break;
    case 1: RoundTrip(body, ParseExpect); break;
    case 2: RoundTrip(body, ParseMemberReport); break;
    case 3: RoundTrip(body, ParseSiteReport); break;
    case 4: RoundTrip(body, ParseProgress); break;
    case 5: RoundTrip(body, ParseNextAsk); break;
    case 6: RoundTrip(body, ParseNextAnswer); break;
    case 7: RoundTrip(body, ParseSourceFailed); break;
    case 8: RoundTrip(body, ParseSourceAnswer); break;
    case 9: RoundTrip(body, ParseNotifyFailed); break;
    case 10: {
      auto s = auth::Parse(body);
      if (s.ok()) {
        auto again = auth::Parse(auth::Format(*s));
        if (!again.ok() || again->from != s->from || again->to != s->to || again->exp != s->exp ||
            again->nonce != s->nonce || again->tag != s->tag || again->alg != s->alg)
          std::abort();
      }
      break;
    }
    case 11: {  // any body (e.g. a cm-leader report): its mac stamp verifies, and only for that body
      const cm::GroupKey key = auth::ReportKey(cm::GroupKey{1});
      auth::Stamp st;
      st.from = "leader-1";
      st.to = auth::kCcmName;
      st.exp = 1'800'000'000;
      st.nonce = std::string(auth::kNonceHexSize, 'e');
      auth::Mac(&st, key, "POST", "/v1/leader-report", body);
      const std::string h = auth::Format(st);
      auth::Expectation want;
      want.to = auth::kCcmName;
      want.report_key = &key;
      if (auth::Verify(&h, "POST", "/v1/leader-report", body, want, st.exp, nullptr) != auth::Verdict::kOk ||
          auth::Verify(&h, "POST", "/v1/leader-report", std::string(body) + "x", want, st.exp, nullptr) !=
              auth::Verdict::kBadTag)
        std::abort();
      break;
    }
    case 12: RoundTrip(body, ParseRelayFailed); break;
    case 13: RoundTrip(body, ParseRelayStatus); break;
  }
  return 0;
}

#ifdef CM_FUZZ_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CmFuzzPushBodies(data, size);
  return 0;
}
#endif
