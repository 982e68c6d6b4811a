#include "delta/tree_diff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "patch_helpers.h"
#include "support/test_util.h"
#include "util/hash.h"

namespace cm::delta {
namespace {

using cm::test::MakeDirs;
using cm::test::ReadFile;
using cm::test::RemoveTree;
using cm::test::TempDir;
using cm::test::WriteFile;

class Collector : public DiffObserver {
 public:
  Status OnEntry(const DeltaEntry& e, const EntryDetails& d) override {
    entries.push_back(e);
    details.push_back(d);
    return Status::Ok();
  }
  void OnWarning(const std::string& path, const std::string& what) override {
    warnings.push_back(path + ": " + what);
  }
  std::vector<DeltaEntry> entries;
  std::vector<EntryDetails> details;
  std::vector<std::string> warnings;
};

// "A f", "D d/", "M f", "m d/" lines like cm-delta --list.
std::vector<std::string> Lines(const std::vector<DeltaEntry>& es) {
  std::vector<std::string> out;
  for (const auto& e : es) {
    if (e.op == Op::kTimes) {
      out.push_back("t " + e.path + ".." + e.last_path + " " + std::to_string(e.size));
      continue;
    }
    char tag = e.op == Op::kAdd ? 'A' : e.op == Op::kRemove ? 'D' : e.op == Op::kModify ? 'M' : 'm';
    out.push_back(std::string(1, tag) + " " + e.path + (e.kind == Kind::kDir ? "/" : ""));
  }
  return out;
}

void SetMtime(const std::string& path, int64_t sec, long nsec = 0) {
  struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

// Gives every entry of both trees the same fixed mtime, children first, so
// that only deliberate changes show.
void PinMtimes(const std::string& root) {
  std::string out;
  cm::test::Run("find '" + root + "' -depth -exec touch -h -d @1600000000 {} +", &out);
}

class TreeDiffTest : public ::testing::Test {
 public:
  std::string OldPath(const std::string& rel) { return Old(rel); }
  std::string NewPath(const std::string& rel) { return New(rel); }

 protected:
  std::string Old(const std::string& rel = "") { return rel.empty() ? t_ / "old" : t_ / ("old/" + rel); }
  std::string New(const std::string& rel = "") { return rel.empty() ? t_ / "new" : t_ / ("new/" + rel); }
  void SetUp() override {
    MakeDirs(Old());
    MakeDirs(New());
  }
  // Runs the diff; returns the listing and keeps the table bytes.
  std::vector<std::string> Diff(TreeDiffOptions opts = {}) {
    StringSink sink;
    DeltaTableWriter w(&sink);
    collector_ = Collector();
    auto r = DiffTrees(Old(), New(), opts, &w, &collector_);
    EXPECT_TRUE(r.ok()) << r.status().message();
    table_ = sink.data();
    return Lines(collector_.entries);
  }
  // The instruction stream of the last table's first entry ("" if none).
  std::string FirstDeltaStream() {
    StringSource src(table_);
    DeltaTableReader r(&src);
    DeltaEntry e;
    std::string stream;
    if (!r.Begin().ok() || !r.Next(&e).ok()) return stream;
    std::vector<char> buf(1 << 20);
    for (auto n = r.ReadDeltaBytes(buf.data(), buf.size()); n.ok() && *n > 0;
         n = r.ReadDeltaBytes(buf.data(), buf.size()))
      stream.append(buf.data(), *n);
    return stream;
  }
  TempDir t_;
  Collector collector_;
  std::string table_;
};

TEST_F(TreeDiffTest, IdenticalTreesGiveNoEntries) {
  WriteFile(Old("a/b"), "same");
  WriteFile(New("a/b"), "same");
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_TRUE(Diff().empty());
}

TEST_F(TreeDiffTest, AddRemoveModifyMeta) {
  WriteFile(Old("keep"), "keep");
  WriteFile(Old("gone"), "gone");
  WriteFile(Old("changed"), "old content");
  WriteFile(Old("chmod"), "same");
  WriteFile(New("keep"), "keep");
  WriteFile(New("added"), "added");
  WriteFile(New("changed"), "new content!");
  WriteFile(New("chmod"), "same", 0600);
  PinMtimes(Old());
  PinMtimes(New());
  SetMtime(New("changed"), 1700000000);
  auto lines = Diff();
  EXPECT_EQ(lines, (std::vector<std::string>{"A added", "M changed", "m chmod", "D gone"}));
  const auto& es = collector_.entries;
  EXPECT_EQ(es[0].hash, HashBytes("added", 5));
  EXPECT_EQ(es[0].size, 5u);
  EXPECT_EQ(es[1].hash, HashBytes("new content!", 12));
  EXPECT_EQ(es[1].mtime_ns, 1700000000ll * 1000000000);
  EXPECT_EQ(es[2].mode, 0600u);
  EXPECT_EQ(es[3].op, Op::kRemove);
}

TEST_F(TreeDiffTest, SameContentNewMtimeIsMetaOnly) {
  WriteFile(Old("f"), "identical bytes");
  WriteFile(New("f"), "identical bytes");
  PinMtimes(Old());
  PinMtimes(New());
  SetMtime(New("f"), 1700000000, 5);
  EXPECT_EQ(Diff(), std::vector<std::string>{"m f"});
  EXPECT_EQ(collector_.entries[0].mtime_ns, 1700000000ll * 1000000000 + 5);
}

TEST_F(TreeDiffTest, NoTimesIgnoresMtimeOnlyChangesButStillComparesBytes) {
  WriteFile(Old("same"), "identical bytes");
  WriteFile(New("same"), "identical bytes");
  WriteFile(Old("edited"), "old bytes, same size");
  WriteFile(New("edited"), "new bytes, same size");
  WriteFile(Old("chmod"), "x");
  WriteFile(New("chmod"), "x", 0600);
  MakeDirs(Old("d"));
  MakeDirs(New("d"));
  PinMtimes(Old());
  PinMtimes(New());
  SetMtime(New("same"), 1700000000);
  SetMtime(New("edited"), 1700000000);
  SetMtime(New("d"), 1700000000);
  TreeDiffOptions o;
  o.times = false;
  EXPECT_EQ(Diff(o), (std::vector<std::string>{"m chmod", "M edited"}));
  for (const auto& e : collector_.entries) EXPECT_EQ(e.mtime_ns, 0) << e.path;
  // The table says so.
  StringSource src(table_);
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  EXPECT_EQ(r.flags() & kTableFlagNoTimes, kTableFlagNoTimes);
  // With times (the default) the same trees give three more META entries.
  EXPECT_EQ(Diff(), (std::vector<std::string>{"m chmod", "m d/", "M edited", "m same"}));
}

// A release where every file got one new mtime: the mtime-only changes are
// runs (first path, last path, count, mtime) at the end of the table, not a
// META entry each. A file of another mtime splits the run; a symlink does not
// (symlink mtimes are not carried); content changes keep their entries.
TEST_F(TreeDiffTest, MtimeOnlyChangesOfOneNewMtimeAreRunsAtTheEnd) {
  for (const char* f : {"a/1", "a/2", "a/3", "b/1", "b/2", "c/1", "c/2", "c/3", "c/4"}) {
    WriteFile(Old(f), std::string("same ") + f);
    WriteFile(New(f), std::string("same ") + f);
  }
  WriteFile(Old("a/edited"), "old content");
  WriteFile(New("a/edited"), "new content, longer");
  ASSERT_EQ(::symlink("1", New("b/link").c_str()), 0);
  ASSERT_EQ(::symlink("1", Old("b/link").c_str()), 0);
  PinMtimes(Old());
  std::string out;
  cm::test::Run("find '" + New() + "' -depth -exec touch -h -d @1700000000 {} +", &out);
  SetMtime(New("b/2"), 1700000555);  // splits the run: a/..b/1, then c..c/4
  auto lines = Diff();
  EXPECT_EQ(lines, (std::vector<std::string>{"M a/edited", "m b/2", "t a..b/1 7", "t c..c/4 5"}));
  const DeltaEntry& run = collector_.entries[2];
  EXPECT_EQ(run.mtime_ns, 1700000000ll * 1000000000);
  // The table carries them (flag set, entries read back).
  StringSource src(table_);
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  EXPECT_EQ(r.flags() & kTableFlagTimeRuns, kTableFlagTimeRuns);
  std::vector<DeltaEntry> back;
  DeltaEntry e;
  for (;;) {
    auto more = r.Next(&e);
    ASSERT_TRUE(more.ok()) << more.status().message();
    if (!*more) break;
    back.push_back(e);
  }
  EXPECT_EQ(Lines(back), lines);

  // Off: a META entry per file and directory, no flag.
  TreeDiffOptions o;
  o.time_runs = false;
  lines = Diff(o);
  EXPECT_EQ(lines.size(), 13u);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "m a/1"), 1);
  StringSource src2(table_);
  DeltaTableReader r2(&src2);
  ASSERT_TRUE(r2.Begin().ok());
  EXPECT_EQ(r2.flags() & kTableFlagTimeRuns, 0);
  // With excludes (the server's tree holds excluded paths a run would count)
  // and without times there are no runs either.
  o = {};
  o.excludes = {"nothing-matches"};
  EXPECT_EQ(Diff(o).size(), 13u);
  o = {};
  o.times = false;
  EXPECT_EQ(Diff(o), std::vector<std::string>{"M a/edited"});
}

TEST_F(TreeDiffTest, FewMtimeOnlyChangesStayMetaEntries) {
  for (const char* f : {"1", "2", "3"}) {
    WriteFile(Old(f), "x");
    WriteFile(New(f), "x");
  }
  PinMtimes(Old());
  PinMtimes(New());
  for (const char* f : {"1", "2", "3"}) SetMtime(New(f), 1700000000);
  EXPECT_EQ(Diff(), (std::vector<std::string>{"m 1", "m 2", "m 3"}));
}

TEST_F(TreeDiffTest, AMovedFileIsADeltaAgainstItsOldPlaceWhoseRemovalComesLast) {
  std::string body;
  for (int i = 0; i < 400; ++i) body += "export function f" + std::to_string(i) + "() { return " + std::to_string(i) + "; }\n";
  WriteFile(Old("src/nodes/Moved.js"), body);
  WriteFile(Old("src/nodes/Stays.js"), "stays");
  WriteFile(Old("src/nodes/Gone.js"), body + "unrelated");
  WriteFile(New("examples/tsl/Moved.js"), "// moved\n" + body);
  WriteFile(New("src/nodes/Stays.js"), "stays");
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_EQ(Diff(), (std::vector<std::string>{"A examples/", "A examples/tsl/", "A examples/tsl/Moved.js",
                                              "D src/nodes/Gone.js", "D src/nodes/Moved.js"}));
  const DeltaEntry& moved = collector_.entries[2];
  EXPECT_EQ(moved.encoding, Encoding::kDelta);
  EXPECT_EQ(moved.base_path, "src/nodes/Moved.js");
  EXPECT_EQ(moved.base_hash, HashBytes(body.data(), body.size()));
  EXPECT_LT(collector_.details[2].delta_bytes, 100u);
  // Without moves the file is whole and the removals keep their place.
  TreeDiffOptions o;
  o.moves = false;
  Diff(o);
  EXPECT_EQ(collector_.entries[2].encoding, Encoding::kWhole);
}

// An added file whose bytes an old file holds under another name is one
// COPY against it: a renamed file (its removal held back to the end), a copy
// of a kept file; a kept file the table changed before the added path is no
// base, nor is a file below the size worth it.
TEST_F(TreeDiffTest, AnAddedFileIdenticalToAnOldOneUnderAnotherNameIsAReference) {
  std::string body, other;
  for (int i = 0; i < 200; ++i) body += "line " + std::to_string(i) + " of a file that is renamed\n";
  for (int i = 0; i < 200; ++i) other += "LINE " + std::to_string(i) + " of a file that is edited\n";
  WriteFile(Old("a/edited.txt"), other);
  WriteFile(Old("a/kept.txt"), body + "kept");
  WriteFile(Old("old-name.txt"), body);
  WriteFile(Old("small"), "tiny");
  WriteFile(New("a/edited.txt"), other + "more");
  WriteFile(New("a/kept.txt"), body + "kept");
  WriteFile(New("b/copy-of-kept.txt"), body + "kept");
  WriteFile(New("b/copy-of-edited-before.txt"), other);
  WriteFile(New("b/new-name.txt"), body);
  WriteFile(New("b/small-copy"), "tiny");
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_EQ(Diff(), (std::vector<std::string>{"M a/edited.txt", "A b/", "A b/copy-of-edited-before.txt",
                                              "A b/copy-of-kept.txt", "A b/new-name.txt", "A b/small-copy",
                                              "D small", "D old-name.txt"}));
  auto entry = [&](const std::string& p) -> const DeltaEntry& {
    for (const auto& e : collector_.entries)
      if (e.path == p && e.op == Op::kAdd) return e;
    ADD_FAILURE() << p;
    return collector_.entries[0];
  };
  EXPECT_EQ(entry("b/copy-of-edited-before.txt").encoding, Encoding::kWhole);  // a/edited.txt changed first
  const DeltaEntry& copy = entry("b/copy-of-kept.txt");
  EXPECT_EQ(copy.encoding, Encoding::kDelta);
  EXPECT_EQ(copy.base_path, "a/kept.txt");
  EXPECT_EQ(copy.base_hash, copy.hash);
  const DeltaEntry& renamed = entry("b/new-name.txt");
  EXPECT_EQ(renamed.encoding, Encoding::kDelta);
  EXPECT_EQ(renamed.base_path, "old-name.txt");
  EXPECT_EQ(renamed.base_hash, HashBytes(body.data(), body.size()));
  EXPECT_EQ(entry("b/small-copy").encoding, Encoding::kWhole);
  for (size_t i = 0; i < collector_.entries.size(); ++i)
    if (collector_.entries[i].path == "b/new-name.txt") {
      EXPECT_LT(collector_.details[i].delta_bytes, 16u);
    }
  TreeDiffOptions o;
  o.moves = false;
  Diff(o);
  for (const auto& e : collector_.entries) EXPECT_EQ(e.base_path, "") << e.path;
}

// A rebuilt binary: `words` words, every `every`-th shifted by `shift` (a
// relocation), written as OLD/name and NEW/name, NEW's mtime new.
void RebuiltBinary(TreeDiffTest* t, const std::string& name, int words, int every, uint32_t shift, uint32_t seed,
                   std::string* old_bin, std::string* new_bin) {
  std::mt19937 rng(seed);
  for (int i = 0; i < words; ++i) {
    uint32_t w = rng() % 4096;
    old_bin->append(reinterpret_cast<const char*>(&w), 4);
    w += (i % every == 0) ? shift : 0;
    new_bin->append(reinterpret_cast<const char*>(&w), 4);
  }
  WriteFile(t->OldPath(name), *old_bin);
  WriteFile(t->NewPath(name), *new_bin);
  PinMtimes(t->OldPath(""));
  PinMtimes(t->NewPath(""));
  SetMtime(t->NewPath(name), 1700000000);
}

// A rebuilt binary: the same words, many of them shifted by a little.
TEST_F(TreeDiffTest, ARebuiltBinaryIsAZstdDeltaThatApplies) {
  std::string old_bin, new_bin;
  RebuiltBinary(this, "lib.so", 20000, 3, 16, 5, &old_bin, &new_bin);
  EXPECT_EQ(Diff(), std::vector<std::string>{"M lib.so"});
  ASSERT_EQ(collector_.entries[0].encoding, Encoding::kDelta);
  // The stream is one ZSTD instruction; applying it gives the new bytes.
  std::string stream = FirstDeltaStream();
  ASSERT_FALSE(stream.empty());
  EXPECT_EQ(static_cast<uint8_t>(stream[0]), kOpZstd);
  auto out = testing::Apply(old_bin, stream, new_bin.size());
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, new_bin);
  // Without zstd deltas it is COPY/INSERT again.
  TreeDiffOptions o;
  o.zstd_deltas = false;
  Diff(o);
  if (collector_.entries[0].encoding == Encoding::kDelta) {
    std::string plain = FirstDeltaStream();
    ASSERT_FALSE(plain.empty());
    EXPECT_NE(static_cast<uint8_t>(plain[0]), kOpZstd);
  }
}

