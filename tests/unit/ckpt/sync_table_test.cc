#include "ckpt/sync_table.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>

#include "ckpt/store.h"
#include "delta/delta_table.h"
#include "support/test_util.h"

namespace cm::ckpt {
namespace {

using cm::test::MakeDirs;
using cm::test::Run;
using cm::test::TempDir;
using cm::test::WriteFile;
using delta::Kind;
using delta::Manifest;
using delta::ManifestEntry;

ManifestEntry File(const std::string& p, const std::string& content, uint32_t mode = 0644) {
  ManifestEntry e;
  e.path = p;
  e.kind = Kind::kFile;
  e.mode = mode;
  e.size = content.size();
  e.hash = HashBytes(content.data(), content.size());
  return e;
}
ManifestEntry Dir(const std::string& p, uint32_t mode = 0755) {
  ManifestEntry e;
  e.path = p;
  e.kind = Kind::kDir;
  e.mode = mode;
  return e;
}
ManifestEntry Link(const std::string& p, const std::string& target) {
  ManifestEntry e;
  e.path = p;
  e.kind = Kind::kSymlink;
  e.link_target = target;
  return e;
}

// "op path" per entry, from the written table.
std::vector<std::string> Ops(const Manifest& want, const Manifest& have, const std::set<std::string>& unknown = {}) {
  StringSink sink;
  auto st = WriteSyncTable(want, have, unknown, &sink);
  EXPECT_TRUE(st.ok()) << st.status().message();
  StringSource src(sink.data());
  delta::DeltaTableReader r(&src);
  EXPECT_TRUE(r.Begin().ok());
  EXPECT_EQ(r.flags(), delta::kTableFlagChecksum);
  std::vector<std::string> out;
  delta::DeltaEntry e;
  for (;;) {
    auto more = r.Next(&e);
    EXPECT_TRUE(more.ok()) << more.status().message();
    if (!more.ok() || !*more) break;
    EXPECT_EQ(e.encoding, delta::Encoding::kWhole);
    out.push_back(std::string(delta::OpName(e.op)) + " " + e.path);
  }
  return out;
}

TEST(SyncTable, EqualManifestsGiveAnEmptyTable) {
  Manifest m{{Dir("a"), File("a/x", "x"), Link("l", "a/x")}};
  EXPECT_TRUE(Ops(m, m).empty());
}

TEST(SyncTable, EachKindOfDifference) {
  Manifest want{{Dir("a"), File("a/edited", "new"), File("a/mode", "m", 0600), File("a/new", "n"), Dir("d2f"),
                 File("d2f/in", "i"), File("f2d", "now a file"), Link("l", "a/new"), Dir("ro", 0555)}};
  Manifest have{{Dir("a"), File("a/edited", "old"), File("a/extra", "e"), File("a/mode", "m", 0644), File("d2f", "f"),
                 Dir("f2d"), File("f2d/deep", "d"), Dir("gone"), File("gone/g", "g"), Link("l", "a/edited"),
                 Dir("ro", 0755)}};
  EXPECT_EQ(Ops(want, have), (std::vector<std::string>{"modify a/edited", "remove a/extra", "meta a/mode", "add a/new",
                                                       "remove d2f", "add d2f", "add d2f/in", "remove f2d", "add f2d",
                                                       "remove gone", "modify l", "meta ro"}));
}

TEST(SyncTable, UnknownPathsAreAlwaysRewrittenOrRemoved) {
  Manifest m{{Dir("a"), File("a/x", "x"), File("a/y", "y"), File("b", "b")}};
  // a/x looks unchanged but its content is unknown; "stray" is in neither
  // manifest but may exist on the server; a directory is rebuilt whole.
  EXPECT_EQ(Ops(m, m, {"a/x", "stray"}), (std::vector<std::string>{"remove a/x", "add a/x", "remove stray"}));
  EXPECT_EQ(Ops(m, m, {"a"}), (std::vector<std::string>{"remove a", "add a", "add a/x", "add a/y"}));
  Manifest without_b{{Dir("a"), File("a/x", "x"), File("a/y", "y")}};
  EXPECT_EQ(Ops(without_b, m, {"b"}), (std::vector<std::string>{"remove b"}));
  EXPECT_EQ(Ops(m, without_b, {"b"}), (std::vector<std::string>{"remove b", "add b"}));
  // An unknown path under a path that is not a directory of want: removed with it.
  EXPECT_EQ(Ops(m, m, {"b/under-a-file"}), std::vector<std::string>{});
}

// The end-to-end check: a damaged content root, synchronised from the table
// by cm-pack and cm-apply, serves exactly the wanted tree again.
class SyncEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cm::test::BinDir().empty()) GTEST_SKIP() << "CM_BIN not set";
    bin_ = cm::test::BinDir();
    env_ = "CM_CONFIG_DIR=" + d_ / "etc" + " ";
    MakeDirs(d_ / "etc");
    MakeDirs(d_ / "R");
    ASSERT_EQ(cm::test::Run(env_ + bin_ + "/cm-pack -q keygen -o " + d_ / "k" + " --pub " + d_ / "etc/ccm.pub"), 0);
  }
  int Sh(const std::string& cmd) { return cm::test::Run("cd " + d_.path() + " && " + env_ + cmd + " 2>&1", &out_); }
  Manifest Build(const std::string& dir) {
    auto m = delta::BuildManifest(dir, {});
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? *m : Manifest{};
  }
  void WriteTable(const Manifest& want, const Manifest& have, const std::set<std::string>& unknown) {
    StringSink sink;
    ASSERT_TRUE(WriteSyncTable(want, have, unknown, &sink).ok());
    WriteFile(d_ / "s.cmdt", sink.data());
  }
  void PackAndApply(const std::string& source, int serial) {
    ASSERT_EQ(Sh(bin_ + "/cm-pack -q s.cmdt --source " + source + " --type synchronize --job sync" +
                 std::to_string(serial) + " --serial " + std::to_string(serial) + " --sign-key k -o s.cma"),
              0)
        << out_;
    ASSERT_EQ(Sh(bin_ + "/cm-apply -q s.cma --root R --commit"), 0) << out_;
  }
  TempDir d_;
  std::string bin_, env_, out_;
};

