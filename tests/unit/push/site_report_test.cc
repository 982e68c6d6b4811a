// The leader's site report collector and its JSON.
#include "push/site_report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <random>

namespace cm::push {

void PrintTo(const MemberResult& m, std::ostream* os) {
  *os << m.name << ":" << MemberStateName(m.state) << (m.reason.empty() ? "" : ":" + m.reason);
}

namespace {

using proto::kSeconds;

SiteReport Header(SitePhase phase = SitePhase::kStage) {
  SiteReport h;
  h.site = "paris";
  h.leader = "p1";
  h.job = "j42";
  h.serial = 7;
  h.phase = phase;
  return h;
}

TEST(SiteReport, ReadyWhenEveryMemberAnswered) {
  SiteCollector c(Header(), {"p1", "p2", "p3"}, 10 * kSeconds);
  EXPECT_FALSE(c.Ready(0));
  EXPECT_EQ(c.OnResult(1, "p2", MemberState::kStaged), SiteCollector::Accept::kRecorded);
  EXPECT_EQ(c.OnResult(2, "p3", MemberState::kFailed, "no space"), SiteCollector::Accept::kRecorded);
  EXPECT_FALSE(c.Ready(3));
  EXPECT_EQ(c.NextWake(), 10 * kSeconds);
  EXPECT_EQ(c.Missing(), (std::vector<std::string>{"p1"}));
  EXPECT_EQ(c.OnResult(4, "p1", MemberState::kStaged), SiteCollector::Accept::kRecorded);
  EXPECT_TRUE(c.Ready(5));
  EXPECT_EQ(c.NextWake(), proto::kNever);
  SiteReport r = c.Report(5);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.Count(MemberState::kStaged), 2u);
  EXPECT_EQ(r.members[2].reason, "no space");
  EXPECT_EQ(r.members[0].name, "p1");  // the listed order, not the arrival order
}

TEST(SiteReport, DuplicatesStrangersAndWrongPhaseAreIgnored) {
  SiteCollector c(Header(), {"a", "b", "a"}, 10 * kSeconds);
  EXPECT_EQ(c.members(), 2u);
  EXPECT_EQ(c.OnResult(1, "a", MemberState::kFailed, "x"), SiteCollector::Accept::kRecorded);
  EXPECT_EQ(c.OnResult(2, "a", MemberState::kStaged), SiteCollector::Accept::kDuplicate);
  EXPECT_EQ(c.OnResult(2, "zz", MemberState::kStaged), SiteCollector::Accept::kUnknownMember);
  EXPECT_EQ(c.OnResult(2, "b", MemberState::kCommitted), SiteCollector::Accept::kWrongPhase);
  EXPECT_EQ(c.OnResult(2, "b", MemberState::kPending), SiteCollector::Accept::kWrongPhase);
  EXPECT_EQ(c.answered(), 1u);
  EXPECT_EQ(c.Report(3).members[0].state, MemberState::kFailed);
}

TEST(SiteReport, DeadlineFailsTheSilentWithNoReport) {
  SiteCollector c(Header(SitePhase::kCommit), {"a", "b", "c"}, 10 * kSeconds);
  c.OnResult(1, "b", MemberState::kCommitted);
  SiteReport early = c.Report(5 * kSeconds);
  EXPECT_FALSE(early.complete);
  EXPECT_EQ(early.Count(MemberState::kPending), 2u);
  c.ExtendDeadline(20 * kSeconds);
  c.ExtendDeadline(15 * kSeconds);  // never shortens
  EXPECT_FALSE(c.Ready(19 * kSeconds));
  EXPECT_TRUE(c.Ready(20 * kSeconds));
  SiteReport r = c.Report(20 * kSeconds);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.members[0].state, MemberState::kFailed);
  EXPECT_EQ(r.members[0].reason, kNoReport);
  EXPECT_EQ(r.members[1].state, MemberState::kCommitted);
  EXPECT_EQ(r.Count(MemberState::kFailed), 2u);
  // A late answer still counts while the member is silent.
  EXPECT_EQ(c.OnResult(21 * kSeconds, "c", MemberState::kCommitted), SiteCollector::Accept::kRecorded);
  EXPECT_EQ(c.Report(21 * kSeconds).Count(MemberState::kCommitted), 2u);
}