// Above 1 MiB too (level 9 there): a 6 MiB rebuilt library is one ZSTD
// instruction, much smaller than the file, that applies.
TEST_F(TreeDiffTest, ALargeRebuiltBinaryIsAZstdDeltaToo) {
  std::string old_bin, new_bin;
  RebuiltBinary(this, "big.so", (6 << 20) / 4, 5, 32, 9, &old_bin, &new_bin);
  EXPECT_EQ(Diff(), std::vector<std::string>{"M big.so"});
  ASSERT_EQ(collector_.entries[0].encoding, Encoding::kDelta);
  std::string stream = FirstDeltaStream();
  ASSERT_FALSE(stream.empty());
  EXPECT_EQ(static_cast<uint8_t>(stream[0]), kOpZstd);
  EXPECT_LT(stream.size(), new_bin.size() / 2);
  auto out = testing::Apply(old_bin, stream, new_bin.size());
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_TRUE(*out == new_bin);
}

TEST_F(TreeDiffTest, ChecksumCatchesSameSizeSameMtimeChange) {
  WriteFile(Old("f"), "aaaa");
  WriteFile(New("f"), "bbbb");
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_TRUE(Diff().empty());  // size+mtime say unchanged
  TreeDiffOptions o;
  o.checksum = true;
  EXPECT_EQ(Diff(o), std::vector<std::string>{"M f"});
  // The flag is recorded in the table.
  StringSource src(table_);
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  EXPECT_EQ(r.flags(), kTableFlagChecksum);
}

