// The base of a delta (release_manifest.h): an assignment's BASE is checked on
// the live tree before anything is staged, the staged tree against its result
// manifest, every release keeps its manifest, and verify-live finds what was
// changed behind cm-apply's back.
#include "apply/release_manifest.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/applier.h"
#include "apply/commands.h"
#include "apply/status_view.h"
#include "apply_fixture.h"
#include "pack/assignment_writer.h"
#include "support/test_util.h"

namespace cm::apply {
namespace {

using namespace cm::apply::testing;
using test::ReadFile;
using test::TempDir;

Op Base(const Hash256& manifest, const Hash256& result = {}, const std::string& release = "") {
  Op o;
  o.c.op = pack::Opcode::kBase;
  o.c.base.release = release;
  o.c.base.manifest = manifest;
  o.c.base.result_manifest = result;
  return o;
}

void Write(const std::string& path, pack::Type type, uint64_t serial, const std::string& job, const std::vector<Op>& ops,
           uint32_t part = 1, bool last = true) {
  pack::AssignmentWriter w;
  pack::WriterOptions wo;
  wo.type = type;
  wo.serial = serial;
  wo.job_id = job;
  wo.part = part;
  wo.last_part = last;
  ASSERT_TRUE(w.Open(path, wo).ok());
  for (Op o : ops) {
    if (o.c.op == pack::Opcode::kCreate) {
      auto ref = w.AddBlob(o.data.data(), o.data.size(), false);
      ASSERT_TRUE(ref.ok());
      o.c.data = *ref;
      w.AddSpaceNeeded(o.c.size);
    }
    w.AddCommand(o.c);
  }
  ASSERT_TRUE(w.Finish().ok());
}

Hash256 Bad() {
  Hash256 h{};
  h[0] = 0x42;
  return h;
}

class BaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::MakeDirs(d_ / "root");
    Write(d_ / "r.cma", pack::Type::kReplicate, 1, "rep", {Mkdir("www"), Create("www/index.html", "<h1>hi</h1>"),
                                                            Create("www/a.css", "a")});
    ASSERT_TRUE(ApplyCommit(d_ / "r.cma").ok());
    live_ = test::Manifest(d_ / "root/current");
  }
  Status Apply(const std::string& file, Report* r = nullptr) {
    Report local;
    ApplyOptions o;
    o.allow_unsigned = true;
    auto root = OpenRoot(d_ / "root", ro_);
    return ApplyFile(root.get(), file, o, r ? r : &local);
  }
  Status ApplyCommit(const std::string& file, Report* r = nullptr) {
    CM_RETURN_IF_ERROR(Apply(file, r));
    auto root = OpenRoot(d_ / "root", ro_);
    return Commit(root.get(), "", std::nullopt).status();
  }
  Layout L() { return Layout(d_ / "root"); }
  std::string Current() { return *ReadCurrent(L()); }
  Hash256 Recorded() {
    auto m = RecordedManifest(L(), Current(), false);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? delta::ManifestHash(*m) : Hash256{};
  }
  void ExpectNothingStaged() {
    std::string out;
    test::Run("ls -A " + d_ / "root/.cm/stage", &out);
    EXPECT_EQ(out, "");
    EXPECT_EQ(ReadFile(d_ / "root/.cm/state").find("staged_job"), std::string::npos);
  }
  TempDir d_;
  RootOptions ro_;
  std::string live_;
};

TEST_F(BaseTest, EveryReleaseHasItsManifestRecorded) {
  auto m = delta::BuildManifest(d_ / "root/current", {});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Recorded(), delta::ManifestHash(*m));
}

