#include "delta/manifest.h"

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

Manifest Build(const std::string& root, const Manifest* cache = nullptr, uint64_t* hashed = nullptr) {
  ManifestOptions o;
  o.cache = cache;
  auto m = BuildManifest(root, o, hashed);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? *m : Manifest{};
}

void MakeTree(const std::string& r) {
  MakeDirs(r + "/a/b");
  WriteFile(r + "/a/b/x.html", "hello");
  WriteFile(r + "/top file", "top");
  ASSERT_EQ(symlink("a/b/x.html", (r + "/link").c_str()), 0);
}

// HashToEnd hashes a file from offset 0 to its end whatever the size hint
// and whatever the reused buffer held before (sizes around its 64 KiB first
// size and its 1 MiB limit).
TEST(Manifest, HashToEndIsTheFilesHashWithAReusedBuffer) {
  TempDir t;
  std::vector<uint8_t> buf;
  for (size_t n : {size_t{0}, size_t{1}, size_t{65535}, size_t{65536}, size_t{70000}, size_t{(1u << 20) + 3},
                   size_t{10}}) {
    std::string data(n, '\0');
    for (size_t i = 0; i < n; ++i) data[i] = static_cast<char>(i * 7 + n);
    const std::string p = t / ("f" + std::to_string(n));
    WriteFile(p, data);
    int fd = ::open(p.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    for (uint64_t hint : {uint64_t{0}, uint64_t{n}}) {
      auto h = HashToEnd(fd, hint, &buf);
      ASSERT_TRUE(h.ok()) << h.status().message();
      EXPECT_EQ(*h, HashBytes(data.data(), data.size())) << n << " hint " << hint;
    }
    ::close(fd);
  }
}

// Files below the walk's 64th level (no open parent kept) are hashed by
// their whole path.
TEST(Manifest, FilesDeeperThanTheOpenLevelsAreHashed) {
  TempDir t;
  std::string p = t / "root";
  for (int i = 0; i < 70; ++i) p += "/d";
  WriteFile(p + "/leaf", "deep bytes");
  Manifest m = Build(t / "root");
  ASSERT_FALSE(m.entries.empty());
  EXPECT_EQ(m.entries.back().hash, HashBytes("deep bytes", 10));
}

TEST(Manifest, SameContentSameHashAnywhere) {
  TempDir d;
  MakeTree(d.path() + "/one");
  MakeTree(d.path() + "/two");
  Manifest a = Build(d.path() + "/one"), b = Build(d.path() + "/two");
  ASSERT_EQ(a.entries.size(), 5u);
  EXPECT_EQ(ManifestHash(a), ManifestHash(b));
  EXPECT_TRUE(DiffManifests(a, b).empty());
}

TEST(Manifest, EveryKindOfChangeChangesTheHash) {
  TempDir d;
  const std::string r = d.path() + "/t";
  MakeTree(r);
  const Hash256 h0 = ManifestHash(Build(r));
  WriteFile(r + "/a/b/x.html", "hellO");
  EXPECT_NE(ManifestHash(Build(r)), h0);
  WriteFile(r + "/a/b/x.html", "hello");
  EXPECT_EQ(ManifestHash(Build(r)), h0);
  ASSERT_EQ(chmod((r + "/top file").c_str(), 0600), 0);
  EXPECT_NE(ManifestHash(Build(r)), h0);
  ASSERT_EQ(chmod((r + "/top file").c_str(), 0644), 0);
  ASSERT_EQ(unlink((r + "/link").c_str()), 0);
  ASSERT_EQ(symlink("top file", (r + "/link").c_str()), 0);
  EXPECT_NE(ManifestHash(Build(r)), h0);
  ASSERT_EQ(unlink((r + "/link").c_str()), 0);
  ASSERT_EQ(symlink("a/b/x.html", (r + "/link").c_str()), 0);
  EXPECT_EQ(ManifestHash(Build(r)), h0);
  MakeDirs(r + "/empty");
  EXPECT_NE(ManifestHash(Build(r)), h0);
}

TEST(Manifest, TheCacheSkipsUnchangedFilesAndCatchesEdits) {
  TempDir d;
  const std::string r = d.path() + "/t";
  MakeTree(r);
  uint64_t hashed = 0;
  Manifest m0 = Build(r, nullptr, &hashed);
  EXPECT_EQ(hashed, 8u);
  hashed = 0;
  Manifest m1 = Build(r, &m0, &hashed);
  EXPECT_EQ(hashed, 0u);
  EXPECT_EQ(ManifestHash(m1), ManifestHash(m0));
  // An edit in place changes the mtime (pretend time moved on).
  WriteFile(r + "/a/b/x.html", "HELLO");
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1234567, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (r + "/a/b/x.html").c_str(), ts, 0), 0);
  hashed = 0;
  Manifest m2 = Build(r, &m0, &hashed);
  EXPECT_EQ(hashed, 5u);
  EXPECT_NE(ManifestHash(m2), ManifestHash(m0));
  auto diff = DiffManifests(m0, m2);
  ASSERT_EQ(diff.changed.size(), 1u);
  EXPECT_EQ(diff.changed[0], "a/b/x.html");
}

TEST(Manifest, DiffNamesMissingAndExtra) {
  TempDir d;
  MakeTree(d.path() + "/one");
  MakeTree(d.path() + "/two");
  ASSERT_EQ(unlink((d.path() + "/two/top file").c_str()), 0);
  WriteFile(d.path() + "/two/new", "n");
  auto diff = DiffManifests(Build(d.path() + "/one"), Build(d.path() + "/two"));
  EXPECT_EQ(diff.missing, std::vector<std::string>{"top file"});
  EXPECT_EQ(diff.extra, std::vector<std::string>{"new"});
  EXPECT_TRUE(diff.changed.empty());
}

TEST(Manifest, TextRoundTripsAndRejectsJunk) {
  TempDir d;
  const std::string r = d.path() + "/t";
  MakeTree(r);
  WriteFile(r + "/we%ird\nname", "x");
  Manifest m = Build(r);
  auto back = DecodeManifest(EncodeManifest(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(EncodeManifest(*back), EncodeManifest(m));
  EXPECT_EQ(ManifestHash(*back), ManifestHash(m));
  EXPECT_NE(back->Find("we%ird\nname"), nullptr);
  EXPECT_EQ(back->Find("nope"), nullptr);
  EXPECT_FALSE(DecodeManifest("junk\n").ok());
  EXPECT_FALSE(DecodeManifest("cm-manifest 1\nf 644 1 zz 1 1 a\n").ok());
  EXPECT_FALSE(DecodeManifest("cm-manifest 1\nd 755 0 - 1 1 b\nd 755 0 - 1 1 a\n").ok());
  EXPECT_FALSE(DecodeManifest("cm-manifest 1\nd 755 0 - 1 1 a%2\n").ok());
  EXPECT_FALSE(DecodeManifest("cm-manifest 1\nd 755 0 - 1 1 a").ok());
}

TEST(Manifest, MissingRootIsEmptyOnlyWhenAsked) {
  TempDir d;
  ManifestOptions o;
  EXPECT_FALSE(BuildManifest(d.path() + "/none", o).ok());
  o.missing_ok = true;
  auto m = BuildManifest(d.path() + "/none", o);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->entries.empty());
}

}  // namespace
}  // namespace cm::delta
