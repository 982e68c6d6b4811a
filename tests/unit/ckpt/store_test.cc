#include "ckpt/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "support/test_util.h"

namespace cm::ckpt {
namespace {

using cm::test::MakeDirs;
using cm::test::TempDir;
using cm::test::WriteFile;

std::unique_ptr<Store> OpenStore(const std::string& dir) {
  auto s = Store::Open(dir);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(*s) : nullptr;
}

Hash256 TreeHash(const std::string& dir) {
  auto m = delta::BuildManifest(dir, {});
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? delta::ManifestHash(*m) : Hash256{};
}

// Deterministic bytes for file i of version v.
std::string Content(int i, int v, size_t n) {
  std::string s(n, '\0');
  uint32_t x = static_cast<uint32_t>(i * 2654435761u + v * 40503u + 1);
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

void MakeRichTree(const std::string& r) {
  MakeDirs(r + "/a/b");
  MakeDirs(r + "/ro");
  MakeDirs(r + "/empty dir");
  WriteFile(r + "/a/b/x.html", "hello");
  WriteFile(r + "/a/secret", "s", 0600);
  WriteFile(r + "/a/run.sh", "#!/bin/sh\n", 0755);
  WriteFile(r + "/empty", "");
  WriteFile(r + "/dup1", "same bytes");
  WriteFile(r + "/dup2", "same bytes");
  WriteFile(r + "/ro/inside", "r");
  ASSERT_EQ(symlink("a/b/x.html", (r + "/link").c_str()), 0);
  ASSERT_EQ(symlink("nowhere", (r + "/a/dangling").c_str()), 0);
  ASSERT_EQ(chmod((r + "/ro").c_str(), 0555), 0);
  ASSERT_EQ(chmod((r + "/a/b").c_str(), 0711), 0);
}

TEST(CheckpointStore, MaterializeRebuildsTheSameManifestWithModesLinksAndTimes) {
  TempDir d;
  MakeRichTree(d / "tree");
  auto s = OpenStore(d / "store");
  auto r = s->Add("s000000000001-j1", 1, d / "tree");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->info.manifest, TreeHash(d / "tree"));
  EXPECT_EQ(r->info.files, 7u);
  EXPECT_EQ(r->new_objects, 6u);  // dup1 and dup2 share one object
  ASSERT_TRUE(s->Materialize("s000000000001-j1", d / "out").ok());
  EXPECT_EQ(TreeHash(d / "out"), r->info.manifest);
  // The test helper's listing also compares mtimes of files and directories.
  cm::test::ManifestOptions mo;
  mo.dir_mtimes = true;
  EXPECT_EQ(cm::test::Manifest(d / "out", mo), cm::test::Manifest(d / "tree", mo));
  // An empty directory is a fine target; a non-empty one is refused.
  MakeDirs(d / "emptytarget");
  EXPECT_TRUE(s->Materialize("s000000000001-j1", d / "emptytarget").ok());
  EXPECT_EQ(TreeHash(d / "emptytarget"), r->info.manifest);
  Status again = s->Materialize("s000000000001-j1", d / "out");
  EXPECT_EQ(again.code(), Code::kUsage) << again.message();
  EXPECT_EQ(s->Materialize("nope", d / "out2").code(), Code::kNotFound);
  // Nothing half-built is left beside the targets.
  std::string listing;
  cm::test::Run("ls -A " + d.path(), &listing);
  EXPECT_EQ(listing, "emptytarget\nout\nstore\ntree\n");
}

TEST(CheckpointStore, TenReleasesOfSmallChangesTakeAboutOneTree) {
  TempDir d;
  const int kFiles = 100;
  const size_t kSize = 20000;
  for (int i = 0; i < kFiles; ++i)
    WriteFile(d / ("tree/d" + std::to_string(i % 7) + "/f" + std::to_string(i)), Content(i, 0, kSize));
  auto s = OpenStore(d / "store");
  uint64_t tree_bytes = kFiles * kSize;
  for (int v = 1; v <= 10; ++v) {
    if (v > 1) {  // one file in a hundred changes
      int i = (v * 37) % kFiles;
      WriteFile(d / ("tree/d" + std::to_string(i % 7) + "/f" + std::to_string(i)), Content(i, v, kSize));
    }
    auto r = s->Add("s00000000000" + std::to_string(v - 1) + "-j", static_cast<uint64_t>(v), d / "tree");
    ASSERT_TRUE(r.ok()) << r.status().message();
    // The stat cache: only the changed file is read again.
    if (v > 1) {
      EXPECT_EQ(r->hashed_bytes, kSize);
      EXPECT_EQ(r->new_objects, 1u);
    }
  }
  // Each content once: the tree plus the nine changed files; with the ten
  // manifests, well under 1.2 trees (1.09 of it is the changed content).
  Objects objs(d / "store/objects", d / "store/tmp");
  auto obj_bytes = objs.Bytes();
  ASSERT_TRUE(obj_bytes.ok());
  EXPECT_EQ(*obj_bytes, tree_bytes + 9 * kSize);
  auto disk = s->DiskBytes();
  ASSERT_TRUE(disk.ok());
  EXPECT_LE(*disk, tree_bytes * 12 / 10) << "store " << *disk << " bytes for a tree of " << tree_bytes;
  auto all = s->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 10u);
  EXPECT_EQ(all->front().serial, 10u);  // newest first
  EXPECT_EQ(all->back().serial, 1u);
}

TEST(CheckpointStore, PruneKeepsNewestAndPinnedAndCollectsExactlyTheUnreferenced) {
  TempDir d;
  auto s = OpenStore(d / "store");
  WriteFile(d / "t/common", "common");
  std::vector<std::set<std::string>> objects_of(5);
  for (int v = 1; v <= 4; ++v) {
    WriteFile(d / "t/own", "own " + std::to_string(v));
    ASSERT_TRUE(s->Add("r" + std::to_string(v), static_cast<uint64_t>(v), d / "t").ok());
  }
  // r1..r4: 1 common object + 4 own. Keep 2 (r4, r3) and pin r1: r2's own goes.
  auto p = s->Prune(2, {"r1"});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->removed, std::vector<std::string>{"r2"});
  EXPECT_EQ(p->gc.removed, 1u);
  EXPECT_EQ(p->gc.kept, 4u);
  EXPECT_EQ(p->gc.bytes_freed, 5u);  // "own 2"
  Objects objs(d / "store/objects", d / "store/tmp");
  EXPECT_FALSE(objs.Has(HashBytes("own 2", 5)));
  for (const char* r : {"r1", "r3", "r4"}) {
    auto v = s->Verify(r);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->ok()) << r << ": " << (v->bad.empty() ? "" : v->bad[0]);
  }
  EXPECT_EQ(s->Info("r2").status().code(), Code::kNotFound);
  // Nothing left to collect: a second prune removes nothing.
  auto again = s->Prune(2, {"r1"});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->removed.empty());
  EXPECT_EQ(again->gc.removed, 0u);
  // Keep 1 without pins: only r4 and its two objects remain.
  auto last = s->Prune(1);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->removed, (std::vector<std::string>{"r3", "r1"}));
  EXPECT_EQ(last->gc.removed, 2u);
  EXPECT_EQ(last->gc.kept, 2u);
}

