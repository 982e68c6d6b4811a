#include "apply/safe_path.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "support/test_util.h"

namespace cm::apply {
namespace {

using test::TempDir;

TEST(SafePathTest, PlainRelativePathsAreValid) {
  EXPECT_TRUE(ValidateRelPath("a").ok());
  EXPECT_TRUE(ValidateRelPath("a/b/c.html").ok());
  EXPECT_TRUE(ValidateRelPath("..a/b..").ok());
  EXPECT_TRUE(ValidateRelPath(".hidden/x").ok());
}

TEST(SafePathTest, EscapesAndOddComponentsAreRefused) {
  for (std::string p : {"", "/etc/passwd", "../x", "a/../../x", "a/..", "./a", "a/./b", "a//b", "a/", "/"}) {
    Status st = ValidateRelPath(p);
    EXPECT_EQ(st.code(), Code::kUnsafePath) << "'" << p << "'";
  }
  std::string nul("a\0b", 3);
  EXPECT_EQ(ValidateRelPath(nul).code(), Code::kUnsafePath);
  EXPECT_EQ(ValidateRelPath(std::string(256, 'x')).code(), Code::kUnsafePath);
}

TEST(SafePathTest, SplitPathGivesComponents) {
  EXPECT_EQ(SplitPath("a/b/c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(SplitPath("a"), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(SplitPath("").empty());
}

class WalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::MakeDirs(d_ / "tree/a/b");
    test::MakeDirs(d_ / "outside");
    test::WriteFile(d_ / "tree/file", "x");
    ASSERT_EQ(::symlink("../outside", (d_ / "tree/escape").c_str()), 0);
    ASSERT_EQ(::symlink("a", (d_ / "tree/inside").c_str()), 0);
    ASSERT_EQ(::mkfifo((d_ / "tree/fifo").c_str(), 0644), 0);
    fd_ = ::open((d_ / "tree").c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }
  TempDir d_;
  int fd_ = -1;
};

TEST_F(WalkTest, ParentOfAValidPathOpens) {
  auto p = OpenParentBeneath(fd_, "a/b/new.txt");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->leaf, "new.txt");
  struct stat st1, st2;
  ASSERT_EQ(::fstat(p->dir.get(), &st1), 0);
  ASSERT_EQ(::stat((d_ / "tree/a/b").c_str(), &st2), 0);
  EXPECT_EQ(st1.st_ino, st2.st_ino);
}

TEST_F(WalkTest, SymlinkInTheMiddleIsRefused) {
  EXPECT_EQ(OpenParentBeneath(fd_, "escape/x").status().code(), Code::kUnsafePath);
  // Even a link that stays inside the tree is not followed.
  EXPECT_EQ(OpenParentBeneath(fd_, "inside/b/x").status().code(), Code::kUnsafePath);
}

TEST_F(WalkTest, FileOrFifoInTheMiddleIsRefused) {
  EXPECT_EQ(OpenParentBeneath(fd_, "file/x").status().code(), Code::kBaseMismatch);
  EXPECT_EQ(OpenParentBeneath(fd_, "fifo/x").status().code(), Code::kUnsafePath);
}

TEST_F(WalkTest, MissingParentIsNotFound) {
  EXPECT_EQ(OpenParentBeneath(fd_, "nope/x").status().code(), Code::kNotFound);
}

TEST_F(WalkTest, InvalidPathsFailBeforeAnyLookup) {
  EXPECT_EQ(OpenParentBeneath(fd_, "../outside/x").status().code(), Code::kUnsafePath);
  EXPECT_EQ(OpenParentBeneath(fd_, "/tmp/x").status().code(), Code::kUnsafePath);
  EXPECT_EQ(OpenParentBeneath(fd_, "").status().code(), Code::kUnsafePath);
  EXPECT_EQ(OpenParentBeneath(fd_, std::string("a\0/x", 4)).status().code(), Code::kUnsafePath);
}

TEST_F(WalkTest, LeafSymlinkIsReturnedNotFollowed) {
  auto p = OpenParentBeneath(fd_, "escape");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->leaf, "escape");
}

}  // namespace
}  // namespace cm::apply