TEST_F(BaseTest, TheLiveBaseIsStagedAndReportsCarryTheManifests) {
  Write(d_ / "a.cma", pack::Type::kPublish, 2, "j2", {Base(Recorded()), Create("www/new.html", "new")});
  Report r;
  ASSERT_TRUE(Apply(d_ / "a.cma", &r).ok()) << r.status.message();
  EXPECT_EQ(r.action, "staged");
  EXPECT_EQ(r.manifest, ToHex(Recorded()));
  EXPECT_EQ(r.stats.created, 1u);
  ASSERT_EQ(r.staged_manifest.size(), 64u);
  EXPECT_NE(r.staged_manifest, r.manifest);
  auto root = OpenRoot(d_ / "root", ro_);
  ASSERT_TRUE(Commit(root.get(), "j2", std::nullopt).ok());
  root.reset();
  EXPECT_EQ(ToHex(Recorded()), r.staged_manifest);
  auto m = delta::BuildManifest(d_ / "root/current", {});
  EXPECT_EQ(ToHex(delta::ManifestHash(*m)), r.staged_manifest);
}

TEST_F(BaseTest, AnotherBaseIsRefusedBeforeAnythingIsStaged) {
  Write(d_ / "a.cma", pack::Type::kPublish, 2, "j2",
        {Base(Bad(), {}, "s000000000009-other"), Create("www/new.html", "new")});
  Report r;
  Status st = Apply(d_ / "a.cma", &r);
  EXPECT_EQ(st.code(), Code::kBaseMismatch);
  EXPECT_EQ(st.message(), "live tree is " + Current() + " (manifest " + delta::ShortHash(Recorded()) +
                              "); the assignment applies to s000000000009-other (manifest " +
                              delta::ShortHash(Bad()) + ")");
  EXPECT_EQ(r.release, Current());
  EXPECT_EQ(r.manifest, ToHex(Recorded()));
  ExpectNothingStaged();
  EXPECT_EQ(test::Manifest(d_ / "root/current"), live_);
  // Not applied: the same serial with the right base is not a replay.
  Write(d_ / "b.cma", pack::Type::kPublish, 2, "j2", {Base(Recorded()), Create("www/new.html", "new")});
  EXPECT_TRUE(Apply(d_ / "b.cma").ok());
}

TEST_F(BaseTest, AFileEditedInPlaceIsNamed) {
  const Hash256 before = Recorded();
  test::Run("echo x >> " + d_ / "root/current/www/index.html");
  Write(d_ / "a.cma", pack::Type::kPublish, 2, "j2", {Base(before), Create("www/new.html", "new")});
  Status st = Apply(d_ / "a.cma");
  EXPECT_EQ(st.code(), Code::kBaseMismatch);
  EXPECT_NE(st.message().find("(manifest " + delta::ShortHash(before) +
                              "), 1 paths changed behind cm-apply's back, e.g. www/index.html; "),
            std::string::npos)
      << st.message();
  ExpectNothingStaged();
}

TEST_F(BaseTest, AZeroBaseIsNotCheckedAndWholeTreesApplyToAnyTree) {
  test::Run("echo x >> " + d_ / "root/current/www/index.html");
  Write(d_ / "a.cma", pack::Type::kPublish, 2, "j2", {Base({}), Create("www/new.html", "new")});
  EXPECT_TRUE(Apply(d_ / "a.cma").ok());
  Write(d_ / "b.cma", pack::Type::kRestore, 3, "j3", {Base(Bad()), Mkdir("www"), Create("www/index.html", "x")});
  EXPECT_TRUE(Apply(d_ / "b.cma").ok());
}

TEST_F(BaseTest, AStageThatIsNotTheResultIsDiscarded) {
  Write(d_ / "a.cma", pack::Type::kPublish, 2, "j2", {Base(Recorded(), Bad()), Create("www/new.html", "new")});
  Report r;
  Status st = Apply(d_ / "a.cma", &r);
  EXPECT_EQ(st.code(), Code::kBaseMismatch);
  EXPECT_NE(st.message().find(", the assignment makes " + delta::ShortHash(Bad()) +
                              "; stage discarded, live tree unchanged"),
            std::string::npos)
      << st.message();
  ExpectNothingStaged();
  EXPECT_EQ(test::Manifest(d_ / "root/current"), live_);
  auto root = OpenRoot(d_ / "root", ro_);
  EXPECT_EQ(Commit(root.get(), "j2", std::nullopt).status().code(), Code::kNotFound);
}

