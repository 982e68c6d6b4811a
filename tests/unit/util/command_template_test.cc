#include "util/command_template.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "support/test_util.h"
#include "util/subprocess.h"

namespace cm {
namespace {

using Words = std::vector<std::string>;

TEST(CommandTemplate, SplitsOnBlanksAndKeepsQuotedTextLiterally) {
  auto w = SplitCommand("cm-apply  --root '/srv/a b' \"x \\\"y\\\"\" a\\ b $HOME *");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (Words{"cm-apply", "--root", "/srv/a b", "x \"y\"", "a b", "$HOME", "*"}));
}

TEST(CommandTemplate, UnterminatedQuoteOrNothingIsAUsageError) {
  EXPECT_EQ(SplitCommand("echo 'a").status().code(), Code::kUsage);
  EXPECT_EQ(SplitCommand("echo \"a").status().code(), Code::kUsage);
  EXPECT_EQ(SplitCommand("  ").status().code(), Code::kUsage);
}

TEST(CommandTemplate, BracesBecomeTheValueInsideOneArgument) {
  auto w = SplitCommand("cp {} \"{}.bak\" --name=x{}y");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(SubstituteBraces(*w, "a b"), (Words{"cp", "a b", "a b.bak", "--name=xa by"}));
}

// The old --exec built a shell command: {} inside double quotes ran
// $(...) from a file name. Now no shell ever sees the name.
TEST(CommandTemplate, AFileNameWithCommandSubstitutionIsNeverRun) {
  test::TempDir d;
  const std::string marker = d.path() + "/x";
  const std::string name = d.path() + "/$(touch " + marker + ")'\"`touch " + marker + "`\".bin";
  for (const char* tmpl : {"printf %s {}", "printf %s \"{}\"", "printf %s '{}'"}) {
    auto w = SplitCommand(tmpl);
    ASSERT_TRUE(w.ok());
    auto r = RunProcess(SubstituteBraces(*w, name));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->out, name) << tmpl;
    EXPECT_NE(access(marker.c_str(), F_OK), 0) << tmpl << " ran the file name";
  }
}

TEST(Subprocess, StartProcessDoesNotWaitAndReapExitedCollects) {
  auto pid = StartProcess({"sh", "-c", "exit 0"});
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  std::vector<int> pids{*pid};
  for (int i = 0; i < 200 && !pids.empty(); ++i) {
    ReapExited(&pids);
    usleep(10000);
  }
  EXPECT_TRUE(pids.empty());
  EXPECT_FALSE(StartProcess({"/nonexistent/cm-nothing"}).ok());
}

}  // namespace
}  // namespace cm
