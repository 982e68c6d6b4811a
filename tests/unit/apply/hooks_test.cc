#include "apply/hooks.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>

namespace cm::apply {
namespace {

using std::chrono::milliseconds;

SwitchInfo Info() { return SwitchInfo{"commit", "/srv/www", "s000000000001-a", "s000000000002-b", "/t", "b", 2}; }

TEST(HookTest, ExitCodeAndOutputOfBothStreams) {
  HookRun r = RunHook("pre_commit", {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, Info(), milliseconds(5000));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.output, "out\nerr\n");
  EXPECT_EQ(r.LastLine(), "err");
  EXPECT_EQ(r.Outcome(milliseconds(5000)), "exit 3");
  EXPECT_EQ(r.name, "pre_commit");
}

TEST(HookTest, OutputKeepsOnlyTheLastBytes) {
  HookRun r = RunHook("post_commit", {"/bin/sh", "-c", "seq 1 100000; echo the-end"}, Info(), milliseconds(20000));
  EXPECT_TRUE(r.ok()) << r.Outcome(milliseconds(20000));
  EXPECT_EQ(r.output.size(), kHookOutputMax);
  EXPECT_EQ(r.LastLine(), "the-end");
}

TEST(HookTest, AHangingHookAndItsChildrenAreKilledAtTheTimeout) {
  auto t0 = std::chrono::steady_clock::now();
  HookRun r = RunHook("pre_commit", {"/bin/sh", "-c", "echo started; sleep 30 & wait"}, Info(), milliseconds(300));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.ok());
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ(r.LastLine(), "started");
  EXPECT_EQ(r.Outcome(milliseconds(300)), "killed after the 300 ms timeout");
}

TEST(HookTest, TheEnvironmentNamesTheSwitchAndReplacesInheritedValues) {
  ::setenv("CM_JOB", "inherited", 1);
  HookRun r = RunHook("post_commit", {"/bin/sh", "-c", "echo $CM_HOOK $CM_ACTION $CM_ROOT $CM_RELEASE_FROM "
                                                       "$CM_RELEASE_TO $CM_TREE $CM_SERIAL $CM_JOB; wc -c"},
                      Info(), milliseconds(5000));
  ::unsetenv("CM_JOB");
  ASSERT_TRUE(r.ok()) << r.output;
  EXPECT_EQ(r.output, "post_commit commit /srv/www s000000000001-a s000000000002-b /t 2 b\n0\n");  // stdin empty
}

TEST(HookTest, ArgvIsNotRunByAShell) {
  HookRun r = RunHook("pre_commit", {"/bin/echo", "$(id); `id` | x"}, Info(), milliseconds(5000));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.output, "$(id); `id` | x\n");
}

TEST(HookTest, AProgramThatCannotStartIsAFailure) {
  HookRun r = RunHook("pre_commit", {"/nonexistent/hook"}, Info(), milliseconds(5000));
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.start_error.find("No such file"), std::string::npos) << r.start_error;
  EXPECT_NE(r.Outcome(milliseconds(1)).find("cannot run"), std::string::npos);
  EXPECT_FALSE(RunHook("pre_commit", {}, Info(), milliseconds(5000)).ok());
}

TEST(HookTest, AKilledHookReportsItsSignal) {
  HookRun r = RunHook("pre_commit", {"/bin/sh", "-c", "kill -9 $$"}, Info(), milliseconds(5000));
  EXPECT_EQ(r.exit_code, 128 + 9);
  EXPECT_EQ(r.Outcome(milliseconds(5000)), "killed by signal 9");
}

}  // namespace
}  // namespace cm::apply
