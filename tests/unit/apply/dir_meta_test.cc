#include "apply/dir_meta.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply_fixture.h"
#include "support/test_util.h"

namespace cm::apply {
namespace {

using namespace cm::apply::testing;
using test::TempDir;

TEST(DirMetaTest, ReplayAppliesSetRenameAndRemoveInOrder) {
  auto m = ReplayDirMetaText(
      "M . 755 0 0 0 0\n"
      "M a 700 5 1 10 20\n"
      "M a/b 555 0 0 0 0\n"
      "M c 711 0 0 0 0\n"
      "R a z\n"
      "D c\n"
      "M z 750 0 0 0 0\n");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->size(), 3u);
  EXPECT_EQ(m->at("").mode, 0755u);
  EXPECT_EQ(m->at("z").mode, 0750u);
  EXPECT_EQ(m->at("z/b").mode, 0555u);
  EXPECT_EQ(m->count("a"), 0u);
  EXPECT_EQ(m->count("c"), 0u);
}

TEST(DirMetaTest, RemoveOfAPrefixNameKeepsSiblings) {
  auto m = ReplayDirMetaText("M ab 755 0 0 0 0\nM a 755 0 0 0 0\nM a/x 755 0 0 0 0\nD a\n");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 1u);
  EXPECT_EQ(m->count("ab"), 1u);
}

TEST(DirMetaTest, MalformedRecordsAreCorrupt) {
  for (const char* t : {"X a\n", "M a\n", "M a 9z9 0 0 0 0\n", "R a\n", "D .\n", "M %zz 755 0 0 0 0\n"})
    EXPECT_EQ(ReplayDirMetaText(t).status().code(), Code::kCorrupt) << t;
}

RC_GTEST_PROP(DirMetaTest, PathEncodingRoundTrips, (const std::string& raw)) {
  std::string p;
  for (char c : raw)
    if (c != '\0') p += c;
  RC_PRE(!p.empty());
  std::string enc = EncodeLogPath(p), back;
  RC_ASSERT(enc.find(' ') == std::string::npos);
  RC_ASSERT(enc.find('\n') == std::string::npos);
  RC_ASSERT(DecodeLogPath(enc, &back));
  RC_ASSERT(back == p);
}

TEST(DirMetaTest, LogFileRoundTrip) {
  TempDir d;
  DirMetaLog log;
  ASSERT_TRUE(log.Open(d / "x.dirmeta").ok());
  pack::Meta m = Mode(02755, 1600000000000000001);
  m.has_owner = true;
  m.uid = 42;
  m.gid = 43;
  ASSERT_TRUE(log.Set("dir with space/%odd\n", m).ok());
  auto r = ReplayDirMeta(d / "x.dirmeta");
  ASSERT_TRUE(r.ok());
  const pack::Meta& got = r->at("dir with space/%odd\n");
  EXPECT_EQ(got.mode, 02755u);
  EXPECT_EQ(got.mtime_ns, 1600000000000000001);
  EXPECT_TRUE(got.has_owner);
  EXPECT_EQ(got.uid, 42u);
  EXPECT_EQ(got.gid, 43u);
}

TEST(DirMetaTest, AppliedBottomUpEvenUnderReadOnlyParents) {
  TempDir d;
  test::MakeDirs(d / "t/ro/inner/deep", 0700);
  DirMetaMap m;
  m[""] = Mode(0750);
  m["ro"] = Mode(0555, 1000000000000000000);
  m["ro/inner"] = Mode(0500, 1100000000000000000);
  m["ro/inner/deep"] = Mode(0555);
  m["gone"] = Mode(0555);  // no longer exists: skipped
  int fd = ::open((d / "t").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(ApplyDirMeta(fd, m, /*include_root=*/false).ok());
  EXPECT_EQ(ModeOf(d / "t/ro"), 0555u);
  EXPECT_EQ(ModeOf(d / "t/ro/inner"), 0500u);
  EXPECT_EQ(ModeOf(d / "t/ro/inner/deep"), 0555u);
  EXPECT_EQ(ModeOf(d / "t"), 0700u);  // root left for later
  struct stat st;
  ASSERT_EQ(::stat((d / "t/ro").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
  ASSERT_TRUE(ApplyDirMeta(fd, m, /*include_root=*/true).ok());  // idempotent, root too
  EXPECT_EQ(ModeOf(d / "t"), 0750u);
  ::close(fd);
}

}  // namespace
}  // namespace cm::apply
