#include "push/messages.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace cm::push {
namespace {

TEST(Messages, FetchOrderRoundTrips) {
  FetchOrder o;
  o.serial = 123456789012345ull;
  o.job = "rel-7";
  o.kind = TransferKind::kCommit;
  o.size = 52428800;
  o.source = "http://198.18.1.10:7710";
  o.source_name = "s1a";
  o.ccm = "http://198.18.0.10:7700";
  o.relay = "s2a";
  o.site = "site2";
  o.group = "239.192.0.2:7800";
  o.members = {{"s2b", "http://198.18.2.11:7710"}, {"s2c", "http://198.18.2.12:7710"}};
  o.serve = false;
  auto p = ParseFetchOrder(Encode(o));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, o);
  EXPECT_NE(Encode(o).find(R"("kind":"commit")"), std::string::npos);
}

TEST(Messages, FetchOrderWithoutSerialOrSourceIsRejected) {
  EXPECT_FALSE(ParseFetchOrder(R"({"source":"http://x:1"})").ok());
  EXPECT_FALSE(ParseFetchOrder(R"({"serial":5})").ok());
  EXPECT_FALSE(ParseFetchOrder(R"({"serial":5,"source":"http://x:1","kind":"explode"})").ok());
  EXPECT_FALSE(ParseFetchOrder(R"([1,2])").ok());
  EXPECT_FALSE(ParseFetchOrder("not json").ok());
}

TEST(Messages, SiteReportCarriesEveryServer) {
  SiteReport r;
  r.serial = 9;
  r.site = "ams";
  r.leader = "ams-1";
  r.servers = {{"ams-1", ServerState::kStaged, "", Via::kLeader, 0},
               {"ams-2", ServerState::kFailed, "cm-apply: error: no space", Via::kMulticast, 9}};
  auto p = ParseSiteReport(Encode(r));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, r);
  EXPECT_EQ(p->servers[1].apply_exit, 9);
  EXPECT_FALSE(ParseSiteReport(R"({"serial":9,"servers":[{"name":"x","state":"weird"}]})").ok());
  EXPECT_FALSE(ParseSiteReport(R"({"serial":9,"servers":[{"name":"x","state":"pending"}]})").ok());
}

// Issue 12: the record names each server's release from what the server
// reports; a report from an older relay (no "release") still parses.
TEST(Messages, AServerResultCarriesTheLiveReleaseAndParsesWithoutIt) {
  ServerResult r{"a2", ServerState::kCommitted, "", Via::kMulticast, 0, "s000000000041-w30"};
  const std::string body = Encode(MemberReport{41, r});
  EXPECT_NE(body.find(R"("release":"s000000000041-w30")"), std::string::npos) << body;
  auto p = ParseMemberReport(body);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->result, r);
  SiteReport s{41, "a", "a1", {r, {"a1", ServerState::kStaged, "", Via::kLeader, 0, "s000000000040-w29"}}};
  auto ps = ParseSiteReport(Encode(s));
  ASSERT_TRUE(ps.ok());
  EXPECT_EQ(*ps, s);
  auto old = ParseSiteReport(R"({"serial":41,"site":"a","leader":"a1","servers":[{"name":"a1","state":"staged"}]})");
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->servers[0].release, "");
  EXPECT_EQ(Encode(ServerResult{"a1", ServerState::kStaged}).find("release"), std::string::npos);
}

TEST(Messages, MemberReportAndExpectRoundTrip) {
  MemberReport m{7, {"b", ServerState::kCommitted, "", Via::kUnicast, 0}};
  auto pm = ParseMemberReport(Encode(m));
  ASSERT_TRUE(pm.ok());
  EXPECT_EQ(*pm, m);
  Expect e;
  e.serial = 7;
  e.leader_url = "http://a:1";
  e.group = "239.1.1.1:5000";
  auto pe = ParseExpect(Encode(e));
  ASSERT_TRUE(pe.ok());
  EXPECT_EQ(*pe, e);
  EXPECT_FALSE(ParseExpect(R"({"serial":7})").ok());
}

TEST(Messages, NextAnswersRoundTrip) {
  NextAnswer none;
  EXPECT_EQ(*ParseNextAnswer(Encode(none)), none);
  NextAnswer retry;
  retry.kind = NextAnswer::Kind::kRetry;
  retry.retry_ms = 250;
  EXPECT_EQ(*ParseNextAnswer(Encode(retry)), retry);
  NextAnswer next;
  next.kind = NextAnswer::Kind::kNext;
  next.relay = "s3a";
  next.url = "http://198.18.3.10:7710";
  next.order.serial = 4;
  next.order.source = "http://198.18.0.10:7700";
  next.order.relay = "s3a";
  EXPECT_EQ(*ParseNextAnswer(Encode(next)), next);
}

TEST(Messages, RelayFailedCarriesTheReasonAndTheApplyExit) {
  RelayFailed f{12, "web1", "spool: no space left on device", 0, true};
  const std::string body = Encode(f);
  EXPECT_EQ(body, R"({"serial":12,"relay":"web1","error":"spool: no space left on device","apply_exit":0,"local":true})");
  EXPECT_EQ(*ParseRelayFailed(body), f);
  auto p = ParseRelayFailed(R"({"serial":3,"relay":"b","error":"cm-apply exited 9","apply_exit":9})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->apply_exit, 9);
  EXPECT_TRUE(p->local);
  EXPECT_FALSE(ParseRelayFailed(R"({"relay":"b","error":"x"})").ok());
  EXPECT_FALSE(ParseRelayFailed(R"({"serial":3,"error":"x"})").ok());
  EXPECT_FALSE(ParseRelayFailed(R"({"serial":3,"relay":"b","apply_exit":300})").ok());
}

TEST(Messages, RelayStatusCarriesTheLiveTree) {
  RelayStatus st{"web1", {}, std::nullopt, "0123456789abcdef",
                 LiveTree{"s000000000007-j7", 7, std::string(64, 'a'), std::string(64, 'b'), false,
                          {"p7.html"}, {"gone"}, {"new/x"}, false}};
  const std::string body = Encode(st);
  auto back = ParseRelayStatus(body);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, st);
  EXPECT_FALSE(ParseRelayStatus(R"({"name":"x","transfers":[],"live":{"live_manifest":"zz"}})").ok());
  std::string many = R"({"name":"x","transfers":[],"live":{"live_manifest":")" + std::string(64, 'b') +
                     R"(","changed":[)";
  for (size_t i = 0; i <= LiveTree::kMaxLivePaths; ++i) many += (i ? ",\"p" : "\"p") + std::to_string(i) + "\"";
  EXPECT_FALSE(ParseRelayStatus(many + "]}}").ok());
  ServerResult r{"web1", ServerState::kCommitted, "", Via::kNone, 0, "s000000000007-j7", std::string(64, 'c')};
  auto rb = ParseMemberReport(Encode(MemberReport{7, r}));
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(rb->result, r);
  r.manifest = "short";
  EXPECT_FALSE(ParseMemberReport(Encode(MemberReport{7, r})).ok());
}