TEST(SiteReport, NoMembersIsReadyAtOnce) {
  SiteCollector c(Header(), {}, 10 * kSeconds);
  EXPECT_TRUE(c.Ready(0));
  EXPECT_TRUE(c.Report(0).complete);
}

TEST(SiteReport, JsonRoundTrips) {
  SiteCollector c(Header(), {"a", "b\"q", "c"}, 10 * kSeconds);
  c.OnResult(1, "a", MemberState::kStaged);
  c.OnResult(1, "b\"q", MemberState::kFailed, "disk\nfull");
  SiteReport r = c.Report(11 * kSeconds);
  std::string json = r.ToJson();
  EXPECT_NE(json.find("\"phase\":\"stage\""), std::string::npos);
  EXPECT_NE(json.find("\"failed\":2"), std::string::npos);
  auto back = ParseSiteReport(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->site, "paris");
  EXPECT_EQ(back->leader, "p1");
  EXPECT_EQ(back->job, "j42");
  EXPECT_EQ(back->serial, 7u);
  EXPECT_EQ(back->phase, SitePhase::kStage);
  EXPECT_TRUE(back->complete);
  EXPECT_EQ(back->members, r.members);
  EXPECT_EQ(back->ToJson(), json);
}

TEST(SiteReport, ParserRejectsMalformedReports) {
  const char* bad[] = {
      "",
      "[]",
      R"({"site":"s","leader":"l","job":"j","serial":1,"phase":"stage","complete":true})",
      R"({"site":"s","leader":"l","job":"j","serial":1,"phase":"other","complete":true,"members":[]})",
      R"({"site":"s","leader":"l","job":"j","serial":"1","phase":"stage","complete":true,"members":[]})",
      R"({"site":"s","leader":"l","job":"j","serial":1,"phase":"stage","complete":true,"members":[{"name":"a","state":"odd"}]})",
      R"({"site":"s","leader":"l","job":"j","serial":1,"phase":"stage","complete":true,"members":[{"name":"","state":"staged"}]})",
      R"({"site":"s","leader":"l","job":"j","serial":1,"phase":"stage","complete":true,"members":[{"name":"a","state":"staged"},{"name":"a","state":"failed"}]})",
      R"({"site":"s","leader":"l","job":"j","serial":1,"phase":"stage","complete":true,"members":[{"name":"a","state":"failed","reason":3}]})",
  };
  for (const char* b : bad) EXPECT_EQ(ParseSiteReport(b).status().code(), Code::kCorrupt) << b;
}

TEST(SiteReport, ParserNeverCrashesOnMutations) {
  SiteCollector c(Header(), {"a", "b"}, 0);
  c.OnResult(0, "a", MemberState::kStaged);
  const std::string good = c.Report(1).ToJson();
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20000; ++i) {
    std::string m = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % m.size();
      switch (rng() % 3) {
        case 0: m[at] = static_cast<char>(rng()); break;
        case 1: m.erase(at, 1 + rng() % 8); break;
        default: m.insert(at, 1, static_cast<char>(rng())); break;
      }
      if (m.empty()) m = "{";
    }
    auto r = ParseSiteReport(m);
    if (r.ok()) {
      // Bytes that are not UTF-8 come back as \u00XX code points once; from
      // then on the round trip is exact.
      auto again = ParseSiteReport(r->ToJson());
      ASSERT_TRUE(again.ok()) << m;
      ASSERT_EQ(again->members.size(), r->members.size());
      auto third = ParseSiteReport(again->ToJson());
      ASSERT_TRUE(third.ok()) << m;
      ASSERT_EQ(third->ToJson(), again->ToJson());
    }
  }
}

}  // namespace
}  // namespace cm::push
