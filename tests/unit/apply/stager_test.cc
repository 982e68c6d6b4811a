#include "apply/stager.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/dir_meta.h"
#include "apply/fs_ops.h"
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

// A base of several MiB whose hash cm-apply remembers (it was CREATEd): the
// output is hashed by a second thread reading behind the writer.
TEST_F(StagerTest, LargePatchOnARememberedBaseIsCheckedBehindTheWriter) {
  std::string base(6 << 20, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& ch : base) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    ch = static_cast<char>(x);
  }
  ASSERT_TRUE(Do(Create("big.bin", base)).ok());
  std::string target = base;
  target.replace(5 << 20, 4, "EDIT");
  target += "tail";
  Op bad = PatchOp("big.bin", base, target);
  bad.c.hash[0] ^= 1;
  EXPECT_EQ(Do(bad).code(), Code::kCorrupt);
  EXPECT_EQ(ReadFile(S("big.bin")), base);
  EXPECT_EQ(test::Manifest(d_ / "stage").find(".cmtmp"), std::string::npos);
  ASSERT_TRUE(Do(PatchOp("big.bin", base, target)).ok());
  EXPECT_EQ(ReadFile(S("big.bin")), target);
  // The new file remembers its hash too: a second patch needs no full hash.
  const std::string again = target + "more";
  ASSERT_TRUE(Do(PatchOp("big.bin", target, again)).ok());
  EXPECT_EQ(ReadFile(S("big.bin")), again);
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

// Parents are resolved through a cache of open directories; a directory
// removed and replaced by a symlink must not be reached through a stale fd.
TEST_F(StagerTest, ARemovedDirectoryIsNotReachedThroughTheParentCache) {
  test::MakeDirs(d_ / "outside");
  ASSERT_TRUE(Do(Mkdir("a")).ok());
  ASSERT_TRUE(Do(Mkdir("a/b")).ok());
  ASSERT_TRUE(Do(Create("a/b/f1", "1")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRemove, "a/b")).ok());
  Op link = Simple(pack::Opcode::kSymlink, "a/b", d_ / "outside");
  ASSERT_TRUE(Do(link).ok());
  EXPECT_EQ(Do(Create("a/b/evil", "x")).code(), Code::kUnsafePath);
  EXPECT_FALSE(Exists(d_ / "outside/evil"));
  // Renamed directories too: the old name is gone, the new one works.
  ASSERT_TRUE(Do(Mkdir("c")).ok());
  ASSERT_TRUE(Do(Create("c/f", "c")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRename, "c", "e")).ok());
  EXPECT_EQ(Do(Create("c/g", "x")).code(), Code::kBaseMismatch);
  ASSERT_TRUE(Do(Create("e/g", "g")).ok());
  EXPECT_EQ(ReadFile(S("e/f")), "c");
  EXPECT_EQ(ReadFile(S("e/g")), "g");
}

// Paths deeper than the parent cache keeps open still resolve (and still
// refuse a symlink on the way).
TEST_F(StagerTest, VeryDeepPathsResolve) {
  std::string path;
  for (int i = 0; i < 80; ++i) {
    path += (i ? "/d" : "d") + std::to_string(i);
    ASSERT_TRUE(Do(Mkdir(path)).ok()) << path;
  }
  ASSERT_TRUE(Do(Create(path + "/f", "deep")).ok());
  EXPECT_EQ(ReadFile(S(path + "/f")), "deep");
  ASSERT_TRUE(Do(Create("d0/top", "top")).ok());
  ASSERT_TRUE(Do(Create(path + "/g", "deep2")).ok());
  const std::string mid = path.substr(0, path.find("/d70"));
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRemove, mid + "/d70")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kSymlink, mid + "/d70", "/")).ok());
  EXPECT_EQ(Do(Create(path + "/h", "x")).code(), Code::kUnsafePath);
}

// Staged directories keep their final mtime through every kind of change of
// their entries (the commit applies only logged records).
TEST_F(StagerTest, ChangesOfEntriesKeepTheDirectoryMtime) {
  WriteFile(S("d/f"), "x");
  WriteFile(S("d/sub/g"), "y");
  WriteFile(S("d/h"), "z");
  const int64_t t = 1500000000123456789;
  auto set = [&](const std::string& p) {
    struct timespec ts[2] = {{0, UTIME_OMIT}, {t / 1000000000, t % 1000000000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, S(p).c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
  };
  set("d");
  set("d/sub");
  auto mtime = [&](const std::string& p) {
    struct stat st;
    EXPECT_EQ(::lstat(S(p).c_str(), &st), 0);
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  };
  ASSERT_TRUE(Do(Create("d/new", "n")).ok());
  ASSERT_TRUE(Do(Create("d/f", "replaced")).ok());
  ASSERT_TRUE(Do(PatchOp("d/h", "z", "zz")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRemove, "d/new")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kSymlink, "d/l", "f")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kCopy, "d/f", "d/f2")).ok());
  ASSERT_TRUE(Do(Mkdir("d/m")).ok());
  ASSERT_TRUE(Do(Simple(pack::Opcode::kRename, "d/sub", "d/sub2")).ok());
  EXPECT_EQ(mtime("d"), t);
  EXPECT_EQ(mtime("d/sub2"), t);
  ASSERT_TRUE(Do(SetMeta("d", 0750, t + 1)).ok());  // applied at once (keeps owner rwx)
  EXPECT_EQ(mtime("d"), t + 1);
  EXPECT_EQ(ModeOf(S("d")), 0750u);
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

