// Runs the push bodies fuzz target's body (lib/push/messages_fuzz.cc) on
// seeded mutations of a valid body for every endpoint, the CM-Auth header
// and a sealed cm-leader report: the parsers stay total and round-trip.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "push/auth.h"
#include "push/messages.h"
#include "util/group_key.h"

int CmFuzzPushBodies(const uint8_t* data, size_t size);

namespace cm::push {
namespace {

TEST(MessagesFuzz, RandomMutationsOfEveryEndpointsBodyKeepTheParsersTotal) {
  FetchOrder o;
  o.serial = 7;
  o.job = "j";
  o.source = "http://10.0.0.1:7701";
  o.ccm = o.source;
  o.ccm_id = "ccm-1";
  o.relay = "a1";
  o.members = {{"a2", "http://10.0.0.2:7710", {"{\"serial\":7}", "v=1 alg=ed25519"}}};
  Expect e{7, "j", TransferKind::kStage, 100, "a2", "a1", "http://10.0.0.1:7710", "239.1.1.1:7000"};
  ServerResult r{"a2", ServerState::kStaged, "", Via::kMulticast, 0, "s000000000007-j"};
  NextAnswer n;
  n.kind = NextAnswer::Kind::kNext;
  n.relay = "b1";
  n.url = "http://10.0.1.1:7710";
  n.order = o;
  n.sealed = {"{}", "v=1"};
  auth::Stamp st;
  st.from = "ccm";
  st.to = "a1";
  st.exp = 1800000000;
  st.nonce = std::string(32, 'c');
  st.tag = "AAAA";
  const std::vector<std::string> bases = {
      Encode(o), Encode(e), Encode(MemberReport{7, r}), Encode(SiteReport{7, "a", "a1", {r}}),
      Encode(Progress{7, "a1", 10, 100, false}), Encode(NextAsk{7, "a1", 10, false}), Encode(n),
      Encode(SourceFailed{7, "a1", "b1", "http://x", 5, "gone"}), Encode(SourceAnswer{"http://y", "c1"}),
      Encode(NotifyFailed{7, "a1", "b1", "refused"}), auth::Format(st),
      R"({"type":"segment-report","segment":"a","leader_address":"10.0.0.1:7400","epoch":2})",
      Encode(RelayFailed{7, "a1", "cm-apply: error: no space left on device", 9, true}),
      Encode(RelayStatus{"a1", {{7, "staged", 10, 100, true, "http://x"}}, SiteLeader{"10.0.0.1", 3}, "00ff00ff00ff00ff"}),
      Encode(RelayStatus{"a1", {}, std::nullopt, "00ff00ff00ff00ff",
                         LiveTree{"s000000000001-j", 1, std::string(64, 'a'), std::string(64, 'b'), false, {"x"}, {"y/z"}, {}, false}})};
  std::mt19937 rng(777);
  for (int iter = 0; iter < 24000; ++iter) {
    const size_t which = iter % bases.size();
    std::string m = bases[which];
    int edits = static_cast<int>(rng() % 4);
    for (int k = 0; k < edits && !m.empty(); ++k) {
      size_t at = rng() % m.size();
      switch (rng() % 4) {
        case 0: m[at] = static_cast<char>(rng()); break;
        case 1: m.resize(at); break;
        case 2: m.insert(at, std::string(1 + rng() % 4, "{}[]\",:0a \\"[rng() % 11])); break;
        case 3: m.erase(at, 1 + rng() % 8); break;
      }
    }
    std::string in(1, static_cast<char>(which));
    in += m;
    CmFuzzPushBodies(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  }
  SUCCEED();
}

}  // namespace
}  // namespace cm::push
