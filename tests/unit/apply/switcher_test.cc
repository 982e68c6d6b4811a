#include "apply/switcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "apply/layout.h"
#include "apply_fixture.h"
#include "support/test_util.h"

namespace cm::apply {
namespace {

using namespace cm::apply::testing;
using test::ReadFile;
using test::TempDir;

class SwitcherTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = OpenRoot(d_.path()); }
  std::string Cur(const std::string& rel) { return d_ / ("current/" + rel); }
  Layout L() { return Layout(d_.path()); }
  TempDir d_;
  std::unique_ptr<ContentRoot> root_;
};

TEST_F(SwitcherTest, FirstCommitCreatesCurrent) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Mkdir("d", 0555), Create("d/f", "one")}).ok());
  EXPECT_EQ(ReadFile(Cur("d/f")), "one");
  EXPECT_EQ(ModeOf(Cur("d")), 0555u);
  EXPECT_EQ(*ReadCurrent(L()), "s000000000001-j1");
  EXPECT_EQ(root_->state().current, "s000000000001-j1");
  EXPECT_EQ(root_->state().previous, "");
  EXPECT_FALSE(root_->state().HasStage());
  EXPECT_FALSE(Exists(L().journal));
  EXPECT_EQ(root_->state().last_stage_serial, 1u);
}

TEST_F(SwitcherTest, DeltaStagesShareUnchangedInodesWithLive) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("same", "s"), Create("chg", "old")}).ok());
  ASSERT_TRUE(StagePart(root_.get(), "j2", 2, {Create("chg", "new")}).ok());
  const std::string stage = L().StageDir(root_->state().staged_dir);
  EXPECT_EQ(Ino(stage + "/same"), Ino(Cur("same")));
  EXPECT_NE(Ino(stage + "/chg"), Ino(Cur("chg")));
  EXPECT_EQ(ReadFile(Cur("chg")), "old");
  ASSERT_TRUE(Commit(root_.get(), "j2", std::nullopt).ok());
  EXPECT_EQ(ReadFile(Cur("chg")), "new");
  EXPECT_EQ(ReadFile(d_ / "releases/s000000000001-j1/chg"), "old");
}

TEST_F(SwitcherTest, WholeTreeTypesStartEmpty) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("a", "a")}).ok());
  ASSERT_TRUE(StageAndCommit(root_.get(), "j2", 2, {Create("b", "b")}, pack::Type::kReplicate).ok());
  EXPECT_FALSE(Exists(Cur("a")));
  EXPECT_EQ(ReadFile(Cur("b")), "b");
}

TEST_F(SwitcherTest, RollbackSwapsCurrentAndPrevious) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("v", "1")}).ok());
  ASSERT_TRUE(StageAndCommit(root_.get(), "j2", 2, {Create("v", "2")}).ok());
  EXPECT_EQ(ReadFile(Cur("v")), "2");
  auto r = Rollback(root_.get(), std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReadFile(Cur("v")), "1");
  EXPECT_EQ(root_->state().current, "s000000000001-j1");
  EXPECT_EQ(root_->state().previous, "s000000000002-j2");
  ASSERT_TRUE(Rollback(root_.get(), std::nullopt).ok());  // twice: back to the new one
  EXPECT_EQ(ReadFile(Cur("v")), "2");
}

TEST_F(SwitcherTest, RollbackWithoutPreviousIsNotFound) {
  EXPECT_EQ(Rollback(root_.get(), std::nullopt).status().code(), Code::kNotFound);
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("v", "1")}).ok());
  EXPECT_EQ(Rollback(root_.get(), std::nullopt).status().code(), Code::kNotFound);
}

TEST_F(SwitcherTest, CommitNeedsACompleteStage) {
  EXPECT_EQ(Commit(root_.get(), "nope", std::nullopt).status().code(), Code::kNotFound);
  ASSERT_TRUE(StagePart(root_.get(), "j1", 1, {Create("a", "a")}, pack::Type::kPublish, 1, false).ok());
  EXPECT_EQ(Commit(root_.get(), "j1", std::nullopt).status().code(), Code::kNotFound);
  ASSERT_TRUE(StagePart(root_.get(), "j1", 2, {Create("b", "b")}, pack::Type::kPublish, 2, true).ok());
  ASSERT_TRUE(Commit(root_.get(), "j1", std::nullopt).ok());
  EXPECT_EQ(ReadFile(Cur("a")), "a");
  EXPECT_EQ(ReadFile(Cur("b")), "b");
  EXPECT_EQ(*ReadCurrent(L()), "s000000000002-j1");  // named after the newest part
  auto again = Commit(root_.get(), "j1", std::nullopt);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already);
}