TEST(Messages, RelayStatusCarriesTheElectedLeaderAndTheNonce) {
  RelayStatus st{"web1", {{9, "staged", 100, 100, true, ""}}, SiteLeader{"10.0.0.7", 4}, "0123456789abcdef"};
  const std::string body = Encode(st);
  EXPECT_NE(body.find(R"("site_leader":{"address":"10.0.0.7","epoch":4})"), std::string::npos) << body;
  EXPECT_EQ(*ParseRelayStatus(body), st);
  auto plain = ParseRelayStatus(R"({"name":"web2","transfers":[]})");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->site_leader);
  EXPECT_EQ(plain->nonce, "");
  EXPECT_FALSE(ParseRelayStatus(R"({"name":"x","transfers":[{"state":"new"}]})").ok());
  // The leader's relay lists its cm-leader's members (servers that joined).
  st.site_leader->members = {{"web1", "10.0.0.7"}, {"web9", "10.0.0.19"}};
  EXPECT_EQ(*ParseRelayStatus(Encode(st)), st);
  EXPECT_FALSE(ParseRelayStatus(
                   R"({"name":"x","transfers":[],"site_leader":{"address":"10.0.0.7","epoch":1,"members":[{"name":""}]}})")
                   .ok());
  EXPECT_TRUE(IsStatusNonce("0123456789abcdef"));
  EXPECT_TRUE(IsStatusNonce(std::string(64, 'F')));
  EXPECT_FALSE(IsStatusNonce("0123456789abcde"));
  EXPECT_FALSE(IsStatusNonce(std::string(65, 'a')));
  EXPECT_FALSE(IsStatusNonce("0123456789abcdeg"));
}

// Arbitrary text in every field: any ASCII byte (control characters,
// quotes, backslashes) and valid UTF-8 beyond it. JSON strings are Unicode:
// a byte string that is not UTF-8 cannot round-trip, and names on the wire
// never are.
std::string AnyText() {
  std::string s = *rc::gen::container<std::string>(rc::gen::inRange<char>(1, 127));
  if (*rc::gen::arbitrary<bool>()) s += *rc::gen::element<std::string>("\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x93\xa6");
  return s;
}
std::string NonEmptyText() { return "n" + AnyText(); }
uint64_t AnyU64() { return *rc::gen::arbitrary<uint64_t>(); }

