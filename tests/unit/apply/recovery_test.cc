#include "apply/recovery.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "apply/dir_meta.h"
#include "apply/journal.h"
#include "apply/layout.h"
#include "apply_fixture.h"
#include "support/test_util.h"

namespace cm::apply {
namespace {

using namespace cm::apply::testing;
using test::ReadFile;
using test::TempDir;

// A root with j1 live ("v" = "1") and j2 staged ("v" = "2"); the test then
// performs the first steps of the commit by hand, as if killed after them.
class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = OpenRoot(d_.path());
    ASSERT_TRUE(StageAndCommit(root.get(), "j1", 1, {Create("v", "1"), Mkdir("ro", 0555)}).ok());
    ASSERT_TRUE(StagePart(root.get(), "j2", 2, {Create("v", "2"), Create("ro/n", "n")}).ok());
    j_.op = "commit";
    j_.from = "s000000000001-j1";
    j_.to = "s000000000002-j2";
    j_.stage = root->state().staged_dir;
    j_.applied = AppliedId{3, "c0ffee", "j2"};
    state_before_ = root->state();
  }
  Layout L() { return Layout(d_.path()); }
  void WriteJ() { ASSERT_TRUE(WriteJournal(L(), j_).ok()); }
  void MoveStage() {
    ASSERT_EQ(::rename(L().StageDir(j_.stage).c_str(), L().Release(j_.to).c_str()), 0);
  }
  void SwapLink() {
    ASSERT_EQ(::symlink(("releases/" + j_.to).c_str(), L().current_tmp.c_str()), 0);
    ASSERT_EQ(::rename(L().current_tmp.c_str(), L().current.c_str()), 0);
  }
  void SaveNewState() {
    State s = state_before_;
    s.current = j_.to;
    s.previous = j_.from;
    s.ClearStage();
    s.Record(*j_.applied, SerialSpace::kSwitch);
    ASSERT_TRUE(SaveState(L().state, s).ok());
  }
  // Reopening runs recovery; afterwards the commit must be complete.
  void ExpectRecoveredToNew() {
    auto root = OpenRoot(d_.path());
    ASSERT_TRUE(root);
    EXPECT_EQ(ReadFile(d_ / "current/v"), "2");
    EXPECT_EQ(ReadFile(d_ / "current/ro/n"), "n");
    EXPECT_EQ(ModeOf(d_ / "current/ro"), 0555u);
    EXPECT_EQ(root->state().current, j_.to);
    EXPECT_EQ(root->state().previous, j_.from);
    EXPECT_FALSE(root->state().HasStage());
    EXPECT_EQ(root->state().last_switch_serial, 3u);
    EXPECT_FALSE(Exists(L().journal));
    EXPECT_FALSE(Exists(L().current_tmp));
    std::string out;
    test::Run("ls -A " + L().stage, &out);
    EXPECT_EQ(out, "");
  }
  TempDir d_;
  Journal j_;
  State state_before_;
};

TEST_F(RecoveryTest, JournalWrittenStageNotMoved) {
  WriteJ();
  ExpectRecoveredToNew();
}

TEST_F(RecoveryTest, StageMovedCurrentNotSwitched) {
  WriteJ();
  MoveStage();
  EXPECT_EQ(ReadFile(d_ / "current/v"), "1");
  ExpectRecoveredToNew();
}

TEST_F(RecoveryTest, TempLinkCreatedNotRenamed) {
  WriteJ();
  MoveStage();
  ASSERT_EQ(::symlink(("releases/" + j_.to).c_str(), L().current_tmp.c_str()), 0);
  ExpectRecoveredToNew();
}

TEST_F(RecoveryTest, CurrentSwitchedStateNotWritten) {
  WriteJ();
  MoveStage();
  SwapLink();
  ExpectRecoveredToNew();
}

TEST_F(RecoveryTest, StateWrittenJournalNotRemoved) {
  WriteJ();
  MoveStage();
  SwapLink();
  SaveNewState();
  ExpectRecoveredToNew();
}

TEST_F(RecoveryTest, JournalForAReleaseThatNeverExistedIsDropped) {
  j_.stage = "nonexistent.p1";
  j_.to = "s000000000009-x";
  WriteJ();
  auto root = OpenRoot(d_.path());
  ASSERT_TRUE(root);
  EXPECT_FALSE(Exists(L().journal));
  EXPECT_EQ(ReadFile(d_ / "current/v"), "1");
  EXPECT_EQ(root->state(), state_before_);
}

TEST_F(RecoveryTest, InterruptedRollbackIsFinished) {
  {
    auto root = OpenRoot(d_.path());
    ASSERT_TRUE(Commit(root.get(), "j2", std::nullopt).ok());
  }
  Journal rb{"rollback", "s000000000002-j2", "s000000000001-j1", "", std::nullopt};
  ASSERT_TRUE(WriteJournal(L(), rb).ok());
  auto root = OpenRoot(d_.path());
  EXPECT_EQ(ReadFile(d_ / "current/v"), "1");
  EXPECT_EQ(root->state().current, "s000000000001-j1");
  EXPECT_EQ(root->state().previous, "s000000000002-j2");
  EXPECT_FALSE(Exists(L().journal));
}

TEST_F(RecoveryTest, HalfBuiltStagesAndTempFilesAreCleaned) {
  test::WriteFile(L().StageDir("j3.p1") + "/half", "x");
  test::WriteFile(L().DirMetaPath("j3.p1"), "M . 755 0 0 0 0\n");
  test::MakeDirs(L().StageDir(".mk-0123456789abcdef"));  // made, not yet renamed to its name
  test::WriteFile(L().meta + "/.state.tmp-123-0", "junk");
  test::WriteFile(L().meta + "/spool-999", "junk");
  test::WriteFile(L().trash + "/s000000000000-old/f", "x");
  ASSERT_EQ(::symlink("releases/nothing", L().current_tmp.c_str()), 0);
  auto root = OpenRoot(d_.path());
  EXPECT_FALSE(Exists(L().StageDir("j3.p1")));
  EXPECT_FALSE(Exists(L().DirMetaPath("j3.p1")));
  EXPECT_FALSE(Exists(L().StageDir(".mk-0123456789abcdef")));
  EXPECT_FALSE(Exists(L().meta + "/.state.tmp-123-0"));
  EXPECT_FALSE(Exists(L().meta + "/spool-999"));
  EXPECT_FALSE(Exists(L().trash + "/s000000000000-old"));
  EXPECT_FALSE(Exists(L().current_tmp));
  // The staged tree the state names survives and still commits.
  EXPECT_TRUE(root->state().HasStage());
  ASSERT_TRUE(Commit(root.get(), "j2", std::nullopt).ok());
  EXPECT_EQ(ReadFile(d_ / "current/v"), "2");
}

TEST_F(RecoveryTest, StateNamingAMissingStageDropsIt) {
  test::RemoveTree(L().StageDir(j_.stage));
  auto root = OpenRoot(d_.path());
  EXPECT_FALSE(root->state().HasStage());
  EXPECT_EQ(Commit(root.get(), "j2", std::nullopt).status().code(), Code::kNotFound);
  EXPECT_EQ(ReadFile(d_ / "current/v"), "1");
}

}  // namespace
}  // namespace cm::apply