TEST_F(SwitcherTest, PartsMustFollowEachOther) {
  EXPECT_EQ(StagePart(root_.get(), "j1", 1, {}, pack::Type::kPublish, 2, false).code(), Code::kOrder);
  ASSERT_TRUE(StagePart(root_.get(), "j1", 1, {}, pack::Type::kPublish, 1, false).ok());
  EXPECT_EQ(StagePart(root_.get(), "j1", 2, {}, pack::Type::kPublish, 3, true).code(), Code::kOrder);
  // Only the staged tree of parts 1..1 remains, nothing half-built.
  std::string out;
  test::Run("ls " + L().stage, &out);
  EXPECT_EQ(out, "j1.p1\nj1.p1.dirmeta\n");
}

TEST_F(SwitcherTest, ANewJobReplacesAnAbandonedStage) {
  ASSERT_TRUE(StagePart(root_.get(), "j1", 1, {Create("a", "a")}, pack::Type::kPublish, 1, false).ok());
  ASSERT_TRUE(StagePart(root_.get(), "j2", 2, {Create("b", "b")}).ok());
  EXPECT_FALSE(Exists(L().StageDir("j1.p1")));
  ASSERT_TRUE(Commit(root_.get(), "j2", std::nullopt).ok());
  EXPECT_FALSE(Exists(Cur("a")));
}

TEST_F(SwitcherTest, FailedPartLeavesNoStageBehind) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("a", "a")}).ok());
  EXPECT_EQ(StagePart(root_.get(), "j2", 2, {Create("b", "b"), Create("../x", "x")}).code(), Code::kUnsafePath);
  EXPECT_FALSE(root_->state().HasStage());
  EXPECT_EQ(test::Manifest(L().stage), "");
  EXPECT_EQ(root_->state().last_stage_serial, 1u);
}

TEST_F(SwitcherTest, RetentionKeepsCurrentPreviousAndKeepMinusTwo) {
  for (uint64_t i = 1; i <= 5; ++i)
    ASSERT_TRUE(StageAndCommit(root_.get(), "j" + std::to_string(i), i, {Create("v", std::to_string(i))}).ok());
  EXPECT_EQ(test::Run("ls " + L().releases), 0);
  std::string out;
  test::Run("ls " + L().releases, &out);
  EXPECT_EQ(out, "s000000000004-j4\ns000000000005-j5\n");
  // After a rollback the rolled-back-from release is kept as previous.
  ASSERT_TRUE(Rollback(root_.get(), std::nullopt).ok());
  ASSERT_TRUE(StageAndCommit(root_.get(), "j6", 6, {Create("v", "6")}).ok());
  test::Run("ls " + L().releases, &out);
  EXPECT_EQ(out, "s000000000004-j4\ns000000000006-j6\n");
  EXPECT_EQ(ReadFile(Cur("v")), "6");
}

TEST(RetentionTest, KeepThreeKeepsOneOlder) {
  TempDir d;
  RootOptions o;
  o.keep = 3;
  auto root = OpenRoot(d.path(), o);
  for (uint64_t i = 1; i <= 4; ++i)
    ASSERT_TRUE(StageAndCommit(root.get(), "j" + std::to_string(i), i, {Create("v", std::to_string(i))}).ok());
  std::string out;
  test::Run("ls " + d / "releases", &out);
  EXPECT_EQ(out, "s000000000002-j2\ns000000000003-j3\ns000000000004-j4\n");
}

TEST_F(SwitcherTest, DirectoryMetadataIsFinalInTheRelease) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1,
                             {Mkdir("ro", 0555), Mkdir("ro/inner", 0500), Create("ro/inner/f", "x", 0444)})
                  .ok());
  EXPECT_EQ(ModeOf(Cur("ro")), 0555u);
  EXPECT_EQ(ModeOf(Cur("ro/inner")), 0500u);
  // A delta stage from it: writable while staged, live untouched.
  ASSERT_TRUE(StagePart(root_.get(), "j2", 2, {Create("ro/inner/g", "y")}).ok());
  EXPECT_EQ(ModeOf(Cur("ro")), 0555u);
  ASSERT_TRUE(Commit(root_.get(), "j2", std::nullopt).ok());
  EXPECT_EQ(ModeOf(Cur("ro")), 0555u);
  EXPECT_EQ(ModeOf(Cur("ro/inner")), 0500u);
  EXPECT_EQ(ReadFile(Cur("ro/inner/g")), "y");
}