TEST(CheckpointStore, LeftoversOfAKilledAddAreCleanedOnOpen) {
  TempDir d;
  WriteFile(d / "t/f", "content");
  {
    auto s = OpenStore(d / "store");
    ASSERT_TRUE(s->Add("r1", 1, d / "t").ok());
  }
  // What a writer killed at each step leaves: an object being written, a
  // manifest whose record never came, an atomic file's temporary name.
  WriteFile(d / "store/tmp/0123abcd.999.1", "half an object");
  ASSERT_EQ(cm::test::Run("cp " + d / "store/releases/r1.mf" + " " + d / "store/releases/r2.mf"), 0);
  WriteFile(d / "store/releases/.r3.info.tmp-999-1", "cm-checkpoint 1\n");
  auto s = OpenStore(d / "store");
  std::string listing;
  cm::test::Run("ls -A " + d / "store/tmp" + " " + d / "store/releases", &listing);
  EXPECT_EQ(listing, d / "store/releases" + ":\nr1.info\nr1.mf\n\n" + d / "store/tmp" + ":\n");
  auto all = s->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  // Another process holding the lock (a writer at work): Open leaves its files.
  UniqueFd lock(::open((d / "store/lock").c_str(), O_RDWR));
  ASSERT_EQ(::flock(lock.get(), LOCK_EX), 0);
  WriteFile(d / "store/tmp/busy", "x");
  ASSERT_TRUE(Store::Open(d / "store").ok());
  EXPECT_EQ(access((d / "store/tmp/busy").c_str(), F_OK), 0);
}