RC_GTEST_PROP(Messages, EveryMessageRoundTripsThroughItsJson, ()) {
  FetchOrder o;
  o.serial = *rc::gen::inRange<uint64_t>(1, UINT64_MAX);
  o.job = AnyText();
  o.kind = *rc::gen::element(TransferKind::kStage, TransferKind::kCommit);
  o.size = AnyU64();
  o.source = NonEmptyText();
  o.source_name = AnyText();
  o.ccm = AnyText();
  o.relay = AnyText();
  o.site = AnyText();
  o.group = AnyText();
  int n = *rc::gen::inRange(0, 4);
  for (int i = 0; i < n; ++i)
    o.members.push_back({NonEmptyText(), NonEmptyText()});
  o.serve = *rc::gen::arbitrary<bool>();
  o.stream = *rc::gen::arbitrary<bool>();
  RC_ASSERT(*ParseFetchOrder(Encode(o)) == o);

  ServerResult r;
  r.name = NonEmptyText();
  r.state = *rc::gen::element(ServerState::kStaged, ServerState::kCommitted, ServerState::kFailed);
  r.error = AnyText();
  r.via = *rc::gen::element(Via::kNone, Via::kMulticast, Via::kUnicast, Via::kLeader, Via::kCcm);
  r.apply_exit = *rc::gen::inRange(0, 256);
  r.release = AnyText();
  MemberReport m{o.serial, r};
  RC_ASSERT(*ParseMemberReport(Encode(m)) == m);
  SiteReport s{o.serial, AnyText(), AnyText(), {r, r}};
  RC_ASSERT(*ParseSiteReport(Encode(s)) == s);

  Expect e{o.serial, AnyText(), o.kind, AnyU64(), AnyText(), AnyText(), o.source, AnyText()};
  RC_ASSERT(*ParseExpect(Encode(e)) == e);
  Progress p{o.serial, r.name, AnyU64(), AnyU64(), *rc::gen::arbitrary<bool>()};
  RC_ASSERT(*ParseProgress(Encode(p)) == p);
  NextAsk a{o.serial, r.name, AnyU64(), *rc::gen::arbitrary<bool>()};
  RC_ASSERT(*ParseNextAsk(Encode(a)) == a);
  SourceFailed f{o.serial, r.name, AnyText(), AnyText(), AnyU64(), AnyText()};
  RC_ASSERT(*ParseSourceFailed(Encode(f)) == f);
  SourceAnswer sa{o.source, AnyText()};
  RC_ASSERT(*ParseSourceAnswer(Encode(sa)) == sa);
  NotifyFailed nf{o.serial, AnyText(), r.name, AnyText()};
  RC_ASSERT(*ParseNotifyFailed(Encode(nf)) == nf);
  RelayFailed rf{o.serial, r.name, AnyText(), r.apply_exit, *rc::gen::arbitrary<bool>()};
  RC_ASSERT(*ParseRelayFailed(Encode(rf)) == rf);
  RelayStatus st{AnyText(), {{o.serial, AnyText(), AnyU64(), AnyU64(), *rc::gen::arbitrary<bool>(), AnyText()}},
                 std::nullopt, AnyText()};
  if (*rc::gen::arbitrary<bool>()) st.site_leader = SiteLeader{NonEmptyText(), AnyU64()};
  RC_ASSERT(*ParseRelayStatus(Encode(st)) == st);
}

// A parser either rejects a body or accepts one that re-encodes to a body it
// accepts again, with the same value (parse . encode is the identity on
// everything a parser ever accepts).
RC_GTEST_PROP(Messages, WhatAParserAcceptsIsStableUnderReencoding, (std::string s)) {
  if (auto o = ParseFetchOrder(s); o.ok()) RC_ASSERT(*ParseFetchOrder(Encode(*o)) == *o);
  if (auto e = ParseExpect(s); e.ok()) RC_ASSERT(*ParseExpect(Encode(*e)) == *e);
  if (auto m = ParseMemberReport(s); m.ok()) RC_ASSERT(*ParseMemberReport(Encode(*m)) == *m);
  if (auto r = ParseSiteReport(s); r.ok()) RC_ASSERT(*ParseSiteReport(Encode(*r)) == *r);
  if (auto n = ParseNextAnswer(s); n.ok()) RC_ASSERT(*ParseNextAnswer(Encode(*n)) == *n);
  if (auto f = ParseRelayFailed(s); f.ok()) RC_ASSERT(*ParseRelayFailed(Encode(*f)) == *f);
  if (auto st = ParseRelayStatus(s); st.ok()) RC_ASSERT(*ParseRelayStatus(Encode(*st)) == *st);
}

}  // namespace
}  // namespace cm::push
