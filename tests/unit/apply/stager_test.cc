#include "apply/stager.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/dir_meta.h"
#include "apply/tree_clone.h"
#include "apply_fixture.h"
#include "delta/instructions.h"
#include "support/test_util.h"

namespace cm::apply {
namespace {

using namespace cm::apply::testing;
using test::ReadFile;
using test::TempDir;
using test::WriteFile;

class StagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::MakeDirs(d_ / "stage");
    fd_ = ::open((d_ / "stage").c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd_, 0);
    ASSERT_TRUE(log_.Open(d_ / "stage.dirmeta").ok());
    stager_ = std::make_unique<Stager>(fd_, &log_);
  }
  void TearDown() override {
    stager_.reset();
    ::close(fd_);
  }
  std::string S(const std::string& rel) { return d_ / ("stage/" + rel); }
  Status Do(const Op& o) { return ApplyOp(*stager_, o); }

  TempDir d_;
  int fd_ = -1;
  DirMetaLog log_;
  std::unique_ptr<Stager> stager_;
};

TEST_F(StagerTest, MkdirCreatesOwnerWritableDirAndLogsTrueMode) {
  ASSERT_TRUE(Do(Mkdir("d", 0555)).ok());
  EXPECT_EQ(ModeOf(S("d")), 0755u);  // 0555 | 0700 while staged
  auto m = ReplayDirMeta(log_.path());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->at("d").mode, 0555u);
  EXPECT_TRUE(Do(Mkdir("d", 0555)).ok());  // existing directory: fine
  WriteFile(S("f"), "x");
  EXPECT_EQ(Do(Mkdir("f")).code(), Code::kBaseMismatch);
}

TEST_F(StagerTest, CreateWritesContentModeAndMtime) {
  ASSERT_TRUE(Do(Create("f.txt", "hello", 0640, 1500000000123456789)).ok());
  EXPECT_EQ(ReadFile(S("f.txt")), "hello");
  struct stat st;
  ASSERT_EQ(::lstat(S("f.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(stager_->stats().created, 1u);
  EXPECT_EQ(stager_->stats().bytes_written, 5u);
}

TEST_F(StagerTest, CreateWithWrongContentIsCorruptAndLeavesNothing) {
  Op o = Create("f.txt", "hello");
  o.data = "jello";
  EXPECT_EQ(Do(o).code(), Code::kCorrupt);
  EXPECT_FALSE(Exists(S("f.txt")));
  o.data = "hell";
  EXPECT_EQ(Do(o).code(), Code::kCorrupt);
  EXPECT_EQ(test::Manifest(d_ / "stage"), "");  // no temporary left behind
}

TEST_F(StagerTest, CreateIntoMissingDirIsBaseMismatch) {
  EXPECT_EQ(Do(Create("no/f", "x")).code(), Code::kBaseMismatch);
}

TEST_F(StagerTest, CreateThroughSymlinkIsRefused) {
  test::MakeDirs(d_ / "outside");
  ASSERT_EQ(::symlink((d_ / "outside").c_str(), S("link").c_str()), 0);
  EXPECT_EQ(Do(Create("link/evil", "x")).code(), Code::kUnsafePath);
  EXPECT_FALSE(Exists(d_ / "outside/evil"));
}

TEST_F(StagerTest, CreateReplacesASymlinkInsteadOfWritingThroughIt) {
  WriteFile(d_ / "outside.txt", "keep");
  ASSERT_EQ(::symlink((d_ / "outside.txt").c_str(), S("f").c_str()), 0);
  ASSERT_TRUE(Do(Create("f", "new")).ok());
  EXPECT_EQ(ReadFile(d_ / "outside.txt"), "keep");
  EXPECT_EQ(ReadFile(S("f")), "new");
}

std::string PatchStream(const std::string& base, const std::string& target) {
  // COPY the common prefix, INSERT the rest.
  size_t common = 0;
  while (common < base.size() && common < target.size() && base[common] == target[common]) ++common;
  StringSink sink;
  delta::InstructionWriter w(&sink);
  EXPECT_TRUE(w.Copy(0, common).ok());
  EXPECT_TRUE(w.Insert(target.data() + common, target.size() - common).ok());
  EXPECT_TRUE(w.Finish().ok());
  return sink.data();
}

Op PatchOp(const std::string& path, const std::string& base, const std::string& target) {
  Op o = Create(path, target);
  o.c.op = pack::Opcode::kPatch;
  o.c.base_size = base.size();
  o.c.base_hash = HashBytes(base.data(), base.size());
  o.data = PatchStream(base, target);
  return o;
}

TEST_F(StagerTest, PatchMakesANewInodeAndLeavesSharedBaseUntouched) {
  WriteFile(d_ / "live.txt", "hello world");
  ASSERT_EQ(::link((d_ / "live.txt").c_str(), S("f.txt").c_str()), 0);
  ASSERT_TRUE(Do(PatchOp("f.txt", "hello world", "hello world, again")).ok());
  EXPECT_EQ(ReadFile(S("f.txt")), "hello world, again");
  EXPECT_EQ(ReadFile(d_ / "live.txt"), "hello world");
  EXPECT_NE(Ino(S("f.txt")), Ino(d_ / "live.txt"));
  EXPECT_EQ(stager_->stats().patched, 1u);
}

TEST_F(StagerTest, PatchOnChangedBaseIsBaseMismatch) {
  WriteFile(S("f.txt"), "hello WORLD");
  EXPECT_EQ(Do(PatchOp("f.txt", "hello world", "hello")).code(), Code::kBaseMismatch);
  WriteFile(S("f.txt"), "short");
  EXPECT_EQ(Do(PatchOp("f.txt", "hello world", "hello")).code(), Code::kBaseMismatch);
  EXPECT_EQ(Do(PatchOp("missing.txt", "hello world", "hello")).code(), Code::kBaseMismatch);
  EXPECT_EQ(ReadFile(S("f.txt")), "short");
}

TEST_F(StagerTest, PatchBaseThatIsASymlinkOrFifoIsUnsafe) {
  WriteFile(d_ / "secret", "hello world");
  ASSERT_EQ(::symlink((d_ / "secret").c_str(), S("l").c_str()), 0);
  EXPECT_EQ(Do(PatchOp("l", "hello world", "x")).code(), Code::kUnsafePath);
  ASSERT_EQ(::mkfifo(S("p").c_str(), 0644), 0);
  EXPECT_EQ(Do(PatchOp("p", "hello world", "x")).code(), Code::kUnsafePath);
}

TEST_F(StagerTest, RemoveHandlesFilesLinksDirsAndMissing) {
  WriteFile(S("d/sub/f"), "x");
  ::chmod(S("d/sub").c_str(), 0555);
  WriteFile(S("f"), "x");
  ASSERT_EQ(::symlink("f", S("l").c_str()), 0);
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRemove, "d")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRemove, "f")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRemove, "l")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRemove, "never/was")).ok());
  EXPECT_EQ(test::Manifest(d_ / "stage"), "");
}

