#include "apply/root_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apply/content_root.h"
#include "support/test_util.h"

namespace cm::apply {
namespace {

using test::TempDir;

TEST(RootLockTest, SecondHolderIsBusy) {
  TempDir d;
  auto a = RootLock::Acquire(d / "lock");
  ASSERT_TRUE(a.ok());
  auto b = RootLock::Acquire(d / "lock");
  EXPECT_EQ(b.status().code(), Code::kBusy);
  EXPECT_NE(b.status().message().find("another cm-apply holds the lock"), std::string::npos);
}

TEST(RootLockTest, ReleasedWhenDropped) {
  TempDir d;
  { auto a = RootLock::Acquire(d / "lock"); ASSERT_TRUE(a.ok()); }
  EXPECT_TRUE(RootLock::Acquire(d / "lock").ok());
}

TEST(RootLockTest, AnotherProcessIsBusyWhileHeld) {
  TempDir d;
  auto root = ContentRoot::Open(d.path(), {});
  ASSERT_TRUE(root.ok());
  pid_t pid = ::fork();
  if (pid == 0) {
    auto other = ContentRoot::Open(d.path(), {});
    ::_exit(other.ok() ? 0 : other.status().code() == Code::kBusy ? 7 : 1);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  EXPECT_EQ(WEXITSTATUS(st), 7);
}

}  // namespace
}  // namespace cm::apply
