#include "delta/tree_walk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/test_util.h"

namespace cm::delta {
namespace {

using cm::test::MakeDirs;
using cm::test::TempDir;
using cm::test::WriteFile;

std::vector<std::string> Walk(const std::string& root, const PathFilter* f = nullptr,
                              std::vector<std::string>* warnings = nullptr) {
  TreeWalker w(root, f, [&](const std::string& p, const std::string& what) {
    if (warnings) warnings->push_back(p + ": " + what);
  });
  EXPECT_TRUE(w.Start().ok());
  std::vector<std::string> out;
  WalkEntry e;
  for (;;) {
    auto r = w.Next(&e);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok() || !*r) break;
    out.push_back(e.path + (e.kind == Kind::kDir ? "/" : e.kind == Kind::kSymlink ? "@" : ""));
  }
  return out;
}

TEST(ComparePaths, ComponentWiseBytewise) {
  EXPECT_LT(ComparePaths("a", "a/b"), 0);
  EXPECT_LT(ComparePaths("a/b", "a.txt"), 0);
  EXPECT_LT(ComparePaths("a/zzz", "a-"), 0);
  EXPECT_LT(ComparePaths("B", "a"), 0);
  EXPECT_LT(ComparePaths("a/b/c", "a/b0"), 0);
  EXPECT_GT(ComparePaths("b", "a/z/z"), 0);
  EXPECT_EQ(ComparePaths("a/b", "a/b"), 0);
  EXPECT_LT(ComparePaths("\x01", "\xff"), 0);  // bytes compare unsigned
}

TEST(TreeWalker, DepthFirstSortedBytewise) {
  TempDir t;
  std::string r = t / "root";
  WriteFile(r + "/b", "b");
  WriteFile(r + "/a.txt", "a");
  WriteFile(r + "/a/z", "z");
  WriteFile(r + "/a/b/c", "c");
  WriteFile(r + "/B", "B");
  WriteFile(r + "/\xc3\xa9t\xc3\xa9", "unicode");
  MakeDirs(r + "/empty");
  ASSERT_EQ(::symlink("a.txt", (r + "/link").c_str()), 0);
  std::vector<std::string> want = {"B", "a/", "a/b/", "a/b/c", "a/z", "a.txt", "b", "empty/", "link@",
                                   "\xc3\xa9t\xc3\xa9"};
  EXPECT_EQ(Walk(r), want);
}

// ParentFd is the open directory of the entry Next returned: its base name
// resolves there to the same inode.
TEST(TreeWalker, ParentFdHoldsTheEntrysDirectory) {
  TempDir t;
  std::string r = t / "root";
  WriteFile(r + "/b", "b");
  WriteFile(r + "/a/z", "z");
  WriteFile(r + "/a/b/c", "c");
  MakeDirs(r + "/a/b/empty");
  ASSERT_EQ(::symlink("z", (r + "/a/link").c_str()), 0);
  TreeWalker w(r, nullptr, nullptr);
  ASSERT_TRUE(w.Start().ok());
  EXPECT_EQ(w.ParentFd(), -1);
  WalkEntry e;
  int n = 0;
  for (;;) {
    auto more = w.Next(&e);
    ASSERT_TRUE(more.ok());
    if (!*more) break;
    ++n;
    const size_t slash = e.path.find_last_of('/');
    const std::string leaf = slash == std::string::npos ? e.path : e.path.substr(slash + 1);
    struct stat at, full;
    ASSERT_EQ(::fstatat(w.ParentFd(), leaf.c_str(), &at, AT_SYMLINK_NOFOLLOW), 0) << e.path;
    ASSERT_EQ(::lstat(w.FullPath(e.path).c_str(), &full), 0) << e.path;
    EXPECT_EQ(at.st_ino, full.st_ino) << e.path;
    EXPECT_EQ(static_cast<uint64_t>(at.st_ino), e.ino) << e.path;
  }
  EXPECT_EQ(n, 7);  // a a/b a/b/c a/b/empty a/link a/z b
}

// Below the 64th level the walker keeps no directory open (ParentFd -1):
// a very deep tree neither runs out of descriptors nor loses entries.
TEST(TreeWalker, AVeryDeepTreeKeepsOnlySixtyFourLevelsOpen) {
  TempDir t;
  std::string r = t / "root", p = r;
  for (int i = 0; i < 80; ++i) p += "/d";
  WriteFile(p + "/leaf", "leaf");
  TreeWalker w(r, nullptr, nullptr);
  ASSERT_TRUE(w.Start().ok());
  WalkEntry e;
  int n = 0, without = 0;
  for (;;) {
    auto more = w.Next(&e);
    ASSERT_TRUE(more.ok()) << more.status().message();
    if (!*more) break;
    ++n;
    if (w.ParentFd() < 0) ++without;
  }
  EXPECT_EQ(n, 81);
  EXPECT_EQ(without, 81 - 64);
}

TEST(TreeWalker, SkipChildrenSkipsTheSubtree) {
  TempDir t;
  WriteFile(t / "r/d/x", "x");
  WriteFile(t / "r/d/y/z", "z");
  WriteFile(t / "r/e", "e");
  TreeWalker w(t / "r", nullptr, nullptr);
  ASSERT_TRUE(w.Start().ok());
  WalkEntry e;
  ASSERT_TRUE(*w.Next(&e));
  EXPECT_EQ(e.path, "d");
  w.SkipChildren();
  ASSERT_TRUE(*w.Next(&e));
  EXPECT_EQ(e.path, "e");
  EXPECT_FALSE(*w.Next(&e));
}

TEST(TreeWalker, ReportsMetadata) {
  TempDir t;
  WriteFile(t / "r/f", "12345", 0640);
  ASSERT_EQ(::chmod((t / "r/f").c_str(), 04750), 0);
  struct timespec ts[2] = {{1, 0}, {1600000000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (t / "r/f").c_str(), ts, 0), 0);
  ASSERT_EQ(::symlink("some/where", (t / "r/l").c_str()), 0);
  TreeWalker w(t / "r", nullptr, nullptr);
  ASSERT_TRUE(w.Start().ok());
  WalkEntry e;
  ASSERT_TRUE(*w.Next(&e));
  EXPECT_EQ(e.kind, Kind::kFile);
  EXPECT_EQ(e.size, 5u);
  EXPECT_EQ(e.mode, 04750u);
  EXPECT_EQ(e.mtime_ns, 1600000000123456789);
  EXPECT_EQ(e.uid, ::getuid());
  ASSERT_TRUE(*w.Next(&e));
  EXPECT_EQ(e.kind, Kind::kSymlink);
  EXPECT_EQ(e.link_target, "some/where");
}

TEST(TreeWalker, SpecialFilesAreSkippedWithAWarning) {
  TempDir t;
  WriteFile(t / "r/a", "a");
  ASSERT_EQ(::mkfifo((t / "r/fifo").c_str(), 0644), 0);
  std::vector<std::string> warnings;
  EXPECT_EQ(Walk(t / "r", nullptr, &warnings), std::vector<std::string>{"a"});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "fifo: skipping fifo");
}