TEST(CheckpointStore, FindByManifestAndAddingAgain) {
  TempDir d;
  auto s = OpenStore(d / "store");
  WriteFile(d / "t/f", "one");
  auto a = s->Add("r1", 1, d / "t");
  ASSERT_TRUE(a.ok());
  WriteFile(d / "t/f", "two");
  auto b = s->Add("r2", 2, d / "t");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(s->FindByManifest(a->info.manifest), std::optional<std::string>("r1"));
  EXPECT_EQ(s->FindByManifest(b->info.manifest), std::optional<std::string>("r2"));
  EXPECT_EQ(s->FindByManifest(Hash256{}), std::nullopt);
  // The same release with the same content: a no-op; with other content: refused.
  auto again = s->Add("r2", 2, d / "t");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->existed);
  WriteFile(d / "t/f", "three");
  EXPECT_EQ(s->Add("r2", 2, d / "t").status().code(), Code::kOrder);
  EXPECT_EQ(s->Add("../evil", 3, d / "t").status().code(), Code::kUsage);
  EXPECT_EQ(s->Add(".hidden", 3, d / "t").status().code(), Code::kUsage);
  // Same content under a newer name: the newest is found.
  WriteFile(d / "t/f", "one");
  ASSERT_TRUE(s->Add("r3", 3, d / "t").ok());
  EXPECT_EQ(s->FindByManifest(a->info.manifest), std::optional<std::string>("r3"));
}

TEST(CheckpointStore, VerifyFindsADamagedOrMissingObject) {
  TempDir d;
  auto s = OpenStore(d / "store");
  WriteFile(d / "t/a", "alpha");
  WriteFile(d / "t/b", "beta");
  ASSERT_TRUE(s->Add("r1", 1, d / "t").ok());
  WriteFile(d / "u/alpha-again", "alpha");
  ASSERT_TRUE(s->Add("r2", 2, d / "u").ok());
  Objects objs(d / "store/objects", d / "store/tmp");
  const std::string pa = objs.PathOf(HashBytes("alpha", 5));
  ASSERT_EQ(chmod(pa.c_str(), 0644), 0);
  WriteFile(pa, "alphA");
  ASSERT_EQ(unlink(objs.PathOf(HashBytes("beta", 4)).c_str()), 0);
  auto v = s->Verify("r1");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->bad, (std::vector<std::string>{"a: object damaged", "b: object missing"}));
  // Verifying several releases reads a shared content once, and reports it for each.
  std::map<Hash256, bool> checked;
  ASSERT_TRUE(s->Verify("r1", &checked).ok());
  EXPECT_EQ(checked.size(), 2u);
  auto v2 = s->Verify("r2", &checked);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->bad, std::vector<std::string>{"alpha-again: object damaged"});
  // Materialize of a release with a missing object fails and leaves nothing.
  EXPECT_EQ(s->Materialize("r1", d / "out").code(), Code::kNotFound);
  EXPECT_NE(access((d / "out").c_str(), F_OK), 0);
}

TEST(CheckpointStore, ObjectsAreReadOnlyAndNamedByContent) {
  TempDir d;
  auto s = OpenStore(d / "store");
  WriteFile(d / "t/x", "xyz");
  ASSERT_TRUE(s->Add("r1", 1, d / "t").ok());
  Objects objs(d / "store/objects", d / "store/tmp");
  struct stat st;
  ASSERT_EQ(stat(objs.PathOf(HashBytes("xyz", 3)).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_EQ(cm::test::ReadFile(objs.PathOf(HashBytes("xyz", 3))), "xyz");
  // A file changed after it was hashed is refused, not stored under the old name.
  EXPECT_EQ(objs.Put(d / "t/x", HashBytes("abc", 3), 3).code(), Code::kFailure);
  EXPECT_FALSE(objs.Has(HashBytes("abc", 3)));
}

TEST(CheckpointRecord, RoundTripAndRejects) {
  ReleaseInfo i;
  i.release = "s000000000042-job7";
  i.serial = 42;
  i.manifest = HashBytes("m", 1);
  i.files = 3;
  i.bytes = 99;
  i.created_unix = 1796000000;
  i.source_dev = 2049;
  i.source = "/srv/a dir/x";
  auto back = DecodeInfo(EncodeInfo(i));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, i);
  EXPECT_FALSE(DecodeInfo("").ok());
  EXPECT_FALSE(DecodeInfo("cm-checkpoint 1\nrelease r\n").ok());  // no manifest
  EXPECT_FALSE(DecodeInfo("cm-checkpoint 1\nrelease ../x\nmanifest " + std::string(64, '0') + "\n").ok());
  EXPECT_FALSE(DecodeInfo("cm-checkpoint 1\nrelease r\nserial x\nmanifest " + std::string(64, '0') + "\n").ok());
  EXPECT_TRUE(DecodeInfo("cm-checkpoint 1\nrelease r\nfuture 1\nmanifest " + std::string(64, '0') + "\n").ok());
}

}  // namespace
}  // namespace cm::ckpt