pack::Command Touch(const std::string& first, const std::string& last, uint64_t count, int64_t mtime_ns) {
  pack::Command c;
  c.op = pack::Opcode::kTouch;
  c.path = first;
  c.path2 = last;
  c.size = count;
  c.meta.mtime_ns = mtime_ns;
  return c;
}

int64_t MtimeOf(const std::string& p) {
  struct stat st;
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// TOUCH gives every file and directory from its first to its last path (walk
// order; not symlinks, not what lies outside) the run's mtime; a file shared
// with live is copied first, a directory's time is logged for the commit.
TEST_F(StagerTest, TouchSetsTheRunsMtimeOnFilesAndDirectoriesInWalkOrder) {
  const int64_t kOld = 1600000000000000000, kNew = 1700000000123456789;
  test::MakeDirs(S("a/sub"));
  for (const char* f : {"a/1", "a/2", "a/sub/x", "b", "c"}) WriteFile(S(f), f);
  WriteFile(d_ / "live", "shared");
  ASSERT_EQ(::link((d_ / "live").c_str(), S("a/shared").c_str()), 0);
  ASSERT_EQ(::symlink("1", S("a/link").c_str()), 0);
  std::string out;
  test::Run("find '" + S("") + "' '" + (d_ / "live") + "' -exec touch -h -d @1600000000 {} +", &out);
  // a/1 a/2 a/shared a/sub a/sub/x b: six (a itself comes before a/1).
  ASSERT_TRUE(stager_->Apply(Touch("a/1", "b", 6, kNew), nullptr).ok());
  for (const char* p : {"a/1", "a/2", "a/shared", "a/sub/x", "b"}) EXPECT_EQ(MtimeOf(S(p)), kNew) << p;
  for (const char* p : {"a", "c", "a/link"}) EXPECT_EQ(MtimeOf(S(p)), kOld) << p;
  EXPECT_EQ(MtimeOf(d_ / "live"), kOld);  // the shared inode is untouched
  EXPECT_NE(Ino(S("a/shared")), Ino(d_ / "live"));
  EXPECT_EQ(ReadFile(S("a/shared")), "shared");
  auto m = ReplayDirMeta(log_.path());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->at("a/sub").mtime_ns, kNew);
  EXPECT_EQ(m->count("a"), 0u);
  EXPECT_EQ(stager_->stats().touched, 6u);
}

// A shared file TOUCH copies is recorded (source inode -> new inode), so the
// staged manifest can take its recorded hash; a file the stage wrote itself
// is changed in place and not recorded; any later command but TOUCH drops
// the records (it could replace a copied path).
TEST_F(StagerTest, TouchRecordsTheCopiesOfSharedFilesUntilAnotherCommand) {
  const int64_t kNew = 1700000000123456789;
  WriteFile(d_ / "live", "shared bytes");
  ASSERT_EQ(::link((d_ / "live").c_str(), S("s").c_str()), 0);
  ASSERT_TRUE(Do(Create("t", "mine", 0644)).ok());
  std::string out;
  test::Run("touch -d @1600000000 '" + S("t") + "' '" + (d_ / "live") + "'", &out);
  const int64_t live_mtime = MtimeOf(d_ / "live");
  const ino_t mine = Ino(S("t"));
  ASSERT_TRUE(stager_->Apply(Touch("s", "t", 2, kNew), nullptr).ok());
  EXPECT_EQ(Ino(S("t")), mine);  // written by the stage: in place
  EXPECT_EQ(MtimeOf(S("t")), kNew);
  ASSERT_EQ(stager_->touch_copies().size(), 1u);
  const Stager::TouchCopy& c = stager_->touch_copies()[0];
  EXPECT_EQ(c.path, "s");
  EXPECT_EQ(c.src_ino, static_cast<uint64_t>(Ino(d_ / "live")));
  EXPECT_EQ(c.src_mtime_ns, live_mtime);
  EXPECT_EQ(c.ino, static_cast<uint64_t>(Ino(S("s"))));
  EXPECT_NE(c.ino, c.src_ino);
  EXPECT_EQ(c.mtime_ns, kNew);
  EXPECT_EQ(c.size, 12u);
  EXPECT_EQ(MtimeOf(d_ / "live"), live_mtime);
  EXPECT_EQ(ReadFile(S("s")), "shared bytes");
  ASSERT_TRUE(Do(Create("u", "later", 0644)).ok());
  EXPECT_TRUE(stager_->touch_copies().empty());
}