TEST_F(SyncEndToEnd, ADamagedTreeEndsWithTheWantedManifest) {
  const std::string A = d_ / "A";
  MakeDirs(A + "/sub/deep");
  WriteFile(A + "/index.html", "index");
  WriteFile(A + "/sub/page.html", std::string(100000, 'p'));
  WriteFile(A + "/sub/deep/d.txt", "deep");
  WriteFile(A + "/gone.txt", "will be deleted on B");
  WriteFile(A + "/mode.txt", "chmod on B");
  WriteFile(A + "/was-file", "a file on A, a directory on B");
  ASSERT_EQ(symlink("index.html", (A + "/link").c_str()), 0);
  // B: a copy of A, served from a content root, then damaged.
  ASSERT_EQ(Sh("cp -a A B"), 0) << out_;
  ASSERT_EQ(Sh(bin_ + "/cm-pack -q replicate B --serial 1 --job base --sign-key k -o r.cma"), 0) << out_;
  ASSERT_EQ(Sh(bin_ + "/cm-apply -q r.cma --root R --commit"), 0) << out_;
  const std::string live = d_ / "R/current";
  // A release's files may be shared with others: replace, never edit in place.
  ASSERT_EQ(Sh("cd R/current && rm sub/page.html && printf edited >sub/page.html && rm gone.txt && "
               "echo added >added.txt && chmod 600 mode.txt && rm was-file && mkdir was-file && echo x >was-file/x"),
            0)
      << out_;
  const Manifest want = Build(A), have = Build(live);
  ASSERT_NE(delta::ManifestHash(want), delta::ManifestHash(have));
  WriteTable(want, have, {});
  PackAndApply(A, 2);
  EXPECT_EQ(delta::ManifestHash(Build(live)), delta::ManifestHash(want));
  EXPECT_EQ(cm::test::ReadFile(live + "/sub/page.html"), std::string(100000, 'p'));

  // Changed behind the CCM's back where its manifest does not show it: the
  // record still says `want`, the path is named unknown, and the tree is
  // repaired from a checkpoint's materialized copy.
  ASSERT_EQ(Sh("cd R/current && rm index.html && printf stale >index.html && touch -r sub/deep/d.txt index.html && "
               "echo stray >stray.txt"),
            0)
      << out_;
  auto store = Store::Open(d_ / "store");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Add("s000000000002-sync2", 2, A).ok());
  ASSERT_TRUE((*store)->Materialize("s000000000002-sync2", d_ / "M").ok());
  WriteTable(want, want, {"index.html", "stray.txt"});
  PackAndApply(d_ / "M", 3);
  EXPECT_EQ(delta::ManifestHash(Build(live)), delta::ManifestHash(want));
}

}  // namespace
}  // namespace cm::ckpt

