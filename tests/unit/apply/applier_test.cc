// The applier on real assignment files, including ones cm-pack cannot make:
// paths that escape the root, go through a symlink, or name a fifo. The
// malicious files are built with the writer API and also fed to the cm-apply
// binary (when $CM_BIN has it) to check its exit code and its one error line.
#include "apply/applier.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/commands.h"
#include "apply_fixture.h"
#include "pack/assignment_writer.h"
#include "support/test_util.h"
#include "util/exit_codes.h"

namespace cm::apply {
namespace {

using namespace cm::apply::testing;
using test::ReadFile;
using test::TempDir;

// Writes an assignment with the given commands (CREATE data from Op::data).
void WriteAssignment(const std::string& path, pack::Type type, uint64_t serial, const std::string& job,
                     const std::vector<Op>& ops) {
  pack::AssignmentWriter w;
  pack::WriterOptions wo;
  wo.type = type;
  wo.serial = serial;
  wo.job_id = job;
  ASSERT_TRUE(w.Open(path, wo).ok());
  for (Op o : ops) {
    if (o.c.op == pack::Opcode::kCreate || o.c.op == pack::Opcode::kPatch) {
      auto ref = w.AddBlob(o.data.data(), o.data.size(), false);
      ASSERT_TRUE(ref.ok());
      o.c.data = *ref;
      w.AddSpaceNeeded(o.c.size);
    }
    w.AddCommand(o.c);
  }
  ASSERT_TRUE(w.Finish().ok());
}

class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::MakeDirs(d_ / "root");
    test::MakeDirs(d_ / "outside");
    test::WriteFile(d_ / "outside/secret", "do not touch");
    WriteAssignment(d_ / "base.cma", pack::Type::kReplicate, 1, "base",
                    {Mkdir("www"), Create("www/index.html", "<h1>hi</h1>"), Simple(pack::Opcode::kSymlink, "www/ext",
                                                                                  d_ / "outside")});
    Report r;
    auto root = OpenRoot(d_ / "root");
    ASSERT_TRUE(ApplyFile(root.get(), d_ / "base.cma", {}, &r).ok()) << r.status.message();
    ASSERT_TRUE(Commit(root.get(), "base", std::nullopt).ok());
    live_ = test::Manifest(d_ / "root/current");
  }
  Status Apply(const std::string& file, Report* r = nullptr) {
    Report local;
    auto root = OpenRoot(d_ / "root");
    return ApplyFile(root.get(), file, {}, r ? r : &local);
  }
  // Runs the cm-apply binary; expects exit `code`, one "cm-apply: error:" line, live unchanged.
  void ExpectCliRefuses(const std::string& file, int code) {
    if (test::BinDir().empty()) GTEST_SKIP() << "CM_BIN not set: cm-apply binary not checked";
    std::string err = d_ / "err";
    int rc = test::Run(test::BinDir() + "/cm-apply " + file + " --root " + d_ / "root" + " --commit 2>" + err);
    EXPECT_EQ(rc, code);
    std::string text = ReadFile(err);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_EQ(text.rfind("cm-apply: error: " + file + ": ", 0), 0u) << text;
    EXPECT_EQ(test::Manifest(d_ / "root/current"), live_);
  }
  void ExpectUntouched() {
    EXPECT_EQ(test::Manifest(d_ / "root/current"), live_);
    EXPECT_EQ(ReadFile(d_ / "outside/secret"), "do not touch");
    std::string out;
    test::Run("ls -A " + d_ / "outside", &out);
    EXPECT_EQ(out, "secret\n");
  }
  TempDir d_;
  std::string live_;
};

TEST_F(ApplierTest, DotDotPathIsRefusedBeforeAnyWrite) {
  WriteAssignment(d_ / "evil.cma", pack::Type::kPublish, 2, "evil", {Create("../outside/pwned", "x")});
  Report r;
  EXPECT_EQ(Apply(d_ / "evil.cma", &r).code(), Code::kUnsafePath);
  EXPECT_EQ(r.status.code(), Code::kUnsafePath);
  ExpectUntouched();
  ExpectCliRefuses(d_ / "evil.cma", kExitUnsafePath);
}

TEST_F(ApplierTest, AbsolutePathIsRefused) {
  WriteAssignment(d_ / "abs.cma", pack::Type::kPublish, 2, "abs", {Create(d_ / "outside/pwned", "x")});
  EXPECT_EQ(Apply(d_ / "abs.cma").code(), Code::kUnsafePath);
  ExpectUntouched();
  ExpectCliRefuses(d_ / "abs.cma", kExitUnsafePath);
}