// CopyFileData's reflink flag: asked once, cleared when the file system
// refuses FICLONE; the bytes are copied either way.
TEST(CopyFileDataTest, ReflinkRefusedOnceIsNotAskedAgain) {
  TempDir d;
  const std::string data(100000, 'x');
  WriteFile(d / "src", data);
  bool reflink = true;
  for (int i = 0; i < 2; ++i) {
    UniqueFd in(::open((d / "src").c_str(), O_RDONLY));
    const std::string dst = d / ("dst" + std::to_string(i));
    UniqueFd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600));
    ASSERT_TRUE(in && out);
    const bool asked = reflink;
    ASSERT_TRUE(CopyFileData(in.get(), out.get(), &reflink).ok());
    EXPECT_EQ(ReadFile(dst), data);
    if (!asked) {
      EXPECT_FALSE(reflink);  // never set back
    }
  }
  bool no = false;
  UniqueFd in(::open((d / "src").c_str(), O_RDONLY));
  UniqueFd out(::open((d / "dst-plain").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600));
  ASSERT_TRUE(CopyFileData(in.get(), out.get(), &no).ok());
  EXPECT_EQ(ReadFile(d / "dst-plain"), data);
}

TEST_F(StagerTest, TouchOfAnotherNumberOfEntriesIsBaseMismatch) {
  for (const char* f : {"a", "b", "c"}) WriteFile(S(f), f);
  EXPECT_EQ(stager_->Apply(Touch("a", "c", 4, 1700000000000000000), nullptr).code(), Code::kBaseMismatch);
  EXPECT_EQ(stager_->Apply(Touch("a", "c", 2, 1700000000000000000), nullptr).code(), Code::kBaseMismatch);
  EXPECT_EQ(stager_->Apply(Touch("a", "../c", 3, 1700000000000000000), nullptr).code(), Code::kUnsafePath);
  EXPECT_EQ(stager_->Apply(Touch("c", "a", 3, 1700000000000000000), nullptr).code(), Code::kCorrupt);
  EXPECT_TRUE(stager_->Apply(Touch("a", "c", 3, 1700000000000000000), nullptr).ok());
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

// d/live cloned into a new d/stage with its dirmeta log at d/stage.dirmeta.
struct StagedClone {
  explicit StagedClone(const TempDir& d) {
    test::MakeDirs(d / "stage");
    src = UniqueFd(::open((d / "live").c_str(), O_RDONLY | O_DIRECTORY));
    dst = UniqueFd(::open((d / "stage").c_str(), O_RDONLY | O_DIRECTORY));
    status = log.Open(d / "stage.dirmeta");
    if (status.ok()) status = CloneTree(src.get(), dst.get(), &log, &stats);
  }
  UniqueFd src, dst;
  DirMetaLog log;
  CloneStats stats;
  Status status = Status::Ok();
};

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
  StagedClone c(d);
  ASSERT_TRUE(c.status.ok()) << c.status.message();
  DirMetaLog& log = c.log;
  const CloneStats& cs = c.stats;
  const int dst = c.dst.get();
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
}

// The clone gives directories their final metadata at once and logs only the
// root and the directories whose mode it had to widen.
TEST(StagingInvariantTest, CloneGivesDirectoriesTheirMetadataAndLogsOnlyExceptions) {
  TempDir d;
  WriteFile(d / "live/a/f", "1");
  WriteFile(d / "live/a/b/g", "2");
  WriteFile(d / "live/ro/h", "3");
  ASSERT_EQ(::chmod((d / "live/a").c_str(), 02750), 0);
  ASSERT_EQ(::chmod((d / "live/ro").c_str(), 0555), 0);
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1400000000, 42}};
  for (const char* p : {"live/a/b", "live/a", "live/ro"}) ASSERT_EQ(::utimensat(AT_FDCWD, (d / p).c_str(), ts, 0), 0);
  StagedClone c(d);
  ASSERT_TRUE(c.status.ok()) << c.status.message();
  DirMetaLog& log = c.log;
  const CloneStats& cs = c.stats;
  EXPECT_EQ(cs.dirs, 3u);
  EXPECT_EQ(cs.linked, 3u);
  for (const char* p : {"stage/a/b", "stage/a", "stage/ro"}) {
    struct stat st;
    ASSERT_EQ(::lstat((d / p).c_str(), &st), 0);
    EXPECT_EQ(st.st_mtim.tv_sec, 1400000000) << p;
    EXPECT_EQ(st.st_mtim.tv_nsec, 42) << p;
  }
  EXPECT_EQ(ModeOf(d / "stage/a"), 02750u);
  EXPECT_EQ(ModeOf(d / "stage/ro"), 0755u);  // widened while staged
  auto m = ReplayDirMeta(log.path());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 2u);  // "" and ro
  EXPECT_EQ(m->at("ro").mode, 0555u);
}

}  // namespace
}  // namespace cm::apply
