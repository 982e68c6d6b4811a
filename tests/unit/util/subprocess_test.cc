#include "util/subprocess.h"

#include <gtest/gtest.h>

namespace cm {
namespace {

TEST(Subprocess, CapturesOutputAndExitCode) {
  auto r = RunProcess({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->timed_out);
}

TEST(Subprocess, ArgumentsAreNotShellExpanded) {
  auto r = RunProcess({"printf", "%s|", "a b", "$HOME", "*"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "a b|$HOME|*|");
}

TEST(Subprocess, TimeoutStopsTheChildAndItsChildren) {
  ProcessOptions o;
  o.timeout = std::chrono::milliseconds(200);
  auto t0 = std::chrono::steady_clock::now();
  auto r = RunProcess({"sh", "-c", "sleep 30 & sleep 30; echo never"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_NE(r->exit_code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(Subprocess, MissingProgramIsAnError) {
  auto r = RunProcess({"/nonexistent/cm-nothing"});
  EXPECT_FALSE(r.ok());
}

TEST(Subprocess, LastLineSkipsTrailingBlankLines) {
  EXPECT_EQ(LastLine("a\nb\n\n"), "b");
  EXPECT_EQ(LastLine("only"), "only");
  EXPECT_EQ(LastLine(""), "");
}

}  // namespace
}  // namespace cm
