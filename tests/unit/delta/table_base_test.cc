#include "delta/table_base.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/test_util.h"

namespace cm::delta {
namespace {

using cm::test::MakeDirs;
using cm::test::TempDir;
using cm::test::WriteFile;

Hash256 TreeHash(const std::string& root) {
  auto m = BuildManifest(root, {});
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? ManifestHash(*m) : Hash256{};
}

// The base record of the table DiffTreesWithBase writes, read back.
TableBase Diff(const std::string& old_root, const std::string& new_root, TreeDiffOptions o = {}) {
  StringSink sink;
  TableBase written;
  auto r = DiffTreesWithBase(old_root, new_root, o, &sink, nullptr, &written);
  EXPECT_TRUE(r.ok()) << r.status().message();
  StringSource src(sink.data());
  DeltaTableReader reader(&src);
  EXPECT_TRUE(reader.Begin().ok());
  EXPECT_TRUE(reader.base().has_value());
  DeltaEntry e;
  for (;;) {
    auto more = reader.Next(&e);
    EXPECT_TRUE(more.ok()) << more.status().message();
    if (!more.ok() || !*more) break;
  }
  EXPECT_EQ(reader.base().value_or(TableBase{}), written);
  return written;
}

void OldTree(const std::string& r) {
  MakeDirs(r + "/keep/deep");
  MakeDirs(r + "/gone/sub");
  MakeDirs(r + "/becomes-file");
  WriteFile(r + "/keep/deep/a.html", "unchanged");
  WriteFile(r + "/keep/b.html", "old b");
  WriteFile(r + "/gone/sub/x", "x");
  WriteFile(r + "/becomes-file/y", "y");
  WriteFile(r + "/moved-from.bin", std::string(5000, 'm'));
  WriteFile(r + "/mode", "mode", 0644);
  ASSERT_EQ(symlink("keep/b.html", (r + "/link").c_str()), 0);
}

void NewTree(const std::string& r) {
  MakeDirs(r + "/keep/deep");
  MakeDirs(r + "/added/dir");
  WriteFile(r + "/keep/deep/a.html", "unchanged");
  WriteFile(r + "/keep/b.html", "new b, longer");
  WriteFile(r + "/becomes-file", "now a file");
  WriteFile(r + "/added/dir/z", "z");
  WriteFile(r + "/moved-to.bin", std::string(5000, 'm') + "!");
  WriteFile(r + "/mode", "mode", 0600);
  ASSERT_EQ(symlink("keep/deep/a.html", (r + "/link").c_str()), 0);
}

TEST(TableBase, NamesTheOldTreeAndTheTreeTheTableMakes) {
  TempDir d;
  OldTree(d / "old");
  NewTree(d / "new");
  TreeDiffOptions o;
  o.checksum = true;
  TableBase b = Diff(d / "old", d / "new", o);
  EXPECT_EQ(b.manifest, TreeHash(d / "old"));
  EXPECT_EQ(b.result_manifest, TreeHash(d / "new"));
  EXPECT_EQ(b.release, "");
  EXPECT_EQ(b.serial, 0u);
}

TEST(TableBase, AnEmptyOldTreeIsTheEmptyManifest) {
  TempDir d;
  NewTree(d / "new");
  TreeDiffOptions o;
  o.old_may_be_missing = true;
  TableBase b = Diff(d / "missing", d / "new", o);
  EXPECT_EQ(b.manifest, ManifestHash(Manifest{}));
  EXPECT_EQ(b.result_manifest, TreeHash(d / "new"));
}

TEST(TableBase, NoChangeMeansTheSameManifestTwice) {
  TempDir d;
  OldTree(d / "old");
  TableBase b = Diff(d / "old", d / "old");
  EXPECT_EQ(b.manifest, b.result_manifest);
}

TEST(TableBase, AContentRootReleaseNamesItselfAndUsesItsRecordedManifest) {
  TempDir d;
  const std::string rel = "s000000000007-job7";
  const std::string root = d / "root";
  OldTree(root + "/releases/" + rel);
  MakeDirs(root + "/.cm/manifests");
  ASSERT_EQ(symlink(("releases/" + rel).c_str(), (root + "/current").c_str()), 0);
  auto m = BuildManifest(root + "/releases/" + rel, {});
  ASSERT_TRUE(m.ok());
  const Hash256 real = ManifestHash(*m);
  // A recorded manifest whose hash for an unchanged file differs: used as the
  // stat cache, it shows that the file was not read again.
  Manifest recorded = *m;
  for (auto& e : recorded.entries)
    if (e.path == "keep/deep/a.html") e.hash[0] ^= 1;
  ASSERT_TRUE(SaveManifest(root + "/.cm/manifests/" + rel + ".mf", recorded).ok());
  auto described = DescribeOldTree(root + "/current", false);
  ASSERT_TRUE(described.ok()) << described.status().message();
  EXPECT_EQ(described->base.release, rel);
  EXPECT_EQ(described->base.serial, 7u);
  EXPECT_EQ(described->base.manifest, ManifestHash(recorded));
  EXPECT_NE(described->base.manifest, real);
}

// The old tree's error comes first (its manifest is built before the diff),
// whether or not the new tree is there.
TEST(TableBase, AMissingOldTreeIsTheErrorEvenWhenNewIsMissingToo) {
  TempDir t;
  NewTree(t / "new");
  for (const std::string& n : {t / "new", t / "also-missing"}) {
    StringSink sink;
    auto r = DiffTreesWithBase(t / "missing-old", n, {}, &sink, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kNotFound);
    EXPECT_NE(r.status().message().find("missing-old"), std::string::npos) << r.status().message();
  }
}

TEST(TableBase, ApplyEntriesRefusesEntriesThatDoNotFitTheBase) {
  DeltaEntry e;
  e.op = Op::kMeta;
  e.kind = Kind::kFile;
  e.path = "nothere";
  auto r = ApplyEntries(Manifest{}, {e});
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
}

}  // namespace
}  // namespace cm::delta
