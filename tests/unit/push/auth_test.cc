// util/cm_auth.h (push/auth.h): the CM-Auth header, its tags, the checks a receiver makes and
// the bounded nonce cache.
#include "push/auth.h"

#include <sodium.h>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "pack/keys.h"
#include "support/test_util.h"
#include "util/hash.h"

namespace cm::cm_auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;

struct Keys {
  pack::SigningKey sign;
  GroupKey report{};
  Keys() {
    test::TempDir dir;
    EXPECT_TRUE(pack::GenerateSigningKey(dir / "k").ok());
    sign = *pack::LoadSigningKey(dir / "k");
    report = ReportKey(GroupKey{1, 2, 3});
  }
};

const Keys& K() {
  static Keys k;
  return k;
}

Stamp Order(const std::string& to, const std::string& body, int64_t exp = kNow + 60,
            const std::string& nonce = std::string(32, 'a')) {
  Stamp s;
  s.from = kCcmName;
  s.to = to;
  s.exp = exp;
  s.nonce = nonce;
  Sign(&s, K().sign.secret, "POST", "/v1/fetch", body);
  return s;
}

Expectation OrderFor(const std::string& to) {
  Expectation w;
  w.alg = Alg::kEd25519;
  w.to = to;
  w.from = kCcmName;
  w.pub = &K().sign.pub.bytes;
  return w;
}

TEST(Auth, FormatThenParseGivesTheStamp) {
  Stamp s = Order("web1", "{}");
  auto p = Parse(Format(s));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->alg, Alg::kEd25519);
  EXPECT_EQ(p->from, "ccm");
  EXPECT_EQ(p->to, "web1");
  EXPECT_EQ(p->exp, s.exp);
  EXPECT_EQ(p->nonce, s.nonce);
  EXPECT_EQ(p->tag, s.tag);
}

TEST(Auth, AGenuineOrderIsAcceptedOnceThenReplayed) {
  NonceCache cache;
  std::string h = Format(Order("web1", "{\"serial\":1}"));
  EXPECT_EQ(Verify(&h, "POST", "/v1/fetch", "{\"serial\":1}", OrderFor("web1"), kNow, &cache), Verdict::kOk);
  EXPECT_EQ(Verify(&h, "POST", "/v1/fetch", "{\"serial\":1}", OrderFor("web1"), kNow, &cache), Verdict::kReplayed);
  EXPECT_EQ(VerdictStatus(Verdict::kReplayed), 409);
}

TEST(Auth, EveryAlterationIsRefused) {
  const std::string body = "{\"serial\":1,\"source\":\"http://10.0.0.1:7701\"}";
  std::string h = Format(Order("web1", body));
  auto v = [&](const std::string* hdr, std::string_view method, std::string_view path, std::string_view b,
               const Expectation& w, int64_t now = kNow) { return Verify(hdr, method, path, b, w, now, nullptr); };
  EXPECT_EQ(v(nullptr, "POST", "/v1/fetch", body, OrderFor("web1")), Verdict::kMissing);
  std::string junk = "v=1 alg=ed25519";
  EXPECT_EQ(v(&junk, "POST", "/v1/fetch", body, OrderFor("web1")), Verdict::kMalformed);
  // Another body (a source the CCM never named), path, method or recipient.
  EXPECT_EQ(v(&h, "POST", "/v1/fetch", "{\"serial\":1,\"source\":\"http://169.254.169.254\"}", OrderFor("web1")),
            Verdict::kBadTag);
  EXPECT_EQ(v(&h, "POST", "/v1/expect", body, OrderFor("web1")), Verdict::kBadTag);
  EXPECT_EQ(v(&h, "PUT", "/v1/fetch", body, OrderFor("web1")), Verdict::kBadTag);
  EXPECT_EQ(v(&h, "POST", "/v1/fetch", body, OrderFor("web2")), Verdict::kWrongRecipient);
  // Expired (beyond the skew), and too far ahead.
  std::string old = Format(Order("web1", body, kNow - kClockSkew - 1));
  EXPECT_EQ(v(&old, "POST", "/v1/fetch", body, OrderFor("web1")), Verdict::kExpired);
  std::string late = Format(Order("web1", body, kNow - 5));
  EXPECT_EQ(v(&late, "POST", "/v1/fetch", body, OrderFor("web1")), Verdict::kOk) << "within the clock skew";
  std::string far = Format(Order("web1", body, kNow + kMaxLifetime + kClockSkew + 10));
  EXPECT_EQ(v(&far, "POST", "/v1/fetch", body, OrderFor("web1")), Verdict::kTooFarAhead);
  // Signed by another key.
  test::TempDir dir;
  ASSERT_TRUE(pack::GenerateSigningKey(dir / "other").ok());
  auto other = pack::LoadSigningKey(dir / "other");
  Stamp s = Order("web1", body);
  Sign(&s, other->secret, "POST", "/v1/fetch", body);
  std::string forged = Format(s);
  EXPECT_EQ(v(&forged, "POST", "/v1/fetch", body, OrderFor("web1")), Verdict::kBadTag);
  // A MAC (what every server can make) where an order needs the CCM's signature.
  Stamp m = s;
  Mac(&m, K().report, "POST", "/v1/fetch", body);
  std::string mac = Format(m);
  EXPECT_EQ(v(&mac, "POST", "/v1/fetch", body, OrderFor("web1")), Verdict::kWrongAlg);
  // A report stamp made by a server is not an order even with from=ccm.
  Expectation rep;
  rep.alg = Alg::kMac;
  rep.to = "web1";
  rep.from = kCcmName;
  rep.report_key = &K().report;
  EXPECT_EQ(v(&mac, "POST", "/v1/fetch", body, rep), Verdict::kOk) << "only a receiver that asks for a MAC takes it";
}