TEST_F(TreeDiffTest, DirectoryRemoveHidesChildrenAndComesInOrder) {
  WriteFile(Old("d/x"), "x");
  WriteFile(Old("d/sub/y"), "y");
  WriteFile(Old("e"), "e");
  WriteFile(New("e"), "e");
  WriteFile(New("c/new"), "n");
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_EQ(Diff(), (std::vector<std::string>{"A c/", "A c/new", "D d/"}));
}

TEST_F(TreeDiffTest, KindChangesAreRemoveThenAdd) {
  WriteFile(Old("f2d"), "file");
  WriteFile(New("f2d/child"), "c");
  WriteFile(Old("d2f/child"), "c");
  WriteFile(New("d2f"), "file");
  WriteFile(Old("f2l"), "file");
  ASSERT_EQ(::symlink("x", New("f2l").c_str()), 0);
  ASSERT_EQ(::symlink("x", Old("l2f").c_str()), 0);
  WriteFile(New("l2f"), "now a file");
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_EQ(Diff(), (std::vector<std::string>{"D d2f/", "A d2f", "D f2d", "A f2d/", "A f2d/child", "D f2l",
                                              "A f2l", "D l2f", "A l2f"}));
}

TEST_F(TreeDiffTest, FileToDirToFileRoundTrip) {
  // Version 1: x is a file; version 2: x is a dir; version 3: a file again.
  WriteFile(Old("x"), "v1");
  WriteFile(New("x/inner"), "v2");
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_EQ(Diff(), (std::vector<std::string>{"D x", "A x/", "A x/inner"}));
  RemoveTree(Old());
  ASSERT_EQ(::rename(New().c_str(), Old().c_str()), 0);
  WriteFile(New("x"), "v3");
  PinMtimes(New());
  EXPECT_EQ(Diff(), (std::vector<std::string>{"D x/", "A x"}));
}