TEST_F(ApplierTest, PathThroughALiveSymlinkIsRefused) {
  // "www/ext" is a symlink in live pointing outside; writing beneath it must fail.
  WriteAssignment(d_ / "through.cma", pack::Type::kPublish, 2, "through", {Create("www/ext/pwned", "x")});
  EXPECT_EQ(Apply(d_ / "through.cma").code(), Code::kUnsafePath);
  ExpectUntouched();
  ExpectCliRefuses(d_ / "through.cma", kExitUnsafePath);
}

TEST_F(ApplierTest, RemoveAndRenameThroughASymlinkAreRefused) {
  WriteAssignment(d_ / "rm.cma", pack::Type::kPublish, 2, "rm", {Simple(pack::Opcode::kRemove, "www/ext/secret")});
  EXPECT_EQ(Apply(d_ / "rm.cma").code(), Code::kUnsafePath);
  WriteAssignment(d_ / "mv.cma", pack::Type::kPublish, 3, "mv",
                  {Simple(pack::Opcode::kRename, "www/ext/secret", "stolen")});
  EXPECT_EQ(Apply(d_ / "mv.cma").code(), Code::kUnsafePath);
  ExpectUntouched();
}

TEST_F(ApplierTest, CopyOfAFifoIsRefused) {
  ASSERT_EQ(::mkfifo((d_ / "outside/fifo").c_str(), 0644), 0);
  WriteAssignment(d_ / "fifo.cma", pack::Type::kPublish, 2, "fifo",
                  {Simple(pack::Opcode::kSymlink, "f", d_ / "outside/fifo"), Simple(pack::Opcode::kCopy, "f", "g")});
  EXPECT_EQ(Apply(d_ / "fifo.cma").code(), Code::kUnsafePath);
  ::unlink((d_ / "outside/fifo").c_str());
  ExpectUntouched();
}

TEST_F(ApplierTest, SameAssignmentTwiceIsANoOp) {
  WriteAssignment(d_ / "p.cma", pack::Type::kPublish, 2, "p", {Create("www/new.html", "new")});
  Report r1, r2;
  ASSERT_TRUE(Apply(d_ / "p.cma", &r1).ok());
  EXPECT_EQ(r1.action, "staged");
  EXPECT_EQ(r1.stats.created, 1u);
  ASSERT_TRUE(Apply(d_ / "p.cma", &r2).ok());
  EXPECT_EQ(r2.action, "already-applied");
  WriteAssignment(d_ / "c.cma", pack::Type::kCommit, 3, "p", {});
  Report rc;
  ASSERT_TRUE(Apply(d_ / "c.cma", &rc).ok());
  EXPECT_EQ(rc.action, "committed");
  EXPECT_EQ(ReadFile(d_ / "root/current/www/new.html"), "new");
  ASSERT_TRUE(Apply(d_ / "c.cma", &rc).ok());
  EXPECT_EQ(rc.action, "already-applied");
  EXPECT_TRUE(Exists(d_ / "root/.cm/reports/2.json"));
  EXPECT_TRUE(Exists(d_ / "root/.cm/reports/3.json"));
}

TEST_F(ApplierTest, RollbackAssignmentSwapsBack) {
  WriteAssignment(d_ / "p.cma", pack::Type::kPublish, 2, "p", {Create("www/index.html", "v2")});
  WriteAssignment(d_ / "c.cma", pack::Type::kCommit, 3, "p", {});
  WriteAssignment(d_ / "rb.cma", pack::Type::kRollback, 4, "p", {});
  ASSERT_TRUE(Apply(d_ / "p.cma").ok());
  ASSERT_TRUE(Apply(d_ / "c.cma").ok());
  EXPECT_EQ(ReadFile(d_ / "root/current/www/index.html"), "v2");
  Report r;
  ASSERT_TRUE(Apply(d_ / "rb.cma", &r).ok());
  EXPECT_EQ(r.action, "rolled-back");
  EXPECT_EQ(ReadFile(d_ / "root/current/www/index.html"), "<h1>hi</h1>");
}

TEST_F(ApplierTest, DryRunChangesNothing) {
  WriteAssignment(d_ / "p.cma", pack::Type::kPublish, 2, "p", {Create("www/new.html", "new")});
  ApplyOptions o;
  o.dry_run = true;
  Report r;
  auto root = OpenRoot(d_ / "root");
  ASSERT_TRUE(ApplyFile(root.get(), d_ / "p.cma", o, &r).ok());
  EXPECT_EQ(r.action, "verified");
  EXPECT_FALSE(root->state().HasStage());
  EXPECT_FALSE(Exists(d_ / "root/.cm/reports/2.json"));
}

}  // namespace
}  // namespace cm::apply