TEST(TreeWalker, MissingRoot) {
  TempDir t;
  TreeWalker w(t / "nope", nullptr, nullptr);
  EXPECT_EQ(w.Start().code(), Code::kNotFound);
  TreeWalker w2(t / "nope", nullptr, nullptr);
  ASSERT_TRUE(w2.Start(true).ok());
  EXPECT_TRUE(w2.root_missing());
  WalkEntry e;
  EXPECT_FALSE(*w2.Next(&e));
  WriteFile(t / "file", "x");
  TreeWalker w3(t / "file", nullptr, nullptr);
  EXPECT_EQ(w3.Start().code(), Code::kUsage);
}

TEST(TreeWalker, ARootThatIsASymlinkIsFollowedOnceAndPinned) {
  TempDir t;
  WriteFile(t / "releases/r1/a", "1");
  WriteFile(t / "releases/r1/sub/b", "2");
  WriteFile(t / "releases/r2/other", "3");
  ASSERT_EQ(::symlink("releases/r1", (t / "current").c_str()), 0);
  EXPECT_EQ(Walk(t / "current"), (std::vector<std::string>{"a", "sub/", "sub/b"}));
  EXPECT_EQ(Walk(t / "current/"), (std::vector<std::string>{"a", "sub/", "sub/b"}));
  // Switched after Start(): the walk stays in the tree it started in.
  TreeWalker w(t / "current", nullptr, nullptr);
  ASSERT_TRUE(w.Start().ok());
  ASSERT_EQ(::unlink((t / "current").c_str()), 0);
  ASSERT_EQ(::symlink("releases/r2", (t / "current").c_str()), 0);
  WalkEntry e;
  ASSERT_TRUE(*w.Next(&e));
  EXPECT_EQ(e.path, "a");
  EXPECT_EQ(w.root(), t / "releases/r1");
  // A symlink below the root is an entry, never followed.
  ASSERT_EQ(::symlink("../r2", (t / "releases/r1/link").c_str()), 0);
  EXPECT_EQ(Walk(t / "releases/r1"), (std::vector<std::string>{"a", "link@", "sub/", "sub/b"}));
}

TEST(TreeWalker, UnreadableDirectoryIsAnIoError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads everything";
  TempDir t;
  WriteFile(t / "r/d/x", "x");
  ASSERT_EQ(::chmod((t / "r/d").c_str(), 0), 0);
  TreeWalker w(t / "r", nullptr, nullptr);
  ASSERT_TRUE(w.Start().ok());
  WalkEntry e;
  ASSERT_TRUE(*w.Next(&e));
  auto r = w.Next(&e);
  EXPECT_EQ(r.status().code(), Code::kIo);
  ::chmod((t / "r/d").c_str(), 0755);
}

TEST(PathFilter, BaseNameRelativePathAnchoredAndDirOnly) {
  PathFilter f({"*.o", "build/*.tmp", "/top", "cache/", "-x"});
  EXPECT_TRUE(f.Excluded("a.o", false));
  EXPECT_TRUE(f.Excluded("src/deep/a.o", false));
  EXPECT_TRUE(f.Excluded("build/x.tmp", false));
  EXPECT_FALSE(f.Excluded("build/sub/x.tmp", false));  // '*' does not cross '/'
  EXPECT_TRUE(f.Excluded("top", true));
  EXPECT_FALSE(f.Excluded("sub/top", true));  // anchored
  EXPECT_TRUE(f.Excluded("a/cache", true));
  EXPECT_FALSE(f.Excluded("a/cache", false));  // directories only
  EXPECT_TRUE(f.Excluded("d/-x", false));
  EXPECT_FALSE(f.Excluded("a.c", false));
  EXPECT_FALSE(PathFilter().Excluded("anything", false));
}

TEST(TreeWalker, ExcludedDirectoryTakesItsSubtree) {
  TempDir t;
  WriteFile(t / "r/keep/a", "a");
  WriteFile(t / "r/skip/a", "a");
  WriteFile(t / "r/keep/x.log", "l");
  PathFilter f({"skip", "*.log"});
  EXPECT_EQ(Walk(t / "r", &f), (std::vector<std::string>{"keep/", "keep/a"}));
}

}  // namespace
}  // namespace cm::delta
