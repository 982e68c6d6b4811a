#include "util/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "support/test_util.h"

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

// Whether `pid` still runs (a zombie nobody reaped yet has stopped running).
bool Running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// Issue 12: "children (cm-mcast send, receivers) survive a relay killed
// with -9". A process blocked in RunProcess is killed with SIGKILL; its
// child dies with it.
TEST(Subprocess, TheChildDiesWhenItsParentIsKilledWithSigkill) {
  test::TempDir dir;
  const std::string pidfile = dir / "child.pid";
  pid_t parent = fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {  // the "relay": waits for its child
    auto r = RunProcess({"sh", "-c", "echo $$ > " + pidfile + ".tmp && mv " + pidfile + ".tmp " + pidfile +
                                         " && exec sleep 60"});
    _exit(r.ok() ? 0 : 1);
  }
  pid_t child = 0;
  for (int i = 0; i < 500 && child == 0; ++i) {
    std::ifstream in(pidfile);
    if (!(in >> child)) child = 0;
    if (child == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(child, 0) << "the child never started";
  ASSERT_TRUE(Running(child));
  kill(parent, SIGKILL);
  int status = 0;
  waitpid(parent, &status, 0);
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {
    gone = !Running(child);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!gone) kill(child, SIGKILL);
  EXPECT_TRUE(gone) << "pid " << child << " outlived its parent";
}

TEST(Subprocess, TheChildStartsWithAnEmptySignalMask) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);  // as the relay blocks TERM/INT/HUP for sigwait
  auto r = RunProcess({"sh", "-c", "grep SigBlk /proc/self/status"});
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->out.find("0000000000000000"), std::string::npos) << r->out;
}

TEST(Subprocess, AProgramIsFoundInPath) {
  auto r = RunProcess({"true"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  auto missing = RunProcess({"cm-no-such-program-anywhere"});
  EXPECT_FALSE(missing.ok());
}

TEST(Subprocess, LastLineSkipsTrailingBlankLines) {
  EXPECT_EQ(LastLine("a\nb\n\n"), "b");
  EXPECT_EQ(LastLine("only"), "only");
  EXPECT_EQ(LastLine(""), "");
}

}  // namespace
}  // namespace cm