TEST_F(BaseTest, TheRightResultPassesInOneOrTwoParts) {
  // The result of adding www/new.html and www/sub/, from a copy of the tree.
  test::Run("cp -a " + d_ / "root/current/." + " " + d_ / "want");
  test::WriteFile(d_ / "want/www/new.html", "new");
  test::MakeDirs(d_ / "want/www/sub", 0750);
  auto want = delta::BuildManifest(d_ / "want", {});
  ASSERT_TRUE(want.ok());
  const Hash256 result = delta::ManifestHash(*want);
  // Two parts: the base manifest in part 1, the result in both (checked at the last).
  Write(d_ / "p1.cma", pack::Type::kPublish, 2, "j2", {Base(Recorded(), result), Create("www/new.html", "new")}, 1,
        false);
  Write(d_ / "p2.cma", pack::Type::kPublish, 3, "j2", {Base({}, result), Mkdir("www/sub", 0750)}, 2, true);
  Report r1, r2;
  ASSERT_TRUE(Apply(d_ / "p1.cma", &r1).ok()) << r1.status.message();
  EXPECT_EQ(r1.staged_manifest, "");  // not complete yet
  ASSERT_TRUE(Apply(d_ / "p2.cma", &r2).ok()) << r2.status.message();
  EXPECT_EQ(r2.staged_manifest, ToHex(result));
  // One part, on another root of the same tree.
  Write(d_ / "a.cma", pack::Type::kPublish, 4, "j4",
        {Base(Recorded(), result), Create("www/new.html", "new"), Mkdir("www/sub", 0750)});
  auto root = OpenRoot(d_ / "root", ro_);
  ASSERT_TRUE(Commit(root.get(), "j2", std::nullopt).ok());
  ASSERT_TRUE(Rollback(root.get(), std::nullopt).ok());
  root.reset();
  Report r;
  ASSERT_TRUE(Apply(d_ / "a.cma", &r).ok()) << r.status.message();
  EXPECT_EQ(r.staged_manifest, ToHex(result));
}

TEST_F(BaseTest, VerifyLiveListsChangedMissingAndExtraPaths) {
  auto ok = VerifyLive(d_ / "root", false, ro_);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->ok());
  test::Run("echo x >> " + d_ / "root/current/www/index.html");
  test::Run("rm " + d_ / "root/current/www/a.css");
  test::WriteFile(d_ / "root/current/www/extra", "e");
  auto t = VerifyLive(d_ / "root", false, ro_);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->ok());
  EXPECT_EQ(t->diff.changed, std::vector<std::string>{"www/index.html"});
  EXPECT_EQ(t->diff.missing, std::vector<std::string>{"www/a.css"});
  EXPECT_EQ(t->diff.extra, std::vector<std::string>{"www/extra"});
  const std::string json = LiveJson(*t);
  EXPECT_NE(json.find("\"ok\":false,\"changed\":[\"www/index.html\"],\"missing\":[\"www/a.css\"],"
                      "\"extra\":[\"www/extra\"],\"truncated\":false}"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.rfind("{\"v\":1,\"release\":\"" + Current() + "\",\"release_serial\":1,\"manifest\":\"", 0), 0u)
      << json;
}

TEST_F(BaseTest, OnlyFullFindsAnEditThatKeptSizeAndMtime) {
  const std::string f = d_ / "root/current/www/index.html";
  struct stat st;
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  test::Run("printf '<h1>HI</h1>' | dd of=" + f + " conv=notrunc status=none");
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, f.c_str(), times, 0), 0);
  auto quick = VerifyLive(d_ / "root", false, ro_);
  ASSERT_TRUE(quick.ok());
  EXPECT_TRUE(quick->ok());  // the stat cache cannot see it (release_manifest.h)
  auto full = VerifyLive(d_ / "root", true, ro_);
  ASSERT_TRUE(full.ok());
  EXPECT_FALSE(full->ok());
  EXPECT_EQ(full->diff.changed, std::vector<std::string>{"www/index.html"});
}

