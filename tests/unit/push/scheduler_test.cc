// The tree scheduler's decisions, one event at a time (the randomized runs are
// in scheduler_sim_test.cc).
#include "push/scheduler.h"

#include <gtest/gtest.h>

namespace cm::push {
namespace {

using proto::kSeconds;

constexpr uint64_t kChunk = 100;
constexpr uint64_t kSize = 1000;

std::vector<std::string> Names(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back("r" + std::to_string(i));
  return v;
}

Scheduler Make(int n, SchedulerOptions o = {}) {
  auto s = Scheduler::Create(kSize, kChunk, Names(n), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

std::string NextOf(const Answer& a) { return std::holds_alternative<Next>(a) ? std::get<Next>(a).relay : "-"; }
bool IsRetry(const Answer& a) { return std::holds_alternative<RetryIn>(a); }
bool IsNone(const Answer& a) { return std::holds_alternative<NoneLeft>(a); }

TEST(Scheduler, CreateRejectsBadInput) {
  EXPECT_FALSE(Scheduler::Create(0, 1, Names(2)).ok());
  EXPECT_FALSE(Scheduler::Create(1, 0, Names(2)).ok());
  EXPECT_FALSE(Scheduler::Create(1, 1, {"a", "a"}).ok());
  EXPECT_FALSE(Scheduler::Create(1, 1, {"a", ""}).ok());
  SchedulerOptions o;
  o.relay_children = 0;
  EXPECT_EQ(Scheduler::Create(1, 1, Names(2), o).status().code(), Code::kUsage);
}

TEST(Scheduler, FewRelaysAllFetchFromTheCcm) {
  Scheduler s = Make(3);
  EXPECT_TRUE(s.star());
  auto orders = s.Start(0);
  ASSERT_EQ(orders.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(orders[i], (Order{"r" + std::to_string(i), "", 1}));
  // Unconfirmed placements may bounce back: not "none left" yet.
  EXPECT_TRUE(IsRetry(s.OnNext(1, "r0", kChunk)));
  for (int i = 0; i < 3; ++i) s.OnProgress(2, "r" + std::to_string(i), kChunk, false);
  EXPECT_TRUE(IsNone(s.OnNext(3, "r0", kChunk)));
}

TEST(Scheduler, TreeStartsWithTheCcmsChildrenOnly) {
  Scheduler s = Make(6);
  EXPECT_FALSE(s.star());
  EXPECT_EQ(s.Start(0), (std::vector<Order>{{"r0", "", 1}}));
  SchedulerOptions o;
  o.ccm_children = 2;
  Scheduler t = Make(6, o);
  EXPECT_EQ(t.Start(0).size(), 2u);
}

TEST(Scheduler, PipelineHandsOutOnTheFirstVerifiedChunkInOrder) {
  Scheduler s = Make(5);
  s.Start(0);
  EXPECT_TRUE(IsRetry(s.OnNext(1, "r0", 0)));       // nothing verified yet
  EXPECT_TRUE(IsRetry(s.OnNext(1, "r0", kChunk - 1)));  // not a whole chunk
  EXPECT_EQ(NextOf(s.OnNext(2, "r0", kChunk)), "r1");
  EXPECT_TRUE(IsRetry(s.OnNext(3, "r0", 2 * kChunk)));  // its one slot is taken
  EXPECT_EQ(s.Find("r1")->source, "r0");
  EXPECT_EQ(NextOf(s.OnNext(4, "r1", kChunk)), "r2");
  EXPECT_EQ(NextOf(s.OnNext(5, "r2", kChunk)), "r3");
  EXPECT_EQ(NextOf(s.OnNext(6, "r3", kChunk)), "r4");
  EXPECT_TRUE(IsRetry(s.OnNext(7, "r3", kChunk)));  // r4's placement is not confirmed yet
  s.OnProgress(8, "r4", kChunk, false);
  EXPECT_TRUE(IsNone(s.OnNext(9, "r4", kChunk)));
}

TEST(Scheduler, StoreAndForwardServesOnlyWhenComplete) {
  SchedulerOptions o;
  o.pipeline = false;
  Scheduler s = Make(7, o);
  s.Start(0);
  EXPECT_TRUE(IsRetry(s.OnNext(1, "r0", kSize - 1)));
  // r0 completes: the CCM's slot frees and it takes r1 itself; r0 gets r2.
  EXPECT_EQ(s.OnProgress(2, "r0", kSize, true), (std::vector<Order>{{"r1", "", 1}}));
  EXPECT_EQ(NextOf(s.OnNext(3, "r0", kSize)), "r2");
  EXPECT_TRUE(IsRetry(s.OnNext(4, "r0", kSize)));
  EXPECT_EQ(s.Find("r0")->phase, RelayPhase::kComplete);
  EXPECT_EQ(s.Find("r0")->children, 1);
}

TEST(Scheduler, MoreChildrenPerRelayWhenAllowed) {
  SchedulerOptions o;
  o.relay_children = 2;
  Scheduler s = Make(5, o);
  s.Start(0);
  EXPECT_EQ(NextOf(s.OnNext(1, "r0", kChunk)), "r1");
  EXPECT_EQ(NextOf(s.OnNext(1, "r0", kChunk)), "r2");
  EXPECT_TRUE(IsRetry(s.OnNext(1, "r0", kChunk)));
  EXPECT_EQ(s.Find("r0")->children, 2);
}

TEST(Scheduler, ChildCompletionFreesTheSlot) {
  Scheduler s = Make(4);
  s.Start(0);
  s.OnNext(1, "r0", kChunk);  // r1 under r0
  s.OnProgress(2, "r1", kSize, true);
  EXPECT_EQ(s.Find("r0")->children, 0);
  EXPECT_EQ(s.Find("r1")->source, "");
  EXPECT_EQ(NextOf(s.OnNext(3, "r0", kSize / 2)), "r2");
}

TEST(Scheduler, NotifyFailureRetriesThenFails) {
  SchedulerOptions o;
  o.notify_retries = 2;
  o.notify_backoff = 1 * kSeconds;
  o.star_max = 2;
  Scheduler s = Make(3, o);
  s.Start(0);
  ASSERT_EQ(NextOf(s.OnNext(1, "r0", kChunk)), "r1");
  EXPECT_TRUE(s.OnNotifyFailed(2, "r9", "r1").empty());  // not its source: stale
  EXPECT_EQ(s.Find("r1")->phase, RelayPhase::kFetching);
  s.OnNotifyFailed(2, "r0", "r1");
  EXPECT_EQ(s.Find("r1")->phase, RelayPhase::kWaiting);
  EXPECT_EQ(s.Find("r0")->children, 0);
  // In its back-off r1 is skipped: r0 gets r2.
  EXPECT_EQ(NextOf(s.OnNext(3, "r0", kChunk)), "r2");
  s.OnProgress(4, "r2", kChunk, false);
  Answer a = s.OnNext(5, "r2", kChunk);
  ASSERT_TRUE(IsRetry(a));  // r1 backs off until 2 + 1 s
  EXPECT_EQ(std::get<RetryIn>(a).delay, o.retry_interval);
  EXPECT_EQ(NextOf(s.OnNext(1 * kSeconds + 2, "r2", kChunk)), "r1");
  s.OnNotifyFailed(1 * kSeconds + 3, "r2", "r1");
  EXPECT_EQ(s.Find("r1")->not_before, 1 * kSeconds + 3 + 2 * kSeconds);
  // r0 completes: the CCM's slot frees and the CCM tries r1 itself.
  EXPECT_EQ(s.OnProgress(4 * kSeconds, "r0", kSize, true), (std::vector<Order>{{"r1", "", 3}}));
  s.OnNotifyFailed(4 * kSeconds + 1, "", "r1");
  EXPECT_EQ(s.Find("r1")->phase, RelayPhase::kFailed);
  EXPECT_EQ(s.Find("r1")->failure, "unreachable");
}

TEST(Scheduler, FailedCcmOrderGivesTheSlotToTheNextRelayAndRetriesAfterTheBackoff) {
  Scheduler s = Make(5);
  s.Start(0);
  EXPECT_EQ(s.OnNotifyFailed(10, "", "r0"), (std::vector<Order>{{"r1", "", 1}}));
  EXPECT_EQ(NextOf(s.OnNext(20, "r1", kChunk)), "r2");  // r0 backs off
  EXPECT_EQ(NextOf(s.OnNext(30, "r2", kChunk)), "r3");
  EXPECT_EQ(NextOf(s.OnNext(10 + 1 * kSeconds, "r3", kChunk)), "r0");
  EXPECT_EQ(s.Find("r0")->epoch, 2u);
}

TEST(Scheduler, BackedOffRelayIsPlacedByTheCcmOnItsTimer) {
  Scheduler s = Make(2);  // star: the CCM serves both
  s.Start(0);
  EXPECT_TRUE(s.OnNotifyFailed(10, "", "r0").empty());
  EXPECT_EQ(s.NextWake(), 10 + 1 * kSeconds);
  EXPECT_TRUE(s.OnTimer(10 + 1 * kSeconds - 1).empty());
  EXPECT_EQ(s.OnTimer(10 + 1 * kSeconds), (std::vector<Order>{{"r0", "", 2}}));
}

TEST(Scheduler, SourceFailedMovesToARelayFurtherAheadNeverDownstream) {
  SchedulerOptions o;
  o.relay_children = 2;
  Scheduler s = Make(6, o);
  s.Start(0);
  s.OnNext(1, "r0", kChunk);         // r0 -> r1, r2
  s.OnNext(1, "r0", kChunk);
  s.OnNext(2, "r1", kChunk);         // r1 -> r3, r4
  s.OnNext(2, "r1", kChunk);
  s.OnProgress(3, "r1", 4 * kChunk, false);
  s.OnProgress(3, "r3", 2 * kChunk, false);
  s.OnProgress(3, "r4", 3 * kChunk, false);
  s.OnProgress(3, "r2", 5 * kChunk, false);
  // r1's source r0 fails. r3 and r4 are below r1; r2 (5 chunks, free slots)
  // is ahead and not downstream.
  auto o1 = s.OnSourceFailed(4, "r1", "r0", 4 * kChunk);
  ASSERT_TRUE(o1.ok());
  EXPECT_EQ(o1->source, "r2");
  EXPECT_TRUE(s.Find("r0")->suspect);
  // r4 loses r1: r0 is suspect, r1 the failed source; r2 has a second slot.
  s.OnProgress(4, "r2", 6 * kChunk, false);
  auto o2 = s.OnSourceFailed(5, "r4", "r1", 3 * kChunk);
  ASSERT_TRUE(o2.ok());
  EXPECT_EQ(o2->source, "r2");
  // r3 loses r1: r2 is full; its former sibling r4 is ahead.
  auto o3 = s.OnSourceFailed(5, "r3", "r1", 2 * kChunk);
  ASSERT_TRUE(o3.ok());
  EXPECT_EQ(o3->source, "r4");
  // A stale report (r3 has moved on) returns the current placement.
  auto o4 = s.OnSourceFailed(6, "r3", "r1", 2 * kChunk);
  EXPECT_EQ(*o4, *o3);
}

TEST(Scheduler, SourceFailedPrefersCompleteRelaysThenAFreeCcm) {
  Scheduler s = Make(5);
  s.Start(0);
  s.OnNext(1, "r0", kChunk);  // r0 -> r1
  s.OnNext(2, "r1", kChunk);  // r1 -> r2
  s.OnProgress(3, "r0", kSize, true);  // the CCM is free again: it takes r3
  s.OnProgress(3, "r3", kChunk, false);
  s.OnNext(4, "r3", kChunk);  // r3 -> r4
  s.OnProgress(5, "r1", kSize, true);  // r0 free; r1 holds r2
  s.OnProgress(5, "r4", 9 * kChunk, false);
  // r2 loses r1: r0 is complete with a free slot: it wins over r4 (9 chunks).
  EXPECT_EQ(s.OnSourceFailed(6, "r2", "r1", kChunk)->source, "r0");
  // r3 completes (the CCM is free); r2 loses r0: r1 is suspect, r3 is full,
  // r4 is partial: the free CCM wins.
  s.OnProgress(7, "r3", kSize, true);
  EXPECT_EQ(s.OnSourceFailed(8, "r2", "r0", kChunk)->source, "");
  EXPECT_FALSE(s.Find("r2")->over_limit);
}

TEST(Scheduler, StoreAndForwardNeverRescuesToAPartialRelay) {
  SchedulerOptions o;
  o.pipeline = false;
  Scheduler s = Make(5, o);
  s.Start(0);
  s.OnProgress(1, "r0", kSize, true);          // CCM -> r1
  s.OnNext(2, "r0", kSize);                    // r0 -> r2
  s.OnProgress(3, "r2", 9 * kChunk, false);
  // r1 loses the CCM (a broken link): r0 is full, r2 is partial: CCM.
  EXPECT_EQ(s.OnSourceFailed(4, "r1", "", 0)->source, "");
}

TEST(Scheduler, RelayFailedReparentsItsChildren) {
  Scheduler s = Make(4);
  s.Start(0);
  s.OnNext(1, "r0", kChunk);  // r0 -> r1
  s.OnNext(2, "r1", kChunk);  // r1 -> r2
  s.OnProgress(3, "r2", kChunk, false);
  auto orders = s.OnRelayFailed(4, "r1");
  EXPECT_EQ(s.Find("r1")->phase, RelayPhase::kFailed);
  EXPECT_EQ(s.Find("r1")->failure, "dead");
  EXPECT_EQ(s.Find("r0")->children, 0);
  // r0 holds 1 chunk, r2 holds 1 chunk: not ahead; the CCM (busy) rescues r2.
  EXPECT_EQ(orders, (std::vector<Order>{{"r2", "", 2}}));
  EXPECT_TRUE(s.Find("r2")->over_limit);
  EXPECT_EQ(s.ccm_children(), 2);
  EXPECT_TRUE(s.OnRelayFailed(5, "r1").empty());  // once only
  EXPECT_TRUE(IsNone(s.OnNext(6, "r1", kSize)));   // a failed relay serves nobody
}

TEST(Scheduler, StalledRelayFailsAndAStartThatNeverCameCountsAsANotifyFailure) {
  SchedulerOptions o;
  o.stall_timeout = 10 * kSeconds;
  Scheduler s = Make(4, o);
  s.Start(0);
  s.OnNext(1, "r0", kChunk);  // r0 -> r1
  EXPECT_EQ(s.NextWake(), 1 + 10 * kSeconds);  // r0 advanced at 1, r1 placed at 1
  s.OnProgress(2 * kSeconds, "r0", 3 * kChunk, false);
  s.OnProgress(2 * kSeconds, "r1", kChunk, false);
  // r1 caught up with r0: no stall while r0 does not advance.
  s.OnProgress(3 * kSeconds, "r1", 3 * kChunk, false);
  EXPECT_TRUE(s.OnTimer(12 * kSeconds - 1).empty());
  // r0 itself stalls under the CCM; r1 goes to the CCM's freed slot.
  EXPECT_EQ(s.OnTimer(12 * kSeconds), (std::vector<Order>{{"r1", "", 2}}));
  EXPECT_EQ(s.Find("r0")->phase, RelayPhase::kFailed);
  EXPECT_EQ(s.Find("r0")->failure, "stalled");
  // A relay that never advanced since its placement: its order was probably
  // lost; it backs off and the CCM's slot goes to the next relay.
  Scheduler t = Make(4, o);
  t.Start(0);
  EXPECT_EQ(t.OnTimer(10 * kSeconds), (std::vector<Order>{{"r1", "", 1}}));
  EXPECT_EQ(t.Find("r0")->notify_failures, 1);
  EXPECT_EQ(t.Find("r0")->phase, RelayPhase::kWaiting);
}

TEST(Scheduler, CaughtUpChildRestartsItsStallClockWhenTheSourceAdvances) {
  SchedulerOptions o;
  o.stall_timeout = 10 * kSeconds;
  Scheduler s = Make(4, o);
  s.Start(0);
  s.OnNext(1, "r0", kChunk);  // r0 -> r1
  s.OnProgress(1, "r1", kChunk, false);
  // r0 crawls: one chunk every 9 s; r1 follows each time at once.
  for (int k = 2; k <= 8; ++k) {
    s.OnProgress(9 * kSeconds * (k - 1), "r0", k * kChunk, false);
    s.OnProgress(9 * kSeconds * (k - 1) + 1, "r1", k * kChunk, false);
    EXPECT_TRUE(s.OnTimer(9 * kSeconds * (k - 1) + 2).empty());
  }
  EXPECT_EQ(s.Find("r1")->phase, RelayPhase::kFetching);
  // r0 completes and r1 does not follow: r1 stalls 10 s later.
  s.OnProgress(100 * kSeconds, "r0", kSize, true);
  EXPECT_EQ(s.NextWake(), 100 * kSeconds + 10 * kSeconds);
  s.OnTimer(110 * kSeconds);
  EXPECT_EQ(s.Find("r1")->failure, "stalled");
}

TEST(Scheduler, ReplaceRelayPlacesTheNewLeaderAndReparentsTheOldOnesChildren) {
  Scheduler s = Make(4);
  s.Start(0);
  s.OnNext(1, "r0", kChunk);  // r0 -> r1
  s.OnNext(2, "r1", kChunk);  // r1 -> r2
  s.OnProgress(3, "r0", 5 * kChunk, false);
  s.OnProgress(3, "r1", 3 * kChunk, false);
  auto orders = s.ReplaceRelay(4, "r1", "r1b");
  ASSERT_TRUE(orders.ok());
  // r2 (1 chunk) goes to r0 (5 chunks, its slot freed by r1); r1b finds no
  // free holder: the CCM rescues it.
  EXPECT_EQ(*orders, (std::vector<Order>{{"r2", "r0", 2}, {"r1b", "", 1}}));
  EXPECT_EQ(s.Find("r1")->failure, "replaced by r1b");
  EXPECT_EQ(s.relays()[1]->name, "r1b");
  EXPECT_EQ(s.all().size(), 5u);
  EXPECT_EQ(s.ReplaceRelay(5, "r1", "r1c").status().code(), Code::kUsage);  // already replaced
  EXPECT_EQ(s.ReplaceRelay(5, "zz", "r1c").status().code(), Code::kNotFound);
  EXPECT_EQ(s.ReplaceRelay(5, "r2", "r0").status().code(), Code::kUsage);  // a live relay
  // The replaced name may come back as another replacement.
  EXPECT_TRUE(s.ReplaceRelay(6, "r1b", "r1").ok());
  EXPECT_EQ(s.Find("r1")->phase, RelayPhase::kFetching);
}

TEST(Scheduler, ReplacingAWaitingRelayLeavesTheNewOneWaiting) {
  Scheduler s = Make(5);
  s.Start(0);
  auto orders = s.ReplaceRelay(1, "r3", "r3b");
  ASSERT_TRUE(orders.ok());
  EXPECT_TRUE(orders->empty());
  EXPECT_EQ(s.Find("r3b")->phase, RelayPhase::kWaiting);
  s.OnNext(2, "r0", kChunk);  // r1
  s.OnNext(3, "r1", kChunk);  // r2
  EXPECT_EQ(NextOf(s.OnNext(4, "r2", kChunk)), "r3b");
}

TEST(Scheduler, DoneWhenEveryRelayIsCompleteOrFailed) {
  Scheduler s = Make(2);
  s.Start(0);
  EXPECT_FALSE(s.Done());
  s.OnProgress(1, "r0", kSize, true);
  s.OnRelayFailed(1, "r1");
  EXPECT_TRUE(s.Done());
  EXPECT_EQ(s.NextWake(), proto::kNever);
}

TEST(Scheduler, ProgressNeverGoesBackwardsAndIsClampedToTheSize) {
  Scheduler s = Make(4);
  s.Start(0);
  s.OnProgress(1, "r0", 5 * kChunk, false);
  s.OnProgress(2, "r0", 2 * kChunk, false);
  EXPECT_EQ(s.Find("r0")->verified, 5 * kChunk);
  s.OnProgress(3, "r0", 10 * kSize, false);
  EXPECT_EQ(s.Find("r0")->verified, kSize);
  EXPECT_EQ(s.Find("r0")->phase, RelayPhase::kComplete);
}

}  // namespace
}  // namespace cm::push