TEST_F(TreeDiffTest, SymlinkRetargetIsModify) {
  ASSERT_EQ(::symlink("one", Old("l").c_str()), 0);
  ASSERT_EQ(::symlink("two", New("l").c_str()), 0);
  ASSERT_EQ(::symlink("same", Old("s").c_str()), 0);
  ASSERT_EQ(::symlink("same", New("s").c_str()), 0);
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_EQ(Diff(), std::vector<std::string>{"M l"});
  EXPECT_EQ(collector_.entries[0].kind, Kind::kSymlink);
  EXPECT_EQ(collector_.entries[0].link_target, "two");
}

TEST_F(TreeDiffTest, EmptyDirectories) {
  MakeDirs(Old("gone/empty"));
  MakeDirs(New("new/empty"));
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_EQ(Diff(), (std::vector<std::string>{"D gone/", "A new/", "A new/empty/"}));
}

TEST_F(TreeDiffTest, DirectoryMetadataChangeIsMeta) {
  MakeDirs(Old("d"));
  MakeDirs(New("d"));
  PinMtimes(Old());
  PinMtimes(New());
  ASSERT_EQ(::chmod(New("d").c_str(), 0700), 0);
  EXPECT_EQ(Diff(), std::vector<std::string>{"m d/"});
  EXPECT_EQ(collector_.entries[0].mode, 0700u);
}