TEST_F(StagerTest, RemoveThroughSymlinkIsRefused) {
  WriteFile(d_ / "outside/victim", "x");
  ASSERT_EQ(::symlink((d_ / "outside").c_str(), S("link").c_str()), 0);
  EXPECT_EQ(Do(Simple(pack::Opcode::kRemove, "link/victim")).code(), Code::kUnsafePath);
  EXPECT_TRUE(Exists(d_ / "outside/victim"));
}

TEST_F(StagerTest, RenameMovesFilesAndDirsAndTheirDirMeta) {
  ASSERT_TRUE(Do(Mkdir("a", 0750)).ok());
  WriteFile(S("a/f"), "x");
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRename, "a", "b")).ok());
  EXPECT_EQ(ReadFile(S("b/f")), "x");
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRename, "b/f", "g")).ok());
  EXPECT_EQ(ReadFile(S("g")), "x");
  auto m = ReplayDirMeta(log_.path());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->count("a"), 0u);
  EXPECT_EQ(m->at("b").mode, 0750u);
  EXPECT_EQ(Do(Simple(pack::Opcode::kRename, "missing", "x")).code(), Code::kBaseMismatch);
}

TEST_F(StagerTest, CopyMakesAnIndependentFile) {
  WriteFile(S("f"), "content", 0600);
  ASSERT_TRUE(Do(Simple(pack::Opcode::kCopy, "f", "g")).ok());
  EXPECT_EQ(ReadFile(S("g")), "content");
  EXPECT_NE(Ino(S("f")), Ino(S("g")));
  EXPECT_EQ(ModeOf(S("g")), 0600u);
  ASSERT_EQ(::mkfifo(S("p").c_str(), 0644), 0);
  EXPECT_EQ(Do(Simple(pack::Opcode::kCopy, "p", "q")).code(), Code::kUnsafePath);
}

TEST_F(StagerTest, SetMetaOnSharedFileCopiesAndLeavesLiveAlone) {
  WriteFile(d_ / "live.txt", "shared", 0644);
  ASSERT_EQ(::link((d_ / "live.txt").c_str(), S("f").c_str()), 0);
  ASSERT_TRUE(Do(SetMeta("f", 0600, 1234000000000)).ok());
  EXPECT_EQ(ModeOf(d_ / "live.txt"), 0644u);
  EXPECT_EQ(ModeOf(S("f")), 0600u);
  EXPECT_NE(Ino(S("f")), Ino(d_ / "live.txt"));
  EXPECT_EQ(ReadFile(S("f")), "shared");
}

