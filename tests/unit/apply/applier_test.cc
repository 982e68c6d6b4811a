// The applier on real assignment files, including ones cm-pack cannot make:
// paths that escape the root, go through a symlink, or name a fifo. The
// malicious files are built with the writer API and also fed to the cm-apply
// binary (when $CM_BIN has it) to check its exit code and its one error line.
#include "apply/applier.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <optional>

#include "apply/commands.h"
#include "apply_fixture.h"
#include "pack/assignment_reader.h"
#include "pack/assignment_writer.h"
#include "pack/keys.h"
#include "support/test_util.h"
#include "util/exit_codes.h"

namespace cm::apply {
namespace {

using namespace cm::apply::testing;
using test::ReadFile;
using test::TempDir;

// How an assignment is written: signed or not, its format, and whether the
// header's space_needed counts the files (a lying header does not).
struct Writing {
  std::optional<pack::SigningKey> sign;
  uint32_t chunk_size = pack::kDefaultChunkSize;  // 0: format v1
  bool count_space = true;
};

// Writes an assignment with the given commands (CREATE data from Op::data).
void WriteAssignment(const std::string& path, pack::Type type, uint64_t serial, const std::string& job,
                     const std::vector<Op>& ops, const Writing& how = {}) {
  pack::AssignmentWriter w;
  pack::WriterOptions wo;
  wo.type = type;
  wo.serial = serial;
  wo.job_id = job;
  wo.sign = how.sign;
  wo.chunk_size = how.chunk_size;
  ASSERT_TRUE(w.Open(path, wo).ok());
  for (Op o : ops) {
    if (o.c.op == pack::Opcode::kCreate || o.c.op == pack::Opcode::kPatch) {
      auto ref = w.AddBlob(o.data.data(), o.data.size(), false);
      ASSERT_TRUE(ref.ok());
      o.c.data = *ref;
      if (how.count_space) w.AddSpaceNeeded(o.c.size);
    }
    w.AddCommand(o.c);
  }
  ASSERT_TRUE(w.Finish().ok());
}

// The tests' unsigned assignments are accepted explicitly (--allow-unsigned).
ApplyOptions Unsigned() {
  ApplyOptions o;
  o.allow_unsigned = true;
  return o;
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
    ASSERT_TRUE(ApplyFile(root.get(), d_ / "base.cma", Unsigned(), &r).ok()) << r.status.message();
    ASSERT_TRUE(Commit(root.get(), "base", std::nullopt).ok());
    live_ = test::Manifest(d_ / "root/current");
  }
  Status Apply(const std::string& file, Report* r = nullptr) {
    Report local;
    auto root = OpenRoot(d_ / "root");
    return ApplyFile(root.get(), file, Unsigned(), r ? r : &local);
  }
  std::string State() { return ReadFile(d_ / "root/.cm/state"); }
  // Runs the cm-apply binary; expects exit `code`, one "cm-apply: error:" line, live unchanged.
  void ExpectCliRefuses(const std::string& file, int code) {
    if (test::BinDir().empty()) GTEST_SKIP() << "CM_BIN not set: cm-apply binary not checked";
    std::string err = d_ / "err";
    int rc = test::Run("CM_CONFIG_DIR=" + d_ / "no-etc" + " " + test::BinDir() + "/cm-apply --allow-unsigned " + file +
                       " --root " + d_ / "root" + " --commit 2>" + err);
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
  ApplyOptions o = Unsigned();
  o.dry_run = true;
  Report r;
  auto root = OpenRoot(d_ / "root");
  ASSERT_TRUE(ApplyFile(root.get(), d_ / "p.cma", o, &r).ok());
  EXPECT_EQ(r.action, "verified");
  EXPECT_FALSE(root->state().HasStage());
  EXPECT_FALSE(Exists(d_ / "root/.cm/reports/2.json"));
}

// ---- attacks (issue 11): each refused with its code, and nothing changes --

class ApplierSecurityTest : public ApplierTest {
 protected:
  void SetUp() override {
    ApplierTest::SetUp();
    ASSERT_TRUE(pack::GenerateSigningKey(d_ / "k").ok());
    auto sk = pack::LoadSigningKey(d_ / "k");
    auto pk = pack::LoadPublicKey(d_ / "k.pub");
    ASSERT_TRUE(sk.ok() && pk.ok());
    key_ = *sk;
    pub_ = *pk;
    Remember();
  }
  // What must not change: the state and the stage directory's entries.
  void Remember() {
    state_ = State();
    stage_.clear();
    test::Run("ls -A " + d_ / "root/.cm/stage", &stage_);
  }
  // Refused with `code` and a message containing `what`; live, state and stage as they were.
  void ExpectRefused(const Status& st, Code code, const std::string& what) {
    EXPECT_EQ(st.code(), code) << st.message();
    EXPECT_NE(st.message().find(what), std::string::npos) << st.message();
    EXPECT_EQ(test::Manifest(d_ / "root/current"), live_);
    EXPECT_EQ(State(), state_);
    std::string out;
    test::Run("ls -A " + d_ / "root/.cm/stage", &out);
    EXPECT_EQ(out, stage_);
  }
  Status ApplyWith(const std::string& file, const ApplyOptions& o) {
    Report r;
    auto root = OpenRoot(d_ / "root");
    return ApplyFile(root.get(), file, o, &r);
  }
  // The TOCTOU: a signed assignment is rewritten in place, after Verify() and
  // before staging, with an unsigned one of the same size and other content.
  // `padding` bytes more in the file make it span several chunks.
  void SwapAfterVerify(uint32_t chunk_size, size_t padding = 0) {
    Writing good{key_, chunk_size}, evil{std::nullopt, chunk_size};
    const std::string pad(padding, 'p');
    WriteAssignment(d_ / "good.cma", pack::Type::kPublish, 2, "p", {Create("www/new.html", "good content!" + pad)}, good);
    WriteAssignment(d_ / "evil.cma", pack::Type::kPublish, 2, "p", {Create("www/new.html", "EVIL content!" + pad)}, evil);
    const std::string evil_bytes = ReadFile(d_ / "evil.cma");
    ASSERT_EQ(evil_bytes.size(), ReadFile(d_ / "good.cma").size());
    ApplyOptions o;
    o.pub_key = pub_;
    bool swapped = false;
    o.after_verify = [&] {
      UniqueFd fd(::open((d_ / "good.cma").c_str(), O_WRONLY | O_CLOEXEC));
      swapped = fd && PwriteFull(fd.get(), evil_bytes.data(), evil_bytes.size(), 0).ok();
    };
    Report r;
    auto root = OpenRoot(d_ / "root");
    Status st = ApplyFile(root.get(), d_ / "good.cma", o, &r);
    EXPECT_TRUE(swapped);
    if (chunk_size != 0 && !st.ok()) {
      // v2/v3: a chunk read for staging no longer matches the verified table.
      ExpectRefused(st, Code::kCorrupt, "changed after verification");
    } else if (chunk_size != 0) {
      // v2/v3: every chunk staged was checked against the signed table when
      // it was read (here before the swap, and kept): the signed content.
      EXPECT_EQ(padding, 0u) << "a file of many chunks cannot have been read whole before the swap";
      ASSERT_TRUE(Commit(root.get(), "p", std::nullopt).ok());
      EXPECT_EQ(ReadFile(d_ / "root/current/www/new.html").substr(0, 13), "good content!");
    } else {
      // v1: staged from the private copy taken before Verify(): the signed content.
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_TRUE(Commit(root.get(), "p", std::nullopt).ok());
      EXPECT_EQ(ReadFile(d_ / "root/current/www/new.html"), "good content!");
    }
    std::string grep;
    test::Run("grep -rl EVIL " + d_ / "root", &grep);
    EXPECT_EQ(grep, "") << "unsigned content reached the content root";
  }
  pack::SigningKey key_;
  pack::PublicKey pub_;
  std::string state_, stage_;
};

TEST_F(ApplierSecurityTest, SwapDuringStagingOfManyChunksIsRefused) {
  SwapAfterVerify(pack::kMinChunkSize, 20 * pack::kMinChunkSize);
}

TEST_F(ApplierSecurityTest, UnsignedIsRefusedByDefault) {
  WriteAssignment(d_ / "u.cma", pack::Type::kPublish, 2, "u", {Create("www/new.html", "new")});
  ExpectRefused(ApplyWith(d_ / "u.cma", ApplyOptions{}), Code::kAuth, "not signed");
  // Also with a key configured (the key does not make unsigned acceptable).
  ApplyOptions o;
  o.pub_key = pub_;
  ExpectRefused(ApplyWith(d_ / "u.cma", o), Code::kAuth, "not signed");
}

TEST_F(ApplierSecurityTest, SignedWithoutAKeyIsRefusedEvenWithAllowUnsigned) {
  WriteAssignment(d_ / "s.cma", pack::Type::kPublish, 2, "s", {Create("www/new.html", "new")}, Writing{key_});
  ExpectRefused(ApplyWith(d_ / "s.cma", Unsigned()), Code::kAuth, "no public key is configured");
  // A bad signature is refused with and without the key.
  std::string bytes = ReadFile(d_ / "s.cma");
  const pack::Layout l = [&] {
    pack::Header h;
    EXPECT_TRUE(pack::DecodeHeader(bytes.substr(0, pack::kHeaderSize), &h).ok());
    return pack::LayoutOf(h);
  }();
  bytes[l.covered_end + 40] ^= 1;  // the first signature byte (trailer: magic, reserved, body hash, signature)
  test::WriteFile(d_ / "bad.cma", bytes);
  ExpectRefused(ApplyWith(d_ / "bad.cma", Unsigned()), Code::kAuth, "no public key is configured");
  ApplyOptions o;
  o.pub_key = pub_;
  ExpectRefused(ApplyWith(d_ / "bad.cma", o), Code::kAuth, "bad signature");
  // The good one applies with its key.
  EXPECT_TRUE(ApplyWith(d_ / "s.cma", o).ok());
}

TEST_F(ApplierSecurityTest, SwapDuringStagingIsRefusedWithAChunkTable) { SwapAfterVerify(pack::kDefaultChunkSize); }

TEST_F(ApplierSecurityTest, SwapDuringStagingOfAV1FileStagesTheVerifiedCopy) { SwapAfterVerify(0); }

TEST_F(ApplierSecurityTest, DeclaredSizesBeyondFreeSpaceAreRefusedBeforeWriting) {
  // The header's space_needed says 0; a CREATE declares 1 PiB.
  Op bomb = Create("www/huge", "x");
  bomb.c.size = uint64_t{1} << 50;
  bomb.c.has_hash = false;
  Writing lying{key_};
  lying.count_space = false;
  WriteAssignment(d_ / "bomb.cma", pack::Type::kPublish, 2, "bomb", {bomb}, lying);
  ApplyOptions o;
  o.pub_key = pub_;
  ExpectRefused(ApplyWith(d_ / "bomb.cma", o), Code::kNoSpace, "declares 1125899906842624 bytes");
}

TEST_F(ApplierSecurityTest, DeeplyNestedPathsAreRefusedBeforeAnyWrite) {
  std::vector<Op> ops;
  std::string path = "www";
  for (size_t i = 0; i <= pack::kMaxPathDepth; ++i) {
    path += "/d";
    ops.push_back(Mkdir(path));
  }
  WriteAssignment(d_ / "deep.cma", pack::Type::kPublish, 2, "deep", ops, Writing{key_});
  ApplyOptions o;
  o.pub_key = pub_;
  ExpectRefused(ApplyWith(d_ / "deep.cma", o), Code::kUnsafePath, "nested deeper than 128");
}

TEST_F(ApplierSecurityTest, CopiesBeyondTheWriteBudgetAreRefused) {
  auto root = OpenRoot(d_ / "root");
  auto ps = PartStage::Begin(root.get(), PartInfo{"cp", pack::Type::kPublish, 1, 2, true});
  ASSERT_TRUE(ps.ok());
  Stager& s = (*ps)->stager();
  s.set_write_budget(20);
  EXPECT_TRUE(ApplyOp(s, Create("www/a", "0123456789")).ok());                                    // 10 left
  EXPECT_TRUE(ApplyOp(s, Simple(pack::Opcode::kCopy, "www/a", "www/b")).ok());                    // 0 left
  EXPECT_EQ(ApplyOp(s, Simple(pack::Opcode::kCopy, "www/a", "www/c")).code(), Code::kNoSpace);    // refused
  EXPECT_FALSE(Exists(d_ / "root/.cm/stage/cp.p1/www/c"));
  EXPECT_EQ(ApplyOp(s, Create("www/d", "x")).code(), Code::kNoSpace);
}

TEST_F(ApplierSecurityTest, OlderSerialNeverAppliedSaysOlderNotReplayed) {
  WriteAssignment(d_ / "p5.cma", pack::Type::kPublish, 5, "p5", {Create("www/new.html", "new")});
  ASSERT_TRUE(Apply(d_ / "p5.cma").ok());
  Remember();
  WriteAssignment(d_ / "p3.cma", pack::Type::kPublish, 3, "p3", {Create("www/new.html", "old")});
  ExpectRefused(Apply(d_ / "p3.cma"), Code::kOrder, "serial 3 is older than the last applied (5)");
}

}  // namespace
}  // namespace cm::apply