TEST_F(TreeDiffTest, OddNames) {
  std::vector<std::string> names = {"with space", "new\nline", "\xe2\x9c\x93 unicode", "-leading-dash",
                                    "--", "tab\there", "back\\slash", ".hidden"};
  for (const auto& n : names) WriteFile(New(n), n);
  PinMtimes(New());
  auto lines = Diff();
  std::vector<std::string> want;
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  for (const auto& n : sorted) want.push_back("A " + n);
  EXPECT_EQ(lines, want);
  // And they survive the table.
  StringSource src(table_);
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  DeltaEntry e;
  size_t i = 0;
  while (*r.Next(&e)) EXPECT_EQ(e.path, sorted[i++]);
  EXPECT_EQ(i, sorted.size());
}

TEST_F(TreeDiffTest, ExcludesApplyToBothTrees) {
  WriteFile(Old("build/out.o"), "o");
  WriteFile(Old("src/a.c"), "a");
  WriteFile(Old("src/a.o"), "o");
  WriteFile(New("src/a.c"), "a changed");
  WriteFile(New("src/b.o"), "o");
  WriteFile(New("cache/x"), "x");
  PinMtimes(Old());
  PinMtimes(New());
  TreeDiffOptions o;
  o.excludes = {"*.o", "build", "cache/"};
  EXPECT_EQ(Diff(o), std::vector<std::string>{"M src/a.c"});
}