// One MAC construction: a mac tag is util/group_key.h's ComputeMac (16
// bytes) with the report key over SignedBytes, and the report key is a KDF
// of the group key (not the group key itself, not a truncation of it).
TEST(Auth, TheMacTagIsComputeMacWithTheReportKey) {
  const GroupKey group{1, 2, 3};
  const GroupKey report = ReportKey(group);
  EXPECT_NE(report, group);
  EXPECT_EQ(ReportKey(group), report) << "deterministic";
  Stamp s;
  s.from = "leader-7";
  s.to = kCcmName;
  s.exp = kNow + 60;
  s.nonce = std::string(32, 'c');
  Mac(&s, report, "POST", "/v1/leader-report", "{\"segment\":\"a\"}");
  const cm::Mac want = ComputeMac(report, SignedBytes(s, "POST", "/v1/leader-report", "{\"segment\":\"a\"}"));
  std::vector<char> b64(sodium_base64_ENCODED_LEN(want.size(), sodium_base64_VARIANT_ORIGINAL));
  sodium_bin2base64(b64.data(), b64.size(), want.data(), want.size(), sodium_base64_VARIANT_ORIGINAL);
  EXPECT_EQ(s.tag, std::string(b64.data()));
  EXPECT_EQ(s.tag.size(), 24u) << "16 bytes";
}

TEST(Auth, ReportStampsNeedTheGroupKey) {
  Stamp s;
  s.from = "web2";
  s.to = "ccm-1";
  s.exp = kNow + 60;
  s.nonce = std::string(32, 'b');
  Mac(&s, K().report, "POST", "/v1/site-report", "{}");
  std::string h = Format(s);
  Expectation w;
  w.alg = Alg::kMac;
  w.to = "ccm-1";
  w.report_key = &K().report;
  Stamp got;
  EXPECT_EQ(Verify(&h, "POST", "/v1/site-report", "{}", w, kNow, nullptr, &got), Verdict::kOk);
  EXPECT_EQ(got.from, "web2");
  GroupKey wrong = ReportKey(GroupKey{9});
  w.report_key = &wrong;
  EXPECT_EQ(Verify(&h, "POST", "/v1/site-report", "{}", w, kNow, nullptr), Verdict::kBadTag);
  w.report_key = &K().report;
  w.to = "ccm-2";  // another CCM run: a report captured in one job is refused in the next
  EXPECT_EQ(Verify(&h, "POST", "/v1/site-report", "{}", w, kNow, nullptr), Verdict::kWrongRecipient);
}

TEST(Auth, TheNonceCacheIsBounded) {
  NonceCache cache(100);
  for (int i = 0; i < 1000; ++i) {
    char n[33];
    std::snprintf(n, sizeof n, "%032x", i);
    EXPECT_TRUE(cache.Insert(n, kNow + i, kNow));
  }
  EXPECT_EQ(cache.size(), 100u);
  // Expired entries go first.
  NonceCache c2;
  EXPECT_TRUE(c2.Insert(std::string(32, '1'), kNow, kNow));
  EXPECT_FALSE(c2.Insert(std::string(32, '1'), kNow, kNow));
  EXPECT_TRUE(c2.Insert(std::string(32, '2'), kNow + 1000, kNow + kClockSkew + 1));
  EXPECT_EQ(c2.size(), 1u);
}

RC_GTEST_PROP(Auth, ParseIsTotalOnAnyText, (const std::string& text)) {
  auto p = Parse(text);
  if (p.ok()) {
    RC_ASSERT(Parse(Format(*p)).ok());
  }
}

RC_GTEST_PROP(Auth, ParseIsTotalOnMutatedHeaders, (size_t pos, char c)) {
  std::string h = Format(Order("web1", "{}"));
  h[pos % h.size()] = c;
  (void)Parse(h);
  std::string body = "{}";
  auto v = Verify(&h, "POST", "/v1/fetch", body, OrderFor("web1"), kNow, nullptr);
  RC_ASSERT(v != Verdict::kOk || h == Format(Order("web1", "{}")));
}

}  // namespace
}  // namespace cm::cm_auth
