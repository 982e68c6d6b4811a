// ReportSchedule on virtual time: back-off until acknowledged, slow retries
// on an authentication refusal, refresh after an ack, one log line per
// change of condition, nothing after Withdraw.
#include "leaderrun/report_schedule.h"

#include <gtest/gtest.h>

namespace cm::leaderrun {
namespace {

using namespace std::chrono_literals;
using Kind = ReportSchedule::Result::Kind;
using TP = ReportSchedule::Clock::time_point;

const TP t0 = TP{} + 1000s;

ReportSchedule::Result Down() { return {Kind::kUnreachable, "connection refused"}; }
ReportSchedule::Result Ok() { return {Kind::kTaken, ""}; }

TEST(ReportSchedule, NothingToSendBeforeAPost) {
  ReportSchedule s;
  EXPECT_FALSE(s.Take(t0));
  EXPECT_FALSE(s.due());
}

TEST(ReportSchedule, UnreachableCcmIsRetriedWithDoublingBackoffCappedAt30s) {
  ReportSchedule s;
  s.Post(t0, "r1");
  TP now = t0;
  std::vector<int64_t> gaps;
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(s.Take(now), std::optional<std::string>("r1")) << "attempt " << i;
    s.OnResult(now, Down());
    ASSERT_TRUE(s.due());
    EXPECT_FALSE(s.Take(*s.due() - 1ms)) << "sent before its back-off ended";
    gaps.push_back(std::chrono::duration_cast<std::chrono::seconds>(*s.due() - now).count());
    now = *s.due();
  }
  EXPECT_EQ(gaps, (std::vector<int64_t>{1, 2, 4, 8, 16, 30, 30, 30}));
  EXPECT_FALSE(s.acknowledged());
}

TEST(ReportSchedule, ReportArrivesOnceTheCcmComesUpThenRefreshesEveryMinute) {
  ReportSchedule s;
  s.Post(t0, "r1");
  ASSERT_TRUE(s.Take(t0));
  s.OnResult(t0, Down());
  TP now = *s.due();
  ASSERT_TRUE(s.Take(now));
  s.OnResult(now, Ok());
  EXPECT_TRUE(s.acknowledged());
  EXPECT_EQ(*s.due() - now, 60s);
  EXPECT_FALSE(s.Take(now + 59s));
  EXPECT_EQ(s.Take(now + 60s), std::optional<std::string>("r1"));
  s.OnResult(now + 60s, Ok());
  EXPECT_EQ(*s.due() - (now + 60s), 60s);
}

TEST(ReportSchedule, AfterAnAckEveryChangeGoesAtOnceAndOnlyTheNewestIsKept) {
  ReportSchedule s;
  s.Post(t0, "r1");
  ASSERT_TRUE(s.Take(t0));
  s.OnResult(t0, Ok());
  s.Post(t0 + 5s, "r2");
  s.Post(t0 + 5s, "r3");
  EXPECT_EQ(s.Take(t0 + 5s), std::optional<std::string>("r3"));
  // A change while one is on its way goes as soon as that one is taken.
  s.Post(t0 + 6s, "r4");
  EXPECT_FALSE(s.Take(t0 + 6s)) << "two in flight";
  s.OnResult(t0 + 7s, Ok());
  EXPECT_EQ(s.Take(t0 + 7s), std::optional<std::string>("r4"));
}

TEST(ReportSchedule, AChangeWhileTheCcmIsDownWaitsForThePlannedRetry) {
  ReportSchedule s;
  s.Post(t0, "r1");
  ASSERT_TRUE(s.Take(t0));
  s.OnResult(t0, Down());
  s.Post(t0 + 100ms, "r2");
  EXPECT_FALSE(s.Take(t0 + 100ms));
  EXPECT_EQ(s.Take(t0 + 1s), std::optional<std::string>("r2"));
}

TEST(ReportSchedule, AuthRefusalIsRetriedOnlyAtTheSlowRate) {
  ReportSchedule s;
  s.Post(t0, "r1");
  ASSERT_TRUE(s.Take(t0));
  auto line = s.OnResult(t0, ReportSchedule::Classify(401, R"({"error":"unauthenticated: CM-Auth tag does not verify"})"));
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("401 unauthenticated: CM-Auth tag does not verify"), std::string::npos) << *line;
  EXPECT_EQ(*s.due() - t0, 30s);
  s.Post(t0 + 1s, "r2");  // a change does not hurry it
  EXPECT_FALSE(s.Take(t0 + 29s));
  ASSERT_TRUE(s.Take(t0 + 30s));
  // The same refusal again: no new log line.
  EXPECT_FALSE(s.OnResult(t0 + 30s, ReportSchedule::Classify(401, R"({"error":"unauthenticated: CM-Auth tag does not verify"})")));
  EXPECT_EQ(*s.due() - (t0 + 30s), 30s);
  // Another reason is logged.
  ASSERT_TRUE(s.Take(t0 + 60s));
  EXPECT_TRUE(s.OnResult(t0 + 60s, ReportSchedule::Classify(403, R"({"error":"forbidden: unknown sender"})")));
}

TEST(ReportSchedule, OneLogLinePerChangeOfConditionNotPerRetry) {
  ReportSchedule s;
  s.Post(t0, "r1");
  int lines = 0;
  TP now = t0;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(s.Take(now));
    lines += s.OnResult(now, {Kind::kUnreachable, "timed out after " + std::to_string(i)}).has_value();
    now = *s.due();
  }
  EXPECT_EQ(lines, 1);
  ASSERT_TRUE(s.Take(now));
  EXPECT_TRUE(s.OnResult(now, Ok()));  // back: one line
  now = *s.due();
  ASSERT_TRUE(s.Take(now));
  EXPECT_FALSE(s.OnResult(now, Ok()));  // a refresh: none
}

TEST(ReportSchedule, WithdrawnReportIsNeitherRetriedNorRefreshed) {
  ReportSchedule s;
  s.Post(t0, "r1");
  ASSERT_TRUE(s.Take(t0));
  s.OnResult(t0, Down());
  s.Withdraw();
  EXPECT_FALSE(s.due());
  EXPECT_FALSE(s.Take(t0 + 1h));
  // Withdrawn while on its way: no refresh either.
  s.Post(t0 + 1h, "r2");
  ASSERT_TRUE(s.Take(t0 + 1h + 30s));
  s.Withdraw();
  s.OnResult(t0 + 1h + 30s, Ok());
  EXPECT_FALSE(s.due());
  EXPECT_FALSE(s.unsent());
}

TEST(ReportSchedule, ClassifyTakesTheCcmsReason) {
  EXPECT_EQ(ReportSchedule::Classify(200, "{}").kind, Kind::kTaken);
  EXPECT_EQ(ReportSchedule::Classify(204, "").kind, Kind::kTaken);
  EXPECT_EQ(ReportSchedule::Classify(403, "").kind, Kind::kRefused);
  auto r = ReportSchedule::Classify(503, "busy\nnow");
  EXPECT_EQ(r.kind, Kind::kRejected);
  EXPECT_EQ(r.why, "503 busy now");
}

}  // namespace
}  // namespace cm::leaderrun