TEST_F(StagerTest, SetMetaOnPrivateFileChangesItInPlace) {
  ASSERT_TRUE(Do(Create("f", "mine", 0644)).ok());
  ino_t before = Ino(S("f"));
  ASSERT_TRUE(Do(SetMeta("f", 0400)).ok());
  EXPECT_EQ(ModeOf(S("f")), 0400u);
  EXPECT_EQ(Ino(S("f")), before);
}

TEST_F(StagerTest, SetMetaOnDirIsDeferredToCommit) {
  ASSERT_TRUE(Do(Mkdir("d", 0755)).ok());
  ASSERT_TRUE(Do(SetMeta("d", 0500)).ok());
  EXPECT_EQ(ModeOf(S("d")), 0755u);  // unchanged until commit
  auto m = ReplayDirMeta(log_.path());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->at("d").mode, 0500u);
}

TEST_F(StagerTest, SymlinkCreatesAndReplaces) {
  Op o = Simple(pack::Opcode::kSymlink, "l", "target-1");
  ASSERT_TRUE(Do(o).ok());
  o.c.path2 = "target-2";
  ASSERT_TRUE(Do(o).ok());
  char buf[64] = {};
  ASSERT_GT(::readlink(S("l").c_str(), buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "target-2");
  WriteFile(S("f"), "x");
  o.c.path = "f";
  ASSERT_TRUE(Do(o).ok());  // a file becomes a link
  EXPECT_EQ(Do(Simple(pack::Opcode::kSymlink, "e", "")).code(), Code::kCorrupt);
}

TEST_F(StagerTest, UnsafePathsInAnyCommandAreRefused) {
  EXPECT_EQ(Do(Create("../x", "x")).code(), Code::kUnsafePath);
  EXPECT_EQ(Do(Mkdir("/abs")).code(), Code::kUnsafePath);
  EXPECT_EQ(Do(Simple(pack::Opcode::kRename, "a", "../b")).code(), Code::kUnsafePath);
  EXPECT_EQ(Do(Simple(pack::Opcode::kRemove, "a/./b")).code(), Code::kUnsafePath);
  EXPECT_FALSE(Exists(d_ / "x"));
}

// The staging invariant end to end: clone a "live" tree, change it through
// the stager, and check live is byte- and mode-identical afterwards.
TEST(StagingInvariantTest, CloneSharesInodesAndChangesNeverReachLive) {
  TempDir d;
  WriteFile(d / "live/a.txt", "alpha");
  WriteFile(d / "live/sub/b.txt", "bravo", 0640);
  WriteFile(d / "live/sub/c.txt", "charlie");
  ASSERT_EQ(::symlink("a.txt", (d / "live/ln").c_str()), 0);
  ::chmod((d / "live/sub").c_str(), 0555);
  const std::string before = test::Manifest(d / "live");
  test::MakeDirs(d / "stage");
  int src = ::open((d / "live").c_str(), O_RDONLY | O_DIRECTORY);
  int dst = ::open((d / "stage").c_str(), O_RDONLY | O_DIRECTORY);
  DirMetaLog log;
  ASSERT_TRUE(log.Open(d / "stage.dirmeta").ok());
  CloneStats cs;
  ASSERT_TRUE(CloneTree(src, dst, &log, &cs).ok());
  EXPECT_EQ(cs.linked, 3u);
  EXPECT_EQ(cs.symlinks, 1u);
  EXPECT_EQ(Ino(d / "stage/a.txt"), Ino(d / "live/a.txt"));
  EXPECT_EQ(Ino(d / "stage/sub/b.txt"), Ino(d / "live/sub/b.txt"));
  EXPECT_EQ(ModeOf(d / "stage/sub"), 0755u);  // writable while staged

  Stager s(dst, &log);
  ASSERT_TRUE(ApplyOp(s, Create("a.txt", "ALPHA")).ok());
  ASSERT_TRUE(ApplyOp(s, SetMeta("sub/b.txt", 0600)).ok());
  ASSERT_TRUE(ApplyOp(s, Simple(pack::Opcode::kRemove, "sub/c.txt")).ok());
  ASSERT_TRUE(ApplyOp(s, Create("sub/new.txt", "new")).ok());
  EXPECT_NE(Ino(d / "stage/a.txt"), Ino(d / "live/a.txt"));
  EXPECT_EQ(ModeOf(d / "stage/sub/b.txt"), 0600u);
  EXPECT_EQ(test::Manifest(d / "live"), before);

  auto m = ReplayDirMeta(log.path());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->at("sub").mode, 0555u);
  EXPECT_EQ(m->count(""), 1u);
  ::close(src);
  ::close(dst);
}

}  // namespace
}  // namespace cm::apply
