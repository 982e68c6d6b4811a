// BeginJob's conflict check: refuse, queue and wait, and jobs whose
// controller died.
#include <sys/wait.h>
#include <unistd.h>

#include "pushdb/controller.h"
#include "pushdb/state_db.h"
#include "pushdb/wait.h"
#include "util/exit_codes.h"
#include "pushdb_fixture.h"

namespace cm::pushdb {
namespace {

using std::chrono::milliseconds;
using test::PushDbTest;
using test::Spec;

// A pid that certainly names no process: a child that has exited and been reaped.
int64_t DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

TEST_F(PushDbTest, SecondJobOnSameServerIsRefusedNamingTheFirst) {
  auto db = OpenDb();
  auto first = db->BeginJob(Spec("j-1", {"ams/ams-1", "ams/ams-2", "fra/fra-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(first.ok());
  auto second = db->BeginJob(Spec("j-2", {"ams/ams-2", "fra/fra-1"}), BeginMode::kRefuse);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
  EXPECT_EQ(ExitCodeFor(second.status()), kExitBusy);
  EXPECT_EQ(second.status().message(), "job " + std::to_string(first->id) + " (publish j-1, pid " +
                                           std::to_string(getpid()) + ") is running on ams/ams-2 and 1 more server");
  // Nothing was recorded for the refused job.
  auto h = db->History(0);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size(), 1u);
}

TEST_F(PushDbTest, DisjointJobsRunSideBySide) {
  auto db = OpenDb();
  ASSERT_TRUE(db->BeginJob(Spec("j-1", {"ams/ams-1"}), BeginMode::kRefuse).ok());
  auto b = db->BeginJob(Spec("j-2", {"ams/ams-2", "fra/fra-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->state, JobState::kRunning);
}

TEST_F(PushDbTest, ConflictIsPerSiteAndServerPair) {
  auto db = OpenDb();
  ASSERT_TRUE(db->BeginJob(Spec("j-1", {"ams/web-1"}), BeginMode::kRefuse).ok());
  EXPECT_TRUE(db->BeginJob(Spec("j-2", {"fra/web-1"}), BeginMode::kRefuse).ok());
}

TEST_F(PushDbTest, FinishedJobNoLongerBlocks) {
  auto db = OpenDb();
  auto a = db->BeginJob(Spec("j-1", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(db->FinishJob(a->id, JobState::kFailed, "").ok());
  EXPECT_TRUE(db->BeginJob(Spec("j-2", {"ams/ams-1"}), BeginMode::kRefuse).ok());
}

TEST_F(PushDbTest, WaitModeQueuesThenStartsWhenTheFirstFinishes) {
  auto db = OpenDb();
  auto a = db->BeginJob(Spec("j-1", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(a.ok());
  auto b = db->BeginJob(Spec("j-2", {"ams/ams-1", "ams/ams-2"}), BeginMode::kWait);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->state, JobState::kQueued);
  JobHandle h = *b;
  Status busy = db->TryBegin(&h);
  EXPECT_EQ(busy.code(), Code::kBusy);
  EXPECT_EQ(h.state, JobState::kQueued);
  // A queued job takes no reports.
  EXPECT_EQ(db->UpdateServer(h.id, "ams-2", ServerState::kStaged, 1).code(), Code::kFailure);

  Advance(5000);
  ASSERT_TRUE(db->FinishJob(a->id, JobState::kDone, "").ok());
  ASSERT_TRUE(db->TryBegin(&h).ok());
  EXPECT_EQ(h.state, JobState::kRunning);
  auto v = db->JobStatus(h.id);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->job.state, JobState::kRunning);
  EXPECT_EQ(v->job.queued_ms, 1714564800000);
  EXPECT_EQ(v->job.started_ms, 1714564805000);
  EXPECT_TRUE(db->TryBegin(&h).ok());  // already running: still ok
}

TEST_F(PushDbTest, QueuedJobBlocksNewcomersSoTheyCannotOvertakeIt) {
  auto db = OpenDb();
  auto a = db->BeginJob(Spec("j-1", {"ams/ams-1"}), BeginMode::kRefuse);
  auto b = db->BeginJob(Spec("j-2", {"ams/ams-1"}), BeginMode::kWait);
  auto c = db->BeginJob(Spec("j-3", {"ams/ams-1"}), BeginMode::kWait);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_EQ(c->state, JobState::kQueued);
  ASSERT_TRUE(db->FinishJob(a->id, JobState::kDone, "").ok());
  // j-3 polls first but j-2 was queued before it.
  JobHandle hc = *c, hb = *b;
  Status st = db->TryBegin(&hc);
  EXPECT_EQ(st.code(), Code::kBusy);
  EXPECT_NE(st.message().find("(publish j-2,"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("is queued on ams/ams-1"), std::string::npos) << st.message();
  // A refusing newcomer does not jump the queue either.
  EXPECT_EQ(db->BeginJob(Spec("j-4", {"ams/ams-1"}), BeginMode::kRefuse).status().code(), Code::kBusy);
  ASSERT_TRUE(db->TryBegin(&hb).ok());
  EXPECT_EQ(db->TryBegin(&hc).code(), Code::kBusy);
  ASSERT_TRUE(db->FinishJob(hb.id, JobState::kDone, "").ok());
  EXPECT_TRUE(db->TryBegin(&hc).ok());
}

TEST_F(PushDbTest, WaitToBeginPollsUntilFreeWithoutRealTime) {
  auto db = OpenDb();
  auto other = OpenDb();  // the first job's controller, on its own connection
  auto a = other->BeginJob(Spec("j-1", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(a.ok());
  int sleeps = 0, blocked = 0;
  WaitOptions w;
  w.poll = milliseconds(250);
  w.budget = milliseconds(10'000);
  w.on_blocked = [&](const Status& st) {
    EXPECT_EQ(st.code(), Code::kBusy);
    ++blocked;
  };
  w.sleep = [&](milliseconds d) {
    EXPECT_EQ(d, milliseconds(250));
    Advance(d.count());
    if (++sleeps == 3) {
      ASSERT_TRUE(other->FinishJob(a->id, JobState::kDone, "").ok());
    }
  };
  auto b = BeginJobWaiting(db.get(), Spec("j-2", {"ams/ams-1"}), w);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->state, JobState::kRunning);
  EXPECT_EQ(sleeps, 3);
  EXPECT_EQ(blocked, 3);
  auto v = db->JobStatus(b->id);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->job.started_ms - v->job.queued_ms, 750);
}

TEST_F(PushDbTest, WaitToBeginGivesUpAfterItsBudgetAndAbortsTheQueuedJob) {
  auto db = OpenDb();
  auto a = db->BeginJob(Spec("j-1", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(a.ok());
  milliseconds slept{0};
  WaitOptions w;
  w.poll = milliseconds(400);
  w.budget = milliseconds(1000);
  w.sleep = [&](milliseconds d) { slept += d; };
  auto b = BeginJobWaiting(db.get(), Spec("j-2", {"ams/ams-1"}), w);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kBusy);
  EXPECT_NE(b.status().message().find("gave up waiting after 1000 ms: job 1 (publish j-1"), std::string::npos)
      << b.status().message();
  EXPECT_EQ(slept, milliseconds(1000));  // 400 + 400 + 200: never past the budget
  auto latest = db->LatestJob();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->name, "j-2");
  EXPECT_EQ(latest->state, JobState::kAborted);
  EXPECT_EQ(latest->summary.rfind("gave up waiting: job 1", 0), 0u) << latest->summary;
}

TEST_F(PushDbTest, WaitWithFreeServersDoesNotSleep) {
  auto db = OpenDb();
  WaitOptions w;
  w.sleep = [](milliseconds) { ADD_FAILURE() << "slept"; };
  auto b = BeginJobWaiting(db.get(), Spec("j", {"ams/ams-1"}), w);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->state, JobState::kRunning);
}

TEST_F(PushDbTest, JobOfDeadControllerIsAbortedAndDoesNotBlock) {
  auto db = OpenDb();
  JobSpec dead = Spec("j-dead", {"ams/ams-1"});
  dead.controller = Controller{DeadPid(), 0};
  auto a = db->BeginJob(dead, BeginMode::kRefuse);
  ASSERT_TRUE(a.ok());
  Advance(60'000);
  auto b = db->BeginJob(Spec("j-2", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto v = db->JobStatus(a->id);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->job.state, JobState::kAborted);
  EXPECT_EQ(v->job.finished_ms, 1714564860000);
  EXPECT_EQ(v->job.summary, "controller pid " + std::to_string(dead.controller->pid) + " is gone");
}

TEST_F(PushDbTest, ReusedPidIsRecognisedByItsStartTime) {
  auto db = OpenDb();
  JobSpec spec = Spec("j-old", {"ams/ams-1"});
  Controller self = SelfController();
  if (self.start_ticks == 0) GTEST_SKIP() << "no /proc start times here";
  spec.controller = Controller{self.pid, self.start_ticks + 1};  // same pid, another process
  ASSERT_TRUE(db->BeginJob(spec, BeginMode::kRefuse).ok());
  EXPECT_TRUE(db->BeginJob(Spec("j-new", {"ams/ams-1"}), BeginMode::kRefuse).ok());
}

TEST_F(PushDbTest, LiveControllerKeepsBlocking) {
  auto db = OpenDb();
  JobSpec spec = Spec("j-1", {"ams/ams-1"});
  spec.controller = SelfController();
  ASSERT_TRUE(db->BeginJob(spec, BeginMode::kRefuse).ok());
  EXPECT_EQ(db->BeginJob(Spec("j-2", {"ams/ams-1"}), BeginMode::kRefuse).status().code(), Code::kBusy);
}

TEST_F(PushDbTest, QueuedJobOfDeadWaiterIsAbortedToo) {
  StateDbOptions o = Options();
  o.controller_alive = [](const Controller& c) { return c.pid != 4242; };
  auto db = OpenDb(o);
  ASSERT_TRUE(db->BeginJob(Spec("j-1", {"ams/ams-1"}), BeginMode::kRefuse).ok());
  JobSpec waiter = Spec("j-2", {"ams/ams-1"});
  waiter.controller = Controller{4242, 0};
  auto b = db->BeginJob(waiter, BeginMode::kWait);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->state, JobState::kQueued);
  auto reaped = db->ReapDeadControllers();
  ASSERT_TRUE(reaped.ok());
  EXPECT_EQ(*reaped, 1);
  JobHandle h = *b;
  Status st = db->TryBegin(&h);
  EXPECT_EQ(st.code(), Code::kFailure);
  EXPECT_EQ(h.state, JobState::kAborted);
}

TEST(ControllerTest, AliveForSelfDeadForReapedChild) {
  EXPECT_TRUE(ControllerAlive(SelfController()));
  EXPECT_FALSE(ControllerAlive(Controller{DeadPid(), 0}));
  EXPECT_FALSE(ControllerAlive(Controller{0, 0}));
  EXPECT_FALSE(ControllerAlive(Controller{-5, 0}));
}

TEST(ControllerTest, StartTicksOfSelfAreStable) {
  uint64_t a = ProcessStartTicks(getpid());
  EXPECT_EQ(a, ProcessStartTicks(getpid()));
  EXPECT_EQ(ProcessStartTicks(DeadPid()), 0u);
}

}  // namespace
}  // namespace cm::pushdb
