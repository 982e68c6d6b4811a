#include "push/job_book.h"

#include <gtest/gtest.h>

namespace cm::push {
namespace {

using proto::kSeconds;

std::vector<JobNotice::Kind> Kinds(const std::vector<JobNotice>& v) {
  std::vector<JobNotice::Kind> k;
  for (const JobNotice& n : v) k.push_back(n.kind);
  return k;
}

TEST(JobBook, IdsAreUniquePerClientAndBadInputIsRefused) {
  JobBook book({"purge-cache"});
  auto a = book.Open(0, "ci", {"s1", "s2"});
  auto b = book.Open(0, "ci", {"s1"});
  auto c = book.Open(0, "ops", {"s1"});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, "ci-1");
  EXPECT_EQ(*b, "ci-2");
  EXPECT_EQ(*c, "ops-1");
  EXPECT_EQ(book.Open(0, "a b", {"s1"}).status().code(), Code::kUsage);
  EXPECT_EQ(book.Open(0, "ci", {}).status().code(), Code::kUsage);
  EXPECT_EQ(book.Open(0, "ci", {"s1", "s1"}).status().code(), Code::kUsage);
  // The base may pick the id (it skips ids its state directory used), never one in use.
  EXPECT_EQ(*book.Open(0, "ci", {"s1"}, {}, "ci-7"), "ci-7");
  EXPECT_EQ(book.Open(0, "ci", {"s1"}, {}, "ci-7").status().code(), Code::kUsage);
  EXPECT_EQ(book.AddItem("nope-1", EntryKind::kFile, "f").status().code(), Code::kNotFound);
  EXPECT_EQ(book.AddCommand(*a, CommandName::kHook, "rm -rf /").status().code(), Code::kUsage);
  EXPECT_TRUE(book.AddCommand(*a, CommandName::kHook, "purge-cache").ok());
}

TEST(JobBook, EntriesAreNumberedInQueueOrderAndTheQueueClosesAtEnd) {
  JobBook book;
  std::string j = *book.Open(0, "ci", {"s1"});
  EXPECT_EQ(*book.AddItem(j, EntryKind::kAssignment, "a.cma"), 1u);
  EXPECT_EQ(*book.AddCommand(j, CommandName::kStage, ""), 2u);
  EXPECT_EQ(*book.AddCommand(j, CommandName::kCommit, ""), 3u);
  std::vector<JobNotice> out;
  ASSERT_TRUE(book.End(0, j, &out).ok());
  EXPECT_TRUE(out.empty());  // nothing done yet
  EXPECT_EQ(book.AddItem(j, EntryKind::kFile, "late").status().code(), Code::kUsage);
}

TEST(JobBook, NoticesForReceiptExecutionAndCompletionThenTheFinish) {
  JobBook book;
  std::string j = *book.Open(0, "ci", {"s1", "s2"});
  book.AddItem(j, EntryKind::kFile, "f");
  book.AddCommand(j, CommandName::kStage, "");
  std::vector<JobNotice> out;
  book.End(0, j, &out);
  book.OnReport(1, j, "s1", {{1, EntryState::kDone, ""}, {2, EntryState::kInProgress, ""}}, true, &out);
  EXPECT_EQ(Kinds(out), (std::vector{JobNotice::Kind::kReceived, JobNotice::Kind::kExecuting}));
  out.clear();
  // Repeats and regressions are no news.
  book.OnReport(2, j, "s1", {{1, EntryState::kDone, ""}, {2, EntryState::kNew, ""}}, false, &out);
  EXPECT_TRUE(out.empty());
  book.OnReport(3, j, "s1", {{2, EntryState::kDone, ""}}, true, &out);
  EXPECT_EQ(Kinds(out), (std::vector{JobNotice::Kind::kCompleted}));
  out.clear();
  // A command reported completed at once also says it executed.
  book.OnReport(4, j, "s2", {{1, EntryState::kDone, ""}, {2, EntryState::kDone, ""}}, true, &out);
  EXPECT_EQ(Kinds(out), (std::vector{JobNotice::Kind::kReceived, JobNotice::Kind::kExecuting,
                                     JobNotice::Kind::kCompleted, JobNotice::Kind::kFinished}));
  EXPECT_EQ(out.back().count, 2u);
  EXPECT_EQ(out.back().total, 2u);
  EXPECT_TRUE(book.View(j)->finished);
  EXPECT_TRUE(book.Forget(j));
}

TEST(JobBook, AFailedEntryStaysFailedAndCountsAgainstTheFinish) {
  JobBook book;
  std::string j = *book.Open(0, "ci", {"s1"});
  book.AddCommand(j, CommandName::kCommit, "");
  std::vector<JobNotice> out;
  book.End(0, j, &out);
  book.OnReport(1, j, "s1", {{1, EntryState::kFailed, "cm-apply: no space"}}, true, &out);
  ASSERT_EQ(Kinds(out), (std::vector{JobNotice::Kind::kFailed, JobNotice::Kind::kFinished}));
  EXPECT_EQ(out[0].error, "cm-apply: no space");
  EXPECT_EQ(out[1].count, 0u);
}

TEST(JobBook, AStragglerReportingProgressWaitsLongerASilentOneIsGivenUp) {
  JobBook book;
  JobOpenOptions o;
  o.timeout = 10 * kSeconds;
  o.extend = 5 * kSeconds;
  o.max_wait = 20 * kSeconds;
  std::string j = *book.Open(0, "ci", {"busy", "silent", "done"}, o);
  book.AddItem(j, EntryKind::kFile, "f");
  std::vector<JobNotice> out;
  book.End(0, j, &out);
  book.OnReport(1 * kSeconds, j, "done", {{1, EntryState::kDone, ""}}, true, &out);
  book.OnReport(9 * kSeconds, j, "busy", {}, true, &out);
  out.clear();
  book.OnTimer(10 * kSeconds, &out);  // the deadline
  ASSERT_EQ(Kinds(out), (std::vector{JobNotice::Kind::kGivenUp}));
  EXPECT_EQ(out[0].node, "silent");
  EXPECT_FALSE(book.View(j)->finished);
  out.clear();
  book.OnReport(13 * kSeconds, j, "busy", {}, true, &out);
  book.OnTimer(16 * kSeconds, &out);  // still moving 3 s ago
  EXPECT_TRUE(out.empty());
  book.OnReport(17 * kSeconds, j, "busy", {{1, EntryState::kDone, ""}}, true, &out);
  ASSERT_EQ(Kinds(out), (std::vector{JobNotice::Kind::kReceived, JobNotice::Kind::kFinished}));
  EXPECT_EQ(out.back().count, 2u);
  // A given-up node's late report is ignored.
  out.clear();
  book.OnReport(18 * kSeconds, j, "silent", {{1, EntryState::kDone, ""}}, true, &out);
  EXPECT_TRUE(out.empty());
}

TEST(JobBook, AQueueNeverEndedClosesAtTheDeadlineAndAnOpenStreamHoldsTheFinish) {
  JobBook book;
  JobOpenOptions o;
  o.timeout = 10 * kSeconds;
  o.extend = 1 * kSeconds;
  o.max_wait = 5 * kSeconds;
  std::string j = *book.Open(0, "ci", {"s1"}, o);
  uint32_t st = *book.AddItem(j, EntryKind::kStream, "log");
  std::vector<JobNotice> out;
  book.End(0, j, &out);
  book.OnReport(1 * kSeconds, j, "s1", {{st, EntryState::kDone, ""}}, true, &out);
  EXPECT_FALSE(book.View(j)->finished) << "the stream is still open";
  ASSERT_TRUE(book.CloseStream(j, st).ok());
  book.OnTimer(2 * kSeconds, &out);
  EXPECT_TRUE(book.View(j)->finished);

  std::string k = *book.Open(0, "ci", {"s1"}, o);
  book.AddItem(k, EntryKind::kFile, "f");
  out.clear();
  book.OnTimer(9 * kSeconds, &out);
  EXPECT_TRUE(out.empty());
  book.OnTimer(10 * kSeconds, &out);  // never ended, nothing received: given up, over
  EXPECT_EQ(Kinds(out), (std::vector{JobNotice::Kind::kGivenUp, JobNotice::Kind::kFinished}));
}

}  // namespace
}  // namespace cm::push