namespace cm::ckpt {
namespace {

// A server's tree in memory, and the staging semantics cm-apply gives each
// table entry (stager.cc): REMOVE is a no-op on a missing path and takes a
// directory's subtree; MKDIR accepts an existing directory; a file or link
// is created or renamed over anything but a directory; META needs the path;
// everything but REMOVE needs its parent to be a directory.
struct Node {
  Kind kind;
  uint32_t mode;
  std::string content;  // file bytes or link target
};
using Tree = std::map<std::string, Node>;

std::string ParentOf(const std::string& p) {
  size_t s = p.rfind('/');
  return s == std::string::npos ? "" : p.substr(0, s);
}
bool ParentIsDir(const Tree& t, const std::string& p) {
  std::string parent = ParentOf(p);
  if (parent.empty()) return true;
  auto it = t.find(parent);
  return it != t.end() && it->second.kind == Kind::kDir;
}

// Applies the table to `t`; false (with why) where cm-apply would fail.
bool Apply(const std::string& table, Tree* t, const std::map<Hash256, std::string>& blobs, std::string* why) {
  StringSource src(table);
  delta::DeltaTableReader r(&src);
  if (!r.Begin().ok()) return false;
  delta::DeltaEntry e;
  for (;;) {
    auto more = r.Next(&e);
    if (!more.ok()) return false;
    if (!*more) return true;
    auto it = t->find(e.path);
    if (e.op == delta::Op::kRemove) {
      for (auto j = t->begin(); j != t->end();)
        j = (j->first == e.path || j->first.rfind(e.path + "/", 0) == 0) ? t->erase(j) : std::next(j);
      continue;
    }
    if (!ParentIsDir(*t, e.path)) return *why = "no parent directory for " + e.path, false;
    if (e.op == delta::Op::kMeta) {
      if (it == t->end()) return *why = "META of missing " + e.path, false;
      it->second.mode = e.mode;
      continue;
    }
    if (e.kind == Kind::kDir) {
      if (it != t->end() && it->second.kind != Kind::kDir) return *why = "MKDIR over a non-directory " + e.path, false;
      (*t)[e.path] = Node{Kind::kDir, e.mode, ""};
      continue;
    }
    if (it != t->end() && it->second.kind == Kind::kDir) return *why = "file or link over a directory " + e.path, false;
    (*t)[e.path] =
        e.kind == Kind::kFile ? Node{Kind::kFile, e.mode, blobs.at(e.hash)} : Node{Kind::kSymlink, 0, e.link_target};
  }
}

Manifest ToManifest(const Tree& t, std::map<Hash256, std::string>* blobs) {
  Manifest m;
  for (const auto& [p, n] : t) {
    ManifestEntry e;
    e.path = p;
    e.kind = n.kind;
    e.mode = n.kind == Kind::kSymlink ? 0 : n.mode;
    if (n.kind == Kind::kFile) {
      e.size = n.content.size();
      e.hash = HashBytes(n.content.data(), n.content.size());
      (*blobs)[e.hash] = n.content;
    } else if (n.kind == Kind::kSymlink) {
      e.link_target = n.content;
    }
    m.entries.push_back(e);
  }
  std::sort(m.entries.begin(), m.entries.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return delta::ComparePaths(a.path, b.path) < 0; });
  return m;
}

Tree RandomTree(std::mt19937* rng) {
  static const char* kPaths[] = {"a", "a/x", "a/y", "a/y/deep", "b", "b/z", "c", "c/w", "d"};
  Tree t;
  for (const char* p : kPaths) {  // parents come first in this list
    if (!ParentIsDir(t, p) || (*rng)() % 3 == 0) continue;
    switch ((*rng)() % 3) {
      case 0:
        t[p] = Node{Kind::kDir, (*rng)() % 2 ? 0755u : 0700u, ""};
        break;
      case 1:
        t[p] = Node{Kind::kFile, (*rng)() % 2 ? 0644u : 0600u, (*rng)() % 2 ? "one" : "two"};
        break;
      default:
        t[p] = Node{Kind::kSymlink, 0, (*rng)() % 2 ? "a" : "b"};
        break;
    }
  }
  return t;
}

// For random want, recorded (have) and actual trees, with the paths where
// actual differs from have named unknown (what verify-live reports) plus
// some more at random, the table turns actual into want.
TEST(SyncTable, PropertyAnyServerTreeEndsAsWant) {
  for (uint32_t seed = 1; seed <= 3000; ++seed) {
    std::mt19937 rng(seed);
    Tree want = RandomTree(&rng), have = RandomTree(&rng), actual = (rng() % 3 == 0) ? have : RandomTree(&rng);
    std::map<Hash256, std::string> blobs;
    Manifest mw = ToManifest(want, &blobs), mh = ToManifest(have, &blobs), ma = ToManifest(actual, &blobs);
    std::set<std::string> unknown;
    delta::ManifestDiff diff = delta::DiffManifests(ma, mh);
    for (const auto* list : {&diff.changed, &diff.missing, &diff.extra}) unknown.insert(list->begin(), list->end());
    if (rng() % 4 == 0) unknown.insert(rng() % 2 ? "a/x" : "c");
    StringSink sink;
    ASSERT_TRUE(WriteSyncTable(mw, mh, unknown, &sink).ok()) << "seed " << seed;
    std::string why;
    Tree t = actual;
    ASSERT_TRUE(Apply(sink.data(), &t, blobs, &why)) << "seed " << seed << ": " << why;
    std::map<Hash256, std::string> unused;
    ASSERT_EQ(delta::ManifestHash(ToManifest(t, &unused)), delta::ManifestHash(mw)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace cm::ckpt