TEST_F(SwitcherTest, AFailingPreCommitHookLeavesLiveAndStageAsTheyWere) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("v", "1")}).ok());
  ASSERT_TRUE(StagePart(root_.get(), "j2", 2, {Create("v", "2")}).ok());
  root_.reset();
  RootOptions ro;
  ro.hooks.pre_commit = {"/bin/sh", "-c", "echo no way; exit 7"};
  root_ = OpenRoot(d_.path(), ro);
  const State before = root_->state();
  std::vector<HookRun> hooks;
  auto r = Commit(root_.get(), "j2", std::nullopt, &hooks);
  EXPECT_EQ(r.status().code(), Code::kHookRefused);
  EXPECT_NE(r.status().message().find("exit 7: no way"), std::string::npos) << r.status().message();
  EXPECT_EQ(ReadFile(Cur("v")), "1");
  EXPECT_EQ(root_->state(), before);
  EXPECT_FALSE(Exists(L().journal));
  ASSERT_EQ(hooks.size(), 1u);
  EXPECT_EQ(hooks[0].exit_code, 7);
  // Without the hook the same stage commits.
  root_.reset();
  root_ = OpenRoot(d_.path());
  ASSERT_TRUE(Commit(root_.get(), "j2", std::nullopt).ok());
  EXPECT_EQ(ReadFile(Cur("v")), "2");
}

TEST_F(SwitcherTest, AFailingPostCommitHookKeepsTheSwitch) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("v", "1")}).ok());
  ASSERT_TRUE(StageAndCommit(root_.get(), "j2", 2, {Create("v", "2")}).ok());
  root_.reset();
  RootOptions ro;
  ro.hooks.post_commit = {"/bin/false"};
  root_ = OpenRoot(d_.path(), ro);
  auto r = Rollback(root_.get(), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->post_hook.code(), Code::kHookFailed);
  EXPECT_EQ(ReadFile(Cur("v")), "1");
  EXPECT_EQ(root_->state().current, "s000000000001-j1");
}

TEST_F(SwitcherTest, RollbackToANamedReleaseMakesTheOldCurrentPrevious) {
  root_.reset();
  RootOptions ro;
  ro.keep = 3;
  root_ = OpenRoot(d_.path(), ro);
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("v", "1")}).ok());
  ASSERT_TRUE(StageAndCommit(root_.get(), "j2", 2, {Create("v", "2")}).ok());
  ASSERT_TRUE(StageAndCommit(root_.get(), "j3", 3, {Create("v", "3")}).ok());
  auto r = Rollback(root_.get(), IdFor(4, "j1"), "s000000000001-j1");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(ReadFile(Cur("v")), "1");
  EXPECT_EQ(root_->state().current, "s000000000001-j1");
  EXPECT_EQ(root_->state().previous, "s000000000003-j3");
  EXPECT_EQ(root_->state().last_switch_serial, 4u);
  // To the live release: a no-op.
  auto again = Rollback(root_.get(), std::nullopt, "s000000000001-j1");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already);
  // One the server does not have: not found, naming what it has; nothing changes.
  const State before = root_->state();
  auto missing = Rollback(root_.get(), std::nullopt, "s000000000009-x");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("releases: s000000000003-j3, s000000000002-j2, s000000000001-j1"),
            std::string::npos)
      << missing.status().message();
  EXPECT_EQ(root_->state(), before);
  EXPECT_EQ(Rollback(root_.get(), std::nullopt, "../x").status().code(), Code::kNotFound);
}

TEST_F(SwitcherTest, CommittingTheNoopJobKeepsCurrent) {
  ASSERT_TRUE(StageAndCommit(root_.get(), "j1", 1, {Create("v", "1")}).ok());
  root_->state().noop_job = "empty";
  auto r = Commit(root_.get(), "empty", IdFor(3, "empty"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->noop);
  EXPECT_EQ(r->to, "s000000000001-j1");
  EXPECT_EQ(root_->state().last_switch_serial, 3u);
  auto plain = Commit(root_.get(), "", std::nullopt);  // `cm-apply commit` with nothing staged
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->noop);
  EXPECT_EQ(Commit(root_.get(), "other", std::nullopt).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace cm::apply