TEST_F(TreeDiffTest, SpecialFilesAreSkippedWithOneWarningEach) {
  WriteFile(New("f"), "f");
  ASSERT_EQ(::mkfifo(New("fifo").c_str(), 0644), 0);
  ASSERT_EQ(::mkfifo(Old("oldfifo").c_str(), 0644), 0);
  PinMtimes(Old());
  PinMtimes(New());
  EXPECT_EQ(Diff(), std::vector<std::string>{"A f"});
  ASSERT_EQ(collector_.warnings.size(), 2u);
  EXPECT_NE(collector_.warnings[0].find("skipping fifo"), std::string::npos);
}

TEST_F(TreeDiffTest, MissingOldTree) {
  RemoveTree(Old());
  WriteFile(New("a"), "a");
  Collector c;
  auto r = DiffTrees(Old(), New(), {}, nullptr, &c);
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  TreeDiffOptions o;
  o.old_may_be_missing = true;
  EXPECT_EQ(Diff(o), std::vector<std::string>{"A a"});
}

TEST_F(TreeDiffTest, MissingNewTreeIsNotFound) {
  RemoveTree(New());
  auto r = DiffTrees(Old(), New(), {}, nullptr, nullptr);
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST_F(TreeDiffTest, EmptyOldMeansEverythingIsNew) {
  WriteFile(New("d/f"), "f");
  ASSERT_EQ(::symlink("f", New("d/l").c_str()), 0);
  PinMtimes(New());
  EXPECT_EQ(Diff(), (std::vector<std::string>{"A d/", "A d/f", "A d/l"}));
}

TEST_F(TreeDiffTest, ChangedFilesGetDeltasThatApply) {
  std::mt19937_64 rng(42);
  std::string text = testing::RandomText(rng, 400);
  std::string edited = text.substr(0, 3000) + "an inserted line\n" + text.substr(3100);
  std::string bin = testing::RandomBytes(rng, 1 << 20);
  std::string bin2 = "prefix" + bin.substr(0, 500000) + testing::RandomBytes(rng, 4096) + bin.substr(504096);
  WriteFile(Old("text"), text);
  WriteFile(New("text"), edited);
  WriteFile(Old("bin"), bin);
  WriteFile(New("bin"), bin2);
  WriteFile(Old("unrelated"), testing::RandomBytes(rng, 100000));
  WriteFile(New("unrelated"), testing::RandomBytes(rng, 100000));
  WriteFile(Old("emptied"), "was not empty");
  WriteFile(New("emptied"), "");
  PinMtimes(Old());
  PinMtimes(New());
  SetMtime(New("text"), 1700000000);
  SetMtime(New("bin"), 1700000000);
  SetMtime(New("unrelated"), 1700000000);
  SetMtime(New("emptied"), 1700000000);
  EXPECT_EQ(Diff(), (std::vector<std::string>{"M bin", "M emptied", "M text", "M unrelated"}));

  // Read the table back and apply every DELTA to its old file.
  StringSource src(table_);
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  DeltaEntry e;
  int deltas = 0;
  while (*r.Next(&e)) {
    std::string want = ReadFile(New(e.path));
    EXPECT_EQ(e.hash, HashBytes(want.data(), want.size()));
    EXPECT_EQ(e.size, want.size());
    if (e.encoding != Encoding::kDelta) continue;
    ++deltas;
    std::string base = ReadFile(Old(e.path));
    EXPECT_EQ(e.base_size, base.size());
    EXPECT_EQ(e.base_hash, HashBytes(base.data(), base.size()));
    std::string stream;
    char buf[4096];
    for (;;) {
      auto n = r.ReadDeltaBytes(buf, sizeof buf);
      ASSERT_TRUE(n.ok());
      if (*n == 0) break;
      stream.append(buf, *n);
    }
    auto out = testing::Apply(base, stream, e.size);
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_TRUE(*out == want) << e.path;
    EXPECT_LT(stream.size(), e.path == "text" ? 64u : 4096u + 64) << e.path;
  }
  EXPECT_EQ(deltas, 2);
  const auto& es = collector_.entries;
  EXPECT_EQ(es[0].encoding, Encoding::kDelta);   // bin
  EXPECT_EQ(es[1].encoding, Encoding::kWhole);   // emptied
  EXPECT_EQ(es[2].encoding, Encoding::kDelta);   // text
  EXPECT_EQ(es[3].encoding, Encoding::kWhole);   // unrelated random data
}

TEST_F(TreeDiffTest, ListingOnlyComputesNoDeltas) {
  std::mt19937_64 rng(1);
  std::string bin = testing::RandomBytes(rng, 100000);
  WriteFile(Old("f"), bin);
  WriteFile(New("f"), bin + "tail");
  TreeDiffOptions o;
  o.listing_only = true;
  Collector c;
  auto r = DiffTrees(Old(), New(), o, nullptr, &c);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(c.entries.size(), 1u);
  EXPECT_EQ(c.entries[0].encoding, Encoding::kWhole);
  EXPECT_EQ(c.entries[0].hash, Hash256{});
  EXPECT_EQ(c.entries[0].size, bin.size() + 4);
}

TEST_F(TreeDiffTest, OutputIsDeterministic) {
  std::mt19937_64 rng(9);
  for (int i = 0; i < 30; ++i) {
    WriteFile(Old("d" + std::to_string(i % 4) + "/f" + std::to_string(i)), testing::RandomText(rng, 50));
    WriteFile(New("d" + std::to_string(i % 5) + "/f" + std::to_string(i)), testing::RandomText(rng, 50));
  }
  Diff();
  std::string first = table_;
  Diff();
  EXPECT_EQ(first, table_);
  EXPECT_GT(first.size(), 100u);
}

TEST_F(TreeDiffTest, SummaryCounts) {
  WriteFile(Old("m"), "old");
  WriteFile(New("m"), "new!");
  WriteFile(New("a"), "a");
  WriteFile(Old("r"), "r");
  PinMtimes(Old());
  PinMtimes(New());
  auto r = DiffTrees(Old(), New(), {}, nullptr, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->entries, 3u);
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(r->removed, 1u);
  EXPECT_EQ(r->modified, 1u);
  EXPECT_EQ(r->whole_files, 1u);
  EXPECT_EQ(r->scanned, 2u);
}

}  // namespace
}  // namespace cm::delta
