// The offline pipeline's central property: for random old and new trees,
// applying pack(delta(old, new)) to a server holding old yields exactly new
// (bytes, modes, symlink targets, empty directories, file mtimes).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <random>

#include "apply/applier.h"
#include "apply/content_root.h"
#include "delta/tree_diff.h"
#include "pack/packer.h"
#include "pack/replicate.h"
#include "support/test_util.h"

namespace cm {
namespace {

using test::TempDir;

enum class K { kFile, kDir, kLink };
struct Node {
  K kind = K::kFile;
  std::string content;  // file bytes or link target
  mode_t mode = 0644;
  int64_t mtime = 1700000000;
};
using Tree = std::map<std::string, Node>;  // path -> node; parents always present

const char* kNames[] = {"a", "b.txt", "index.html", "with space", "-dash", "ünï", "x.y.z", "deep", "UPPER", "n\tl"};

std::string RandomBytes(std::mt19937& rng, size_t n, bool text) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(text ? "abcdefgh \n"[rng() % 10] : static_cast<char>(rng()));
  return s;
}

void AddRandom(std::mt19937& rng, Tree* t, int count) {
  for (int i = 0; i < count; ++i) {
    // Pick a parent: the root or an existing directory.
    std::vector<std::string> dirs = {""};
    for (auto& [p, n] : *t)
      if (n.kind == K::kDir) dirs.push_back(p);
    std::string parent = dirs[rng() % dirs.size()];
    std::string name = kNames[rng() % (sizeof kNames / sizeof *kNames)];
    std::string path = parent.empty() ? name : parent + "/" + name;
    if (t->count(path)) continue;
    Node n;
    int k = static_cast<int>(rng() % 10);
    if (k < 6) {
      n.kind = K::kFile;
      size_t len = rng() % 4 == 0 ? 0 : (rng() % 3 == 0 ? rng() % 300000 : rng() % 2000);
      n.content = RandomBytes(rng, len, rng() % 2);
      n.mode = std::vector<mode_t>{0644, 0600, 0755, 0444, 0640}[rng() % 5];
    } else if (k < 9) {
      n.kind = K::kDir;
      n.mode = std::vector<mode_t>{0755, 0700, 0750, 0555}[rng() % 4];
    } else {
      n.kind = K::kLink;
      n.content = std::vector<std::string>{"a", "../b.txt", "/etc/passwd", "no/such/target", "deep/x"}[rng() % 5];
      n.mode = 0777;
    }
    n.mtime = 1700000000 + static_cast<int64_t>(rng() % 100000);
    (*t)[path] = n;
  }
}

void RemoveSubtree(Tree* t, const std::string& path) {
  for (auto it = t->begin(); it != t->end();) {
    if (it->first == path || it->first.rfind(path + "/", 0) == 0)
      it = t->erase(it);
    else
      ++it;
  }
}

// New tree = old tree with random edits of every kind.
Tree Mutate(std::mt19937& rng, Tree t) {
  std::vector<std::string> paths;
  for (auto& [p, n] : t) paths.push_back(p);
  for (const auto& p : paths) {
    if (!t.count(p)) continue;
    Node& n = t[p];
    switch (rng() % 12) {
      case 0: RemoveSubtree(&t, p); break;
      case 1:
        if (n.kind == K::kFile) {  // insert bytes: shifts the rest
          size_t at = n.content.empty() ? 0 : rng() % n.content.size();
          n.content.insert(at, RandomBytes(rng, 1 + rng() % 100, true));
          n.mtime += 7;
        }
        break;
      case 2:
        if (n.kind == K::kFile && !n.content.empty()) {  // delete bytes
          size_t at = rng() % n.content.size();
          n.content.erase(at, 1 + rng() % 200);
          n.mtime += 7;
        }
        break;
      case 3:
        if (n.kind == K::kFile) {  // overwrite in place, same size
          for (size_t i = 0; i < n.content.size(); i += 1 + rng() % 5000) n.content[i] ^= 0x5a;
          n.mtime += 9;
        }
        break;
      case 4:
        if (n.kind != K::kLink) n.mode = n.kind == K::kDir ? 0711 : 0664;
        break;
      case 5:
        if (n.kind == K::kFile) n.mtime += 3;  // touch
        break;
      case 6:  // a file becomes a directory (with a child), a directory becomes a file
        if (n.kind == K::kFile) {
          n = Node{K::kDir, "", 0755, 1700000001};
          t[p + "/child"] = Node{K::kFile, "child of " + p, 0644, 1700000002};
        } else if (n.kind == K::kDir) {
          RemoveSubtree(&t, p);
          t[p] = Node{K::kFile, "was a directory", 0644, 1700000003};
        }
        break;
      case 7:
        if (n.kind == K::kLink) n.content += "-retargeted";
        break;
      default: break;
    }
  }
  AddRandom(rng, &t, static_cast<int>(rng() % 6));
  return t;
}

void Materialize(const Tree& t, const std::string& root) {
  test::MakeDirs(root);
  for (auto& [p, n] : t) {
    std::string full = root + "/" + p;
    if (n.kind == K::kDir) {
      ASSERT_EQ(::mkdir(full.c_str(), 0700), 0) << full;
    } else if (n.kind == K::kLink) {
      ASSERT_EQ(::symlink(n.content.c_str(), full.c_str()), 0) << full;
    } else {
      test::WriteFile(full, n.content, n.mode);
      struct timespec ts[2] = {{n.mtime, 0}, {n.mtime, 0}};
      ASSERT_EQ(::utimensat(AT_FDCWD, full.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
    }
  }
  // Directory modes last, deepest first, so read-only directories can be filled.
  for (auto it = t.rbegin(); it != t.rend(); ++it)
    if (it->second.kind == K::kDir) ::chmod((root + "/" + it->first).c_str(), it->second.mode);
}

Status ApplyOne(apply::ContentRoot* root, const std::string& file) {
  apply::Report report;
  report.file = file;
  apply::ApplyOptions opts;
  opts.allow_unsigned = true;  // the pipeline's properties, not signatures (tests/security)
  return apply::ApplyFile(root, file, opts, &report);
}

// Replicates `old_dir` onto a fresh root, then pushes the delta to `new_dir`.
// Returns "" when the live tree ends up equal to new_dir, else what went wrong.
// format: 0 the default (3), 2 (v2 body, content hashes), 1 (no chunk table):
// what servers that read no newer format are sent, which cm-apply still reads.
std::string CheckPipeline(const std::string& old_dir, const std::string& new_dir, bool checksum, const TempDir& d,
                          int format = 0) {
  std::string root_dir = d / "root";
  test::MakeDirs(root_dir);
  pack::PackOptions po;
  po.output = d / "r.cma";
  po.type = pack::Type::kReplicate;
  po.serial = 1;
  po.job_id = "rep";
  auto rep = pack::PackTree(old_dir, po);
  if (!rep.ok()) return "replicate: " + rep.status().message();
  po.type = pack::Type::kCommit;
  po.serial = 2;
  po.output = d / "rc.cma";
  if (!pack::PackControl(po).ok()) return "pack commit failed";

  auto root = apply::ContentRoot::Open(root_dir, {});
  if (!root.ok()) return "open root: " + root.status().message();
  for (auto f : {d / "r.cma", d / "rc.cma"}) {
    Status st = ApplyOne(root->get(), f);
    if (!st.ok()) return ("apply " + f + ": " + st.message());
  }
  test::ManifestOptions mo;
  mo.dir_mtimes = true;
  if (test::Manifest(root_dir + "/current", mo) != test::Manifest(old_dir, mo)) return "replicated tree differs from old";
  // old -> new, then new -> old again (a file that became a directory turns back).
  uint64_t serial = 3;
  const std::string steps[][2] = {{old_dir, new_dir}, {new_dir, old_dir}};
  for (const auto& step : steps) {
    const std::string& from = step[0];
    const std::string& to = step[1];
    StringSink table_bytes;
    delta::DeltaTableWriter table(&table_bytes);
    delta::TreeDiffOptions dopt;
    dopt.checksum = checksum;
    auto diff = delta::DiffTrees(from, to, dopt, &table, nullptr);
    if (!diff.ok()) return "diff: " + diff.status().message();
    StringSource table_src(table_bytes.data());
    po.type = pack::Type::kPublish;
    po.serial = serial;
    po.job_id = "pub" + std::to_string(serial);
    po.output = d / ("p" + std::to_string(serial) + ".cma");
    po.max_size = 64 * 1024;  // force splits now and then
    if (format == 2) po.version = 2;
    if (format == 1) po.chunk_size = 0;
    auto pub = pack::PackDeltaTable(&table_src, to, po);
    if (!pub.ok()) return "pack: " + pub.status().message();
    serial += pub->files.size();
    po.type = pack::Type::kCommit;
    po.serial = serial++;
    po.output = d / ("c" + std::to_string(serial) + ".cma");
    if (!pack::PackControl(po).ok()) return "pack commit failed";
    for (const auto& f : pub->files) {
      Status st = ApplyOne(root->get(), f.path);
      if (!st.ok()) return "apply " + f.path + ": " + st.message();
    }
    Status st = ApplyOne(root->get(), po.output);
    if (!st.ok()) return "commit: " + st.message();
    std::string got = test::Manifest(root_dir + "/current", mo);
    std::string want = test::Manifest(to, mo);
    if (got != want) return "live tree differs from " + to + "\n--- got\n" + got + "--- want\n" + want;
  }
  return "";
}

RC_GTEST_PROP(Pipeline, ApplyingThePackedDeltaToOldYieldsNew, ()) {
  const auto seed = *rc::gen::arbitrary<uint32_t>();
  const bool checksum = *rc::gen::arbitrary<bool>();
  RC_TAG(checksum);
  std::mt19937 rng(seed);
  Tree old_tree;
  AddRandom(rng, &old_tree, 4 + static_cast<int>(rng() % 25));
  Tree new_tree = Mutate(rng, old_tree);
  TempDir d;
  Materialize(old_tree, d / "old");
  Materialize(new_tree, d / "new");
  std::string err = CheckPipeline(d / "old", d / "new", checksum, d);
  if (!err.empty()) RC_FAIL(err);
}

// Moves (an added file made from a removed one of the same name), one base
// used twice, and files whose mtime alone changed; both ways.
TEST(Pipeline, MovedFilesAndMtimeOnlyChanges) {
  TempDir d;
  std::string body;
  for (int i = 0; i < 300; ++i) body += "line " + std::to_string(i) + " of a source file that moves\n";
  test::WriteFile(d / "old/src/display/Node.js", body);
  test::WriteFile(d / "old/src/display/keep.txt", "keep");
  test::WriteFile(d / "old/src/other/Gone.js", body + "gone");
  test::WriteFile(d / "new/examples/display/Node.js", "// moved\n" + body);
  test::WriteFile(d / "new/examples/copy/Node.js", body + "// and copied\n");
  test::WriteFile(d / "new/src/display/keep.txt", "keep");
  test::MakeDirs(d / "new/src/other");
  std::string out;
  test::Run("find '" + d / "old" + "' -depth -exec touch -h -d @1600000000 {} +", &out);
  test::Run("find '" + d / "new" + "' -depth -exec touch -h -d @1700000000 {} +", &out);
  EXPECT_EQ(CheckPipeline(d / "old", d / "new", false, d), "");
}

// Renames and copies under other names (identical bases), both ways.
TEST(Pipeline, RenamedAndCopiedFilesTravelAsReferences) {
  TempDir d;
  std::string body;
  for (int i = 0; i < 300; ++i) body += "line " + std::to_string(i) + " of a file renamed and copied\n";
  test::WriteFile(d / "old/lib/util.py", body);
  test::WriteFile(d / "old/lib/keep.py", body + "# keep\n");
  test::WriteFile(d / "new/lib/helpers.py", body);
  test::WriteFile(d / "new/lib/keep.py", body + "# keep\n");
  test::WriteFile(d / "new/vendor/keep-copy.py", body + "# keep\n");
  std::string out;
  test::Run("find '" + d / "old" + "' -depth -exec touch -h -d @1600000000 {} +", &out);
  test::Run("find '" + d / "new" + "' -depth -exec touch -h -d @1700000000 {} +", &out);
  EXPECT_EQ(CheckPipeline(d / "old", d / "new", false, d), "");
}

// A release where every file and directory got one new mtime (a tarball's):
// the mtime-only changes travel as TOUCH runs, across parts (64 KiB cap), and
// the live tree ends with every mtime of new, directories included.
TEST(Pipeline, AReleaseWhereEveryMtimeMovedTravelsAsRuns) {
  TempDir d;
  std::mt19937 rng(7);
  for (int i = 0; i < 40; ++i) {
    const std::string rel = "pkg/" + std::string(1, static_cast<char>('a' + i % 5)) + "/f" + std::to_string(i);
    const std::string body = RandomBytes(rng, 200 + (i % 7) * 9000, true);
    test::WriteFile(d / ("old/" + rel), body);
    test::WriteFile(d / ("new/" + rel), i % 9 == 0 ? body + "changed" : body);
  }
  ASSERT_EQ(::symlink("f1", (d / "new/pkg/b/link").c_str()), 0);
  ASSERT_EQ(::symlink("f1", (d / "old/pkg/b/link").c_str()), 0);
  std::string out;
  test::Run("find '" + d / "old" + "' -depth -exec touch -h -d @1600000000 {} +", &out);
  test::Run("find '" + d / "new" + "' -depth -exec touch -h -d @1700000000 {} +", &out);
  test::Run("touch -d @1700000555 '" + d / "new/pkg/c/f12" + "'", &out);  // splits a run
  auto s = delta::DiffTrees(d / "old", d / "new", {}, nullptr, nullptr);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->time_runs, 2u);
  EXPECT_EQ(s->meta, 1u);
  EXPECT_EQ(CheckPipeline(d / "old", d / "new", false, d), "");
}

// Assignments of the older formats (written by the old encoders, as cm-pack
// --format 2 and --chunk-size 0 do) still apply: patches, moves, runs.
TEST(Pipeline, OlderFormatsStillApply) {
  for (int format : {1, 2}) {
    SCOPED_TRACE("format " + std::to_string(format));
    TempDir d;
    std::string body;
    for (int i = 0; i < 300; ++i) body += "line " + std::to_string(i) + " of a file that changes\n";
    for (int i = 0; i < 8; ++i) {
      test::WriteFile(d / ("old/d/f" + std::to_string(i)), body + std::to_string(i));
      test::WriteFile(d / ("new/d/f" + std::to_string(i)), i % 3 ? body + std::to_string(i) : body + "edited");
    }
    test::WriteFile(d / "old/src/Node.js", body);
    test::WriteFile(d / "new/examples/Node.js", "// moved\n" + body);
    std::string out;
    test::Run("find '" + d / "old" + "' -depth -exec touch -h -d @1600000000 {} +", &out);
    test::Run("find '" + d / "new" + "' -depth -exec touch -h -d @1700000000 {} +", &out);
    EXPECT_EQ(CheckPipeline(d / "old", d / "new", false, d, format), "");
  }
}

TEST(Pipeline, EmptyToEmptyAndBack) {
  TempDir d;
  test::MakeDirs(d / "old");
  test::MakeDirs(d / "new");
  test::WriteFile(d / "old/only-in-old", "x");
  EXPECT_EQ(CheckPipeline(d / "old", d / "new", false, d), "");
}

}  // namespace
}  // namespace cm