TEST_F(BaseTest, ARootWithoutManifestsGetsThemOnFirstNeed) {
  const Hash256 h = Recorded();
  test::Run("rm -rf " + d_ / "root/.cm/manifests");
  EXPECT_EQ(RecordedManifestHex(L(), Current(), false), "");
  auto v = ReadStatus(d_ / "root");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->manifest, "");  // status changes nothing
  Write(d_ / "a.cma", pack::Type::kPublish, 2, "j2", {Base(h), Create("www/new.html", "new")});
  Report r;
  ASSERT_TRUE(Apply(d_ / "a.cma", &r).ok()) << r.status.message();
  EXPECT_EQ(RecordedManifestHex(L(), ReleaseId(1, "rep"), false), ToHex(h));
}

TEST_F(BaseTest, ManifestsGoWithTheirReleases) {
  ro_.keep = 2;
  for (uint64_t s = 2; s <= 5; ++s) {
    Write(d_ / "a.cma", pack::Type::kPublish, s, "j" + std::to_string(s),
          {Base(Recorded()), Create("www/f" + std::to_string(s), "x")});
    ASSERT_TRUE(ApplyCommit(d_ / "a.cma").ok());
  }
  std::string mfs, rels;
  test::Run("ls " + d_ / "root/.cm/manifests", &mfs);
  test::Run("ls " + d_ / "root/releases", &rels);
  EXPECT_EQ(mfs, ReleaseId(4, "j4") + ".mf\n" + ReleaseId(5, "j5") + ".mf\n");
  EXPECT_EQ(rels, ReleaseId(4, "j4") + "\n" + ReleaseId(5, "j5") + "\n");
  // A rollback makes the previous release's manifest the live one.
  const Hash256 at5 = Recorded();
  auto root = OpenRoot(d_ / "root", ro_);
  ASSERT_TRUE(Rollback(root.get(), std::nullopt).ok());
  root.reset();
  EXPECT_NE(Recorded(), at5);
  auto v = ReadStatus(d_ / "root");
  EXPECT_EQ(v->manifest, ToHex(Recorded()));
}

TEST(LiveJson, ListsAreCutAtOneThousand) {
  LiveTree t;
  t.release = "s000000000001-j";
  t.now_hash[0] = 1;
  for (int i = 0; i < 1001; ++i) t.diff.changed.push_back("p" + std::to_string(i));
  const std::string j = LiveJson(t);
  EXPECT_NE(j.find("\"p999\"],"), std::string::npos);
  EXPECT_EQ(j.find("\"p1000\""), std::string::npos);
  EXPECT_NE(j.find("\"truncated\":true}"), std::string::npos);
}

// A TOUCH copy takes over the live manifest's hash only when it was copied
// from the inode that manifest records for the path (inode, size, mtime);
// otherwise the staged manifest reads it.
TEST(CarryTouchCopiesTest, OnlyACopyOfTheRecordedInodeTakesItsHash) {
  delta::Manifest live;
  for (const char* p : {"a", "b", "c", "d"}) {
    delta::ManifestEntry e;
    e.path = p;
    e.size = 10;
    e.ino = 100 + static_cast<uint64_t>(p[0] - 'a');
    e.mtime_ns = 5;
    e.hash[0] = static_cast<uint8_t>(p[0]);
    live.entries.push_back(e);
  }
  auto copy = [](const std::string& p, uint64_t src_ino, uint64_t size, int64_t src_mtime) {
    Stager::TouchCopy c;
    c.path = p;
    c.size = size;
    c.src_ino = src_ino;
    c.src_mtime_ns = src_mtime;
    c.ino = 900;
    c.mtime_ns = 77;
    return c;
  };
  CarryTouchCopies({copy("a", 100, 10, 5), copy("b", 999, 10, 5), copy("c", 102, 11, 5), copy("d", 103, 10, 6),
                    copy("missing", 100, 10, 5)},
                   &live);
  EXPECT_EQ(live.entries[0].ino, 900u);
  EXPECT_EQ(live.entries[0].mtime_ns, 77);
  EXPECT_EQ(live.entries[0].hash[0], 'a');
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(live.entries[i].ino, 100 + i) << live.entries[i].path;
    EXPECT_EQ(live.entries[i].mtime_ns, 5) << live.entries[i].path;
  }
  EXPECT_EQ(live.entries.size(), 4u);
}

}  // namespace
}  // namespace cm::apply
