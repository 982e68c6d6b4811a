#include <fcntl.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <unistd.h>

#include "pack/assignment_reader.h"
#include "pack/assignment_writer.h"
#include "pack/command_codec.h"
#include "util/byte_io.h"
#include "pack/keys.h"
#include "pack/packer.h"
#include "pack/segments.h"
#include "support/test_util.h"
#include "util/file_util.h"

namespace cm::pack {
namespace {

using test::TempDir;

std::string ReadAll(ByteSource* s) {
  std::string out;
  char buf[4096];
  for (;;) {
    auto r = s->Read(buf, sizeof buf);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok() || *r == 0) break;
    out.append(buf, *r);
  }
  return out;
}

struct Blob {
  std::string data;
  bool compress;
  bool stream;
};

// Writes an assignment with one CREATE per blob, reads it back, checks every
// byte and command.
void RoundTrip(const std::vector<Blob>& blobs, const WriterOptions& wo, const ReaderOptions& ro) {
  TempDir d;
  std::string path = d / "a.cma";
  AssignmentWriter w;
  ASSERT_TRUE(w.Open(path, wo).ok());
  std::vector<Command> cmds;
  for (size_t i = 0; i < blobs.size(); ++i) {
    Command c;
    c.op = Opcode::kCreate;
    c.path = "f" + std::to_string(i);
    c.meta.mode = 0644;
    c.size = blobs[i].data.size();
    c.hash = HashBytes(blobs[i].data.data(), blobs[i].data.size());
    Result<DataRef> ref = DataRef{};
    if (blobs[i].stream) {
      StringSource src(blobs[i].data);
      ref = w.AddStream(&src, blobs[i].data.size(), blobs[i].compress);
    } else {
      ref = w.AddBlob(blobs[i].data.data(), blobs[i].data.size(), blobs[i].compress);
    }
    ASSERT_TRUE(ref.ok()) << ref.status().message();
    c.data = *ref;
    w.AddCommand(c);
    cmds.push_back(c);
  }
  ASSERT_TRUE(w.Finish().ok());

  auto r = AssignmentReader::Open(path, ro);
  ASSERT_TRUE(r.ok()) << r.status().message();
  Status v = (*r)->Verify();
  ASSERT_TRUE(v.ok()) << v.message();
  EXPECT_EQ((*r)->header().serial, wo.serial);
  EXPECT_EQ((*r)->header().job_id, wo.job_id);
  EXPECT_EQ((*r)->header().command_count, blobs.size());
  for (size_t i = 0; i < blobs.size(); ++i) {
    Command c;
    auto more = (*r)->NextCommand(&c);
    ASSERT_TRUE(more.ok() && *more);
    EXPECT_EQ(c.path, cmds[i].path);
    // v3 carries no content hash (the data hash and chunk table cover the bytes).
    EXPECT_EQ(c.has_hash, (*r)->header().version() != kVersion3);
    if (c.has_hash) {
      EXPECT_EQ(c.hash, cmds[i].hash);
    }
    auto src = (*r)->OpenData(c.data);
    ASSERT_TRUE(src.ok()) << src.status().message();
    EXPECT_EQ(ReadAll(*src), blobs[i].data) << "blob " << i;
  }
  Command c;
  auto more = (*r)->NextCommand(&c);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
}

// chunk_size | version << 32: a format to write (version 0 = the default).
WriterOptions BasicOptions(uint64_t format = kDefaultChunkSize) {
  WriterOptions wo;
  wo.serial = 7;
  wo.job_id = "job-7";
  wo.chunk_size = static_cast<uint32_t>(format);
  wo.version = static_cast<uint16_t>(format >> 32);
  return wo;
}

// Format v1 (no chunk table), v3 (the default) with the default and with the
// smallest chunks, and v2.
const uint64_t kChunkSizes[] = {0, kDefaultChunkSize, kMinChunkSize, kDefaultChunkSize | (uint64_t{2} << 32)};

TEST(Assignment, MixedBlobsRoundTripInEveryFormat) {
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = static_cast<char>(i * 31);
  std::string huge(kMaxBufferedSegment + 12345, 'y');
  for (uint64_t cs : kChunkSizes) {
    SCOPED_TRACE("chunk size " + std::to_string(cs));
    RoundTrip({{"hello", true, false},
               {"", true, false},
               {std::string(70000, 'a'), true, false},
               {"raw bytes", false, false},
               {big, true, true},
               {"after big", true, false},
               {huge, true, true},
               {huge, false, true},
               {"tail", true, false}},
              BasicOptions(cs), {});
  }
}

TEST(Assignment, SignedAndEncryptedRoundTrip) {
  TempDir d;
  ASSERT_TRUE(GenerateSigningKey(d / "k").ok());
  ASSERT_TRUE(GenerateGroupKey(d / "g").ok());
  auto sk = LoadSigningKey(d / "k");
  auto pk = LoadPublicKey(d / "k.pub");
  auto gk = LoadGroupKey(d / "g");
  ASSERT_TRUE(sk.ok() && pk.ok() && gk.ok());
  EXPECT_EQ(sk->pub.bytes, pk->bytes);
  for (uint64_t cs : kChunkSizes) {
    WriterOptions wo = BasicOptions(cs);
    wo.sign = *sk;
    wo.encrypt = *gk;
    ReaderOptions ro;
    ro.pub_key = *pk;
    ro.group_key = *gk;
    RoundTrip({{"secret", true, false}, {std::string(200000, 'q'), true, true}, {"z", false, false}}, wo, ro);
  }
}

TEST(Assignment, KeygenRefusesToOverwrite) {
  TempDir d;
  ASSERT_TRUE(GenerateSigningKey(d / "k").ok());
  EXPECT_FALSE(GenerateSigningKey(d / "k").ok());
  ASSERT_TRUE(GenerateGroupKey(d / "g").ok());
  EXPECT_FALSE(GenerateGroupKey(d / "g").ok());
}

class Tamper : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(GenerateSigningKey(dir_ / "k").ok());
    ASSERT_TRUE(GenerateSigningKey(dir_ / "other").ok());
    sk_ = *LoadSigningKey(dir_ / "k");
    pk_ = *LoadPublicKey(dir_ / "k.pub");
    other_ = *LoadPublicKey(dir_ / "other.pub");
  }
  // A small assignment; chunk_size 0 writes format v1. With kMinChunkSize
  // and `big`, the data spans several chunks (the last one shorter).
  std::string Write(bool sign, uint32_t chunk_size = kDefaultChunkSize, bool big = false) {
    std::string path = dir_ / (sign ? "s.cma" : "u.cma");
    WriterOptions wo = BasicOptions(chunk_size);
    if (sign) wo.sign = sk_;
    AssignmentWriter w;
    EXPECT_TRUE(w.Open(path, wo).ok());
    for (int i = 0; i < 3; ++i) {
      std::string data = "content number " + std::to_string(i);
      Command c;
      c.op = Opcode::kCreate;
      c.path = "dir/file" + std::to_string(i);
      c.size = data.size();
      c.hash = HashBytes(data.data(), data.size());
      c.data = *w.AddBlob(data.data(), data.size(), i != 1);
      w.AddCommand(c);
    }
    if (big) {
      std::string data(150000, '\0');
      for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
      Command c;
      c.op = Opcode::kCreate;
      c.path = "big";
      c.size = data.size();
      c.hash = HashBytes(data.data(), data.size());
      c.data = *w.AddBlob(data.data(), data.size(), false);
      w.AddCommand(c);
    }
    EXPECT_TRUE(w.Finish().ok());
    return path;
  }
  Status Check(const std::string& path, const ReaderOptions& ro) {
    auto r = AssignmentReader::Open(path, ro);
    if (!r.ok()) return r.status();
    CM_RETURN_IF_ERROR((*r)->Verify());
    // Reading every command's data must also succeed.
    Command c;
    for (;;) {
      auto more = (*r)->NextCommand(&c);
      if (!more.ok()) return more.status();
      if (!*more) break;
      auto src = (*r)->OpenData(c.data);
      if (!src.ok()) return src.status();
      ReadAll(*src);
    }
    return Status::Ok();
  }
  TempDir dir_;
  SigningKey sk_;
  PublicKey pk_, other_;
};

// Every byte of header, data, body, trailer and (v2) chunk table matters.
TEST_F(Tamper, EveryFlippedByteIsDetected) {
  for (bool sign : {false, true}) {
    for (uint32_t cs : {0u, kDefaultChunkSize}) {
      SCOPED_TRACE(std::string(sign ? "signed" : "unsigned") + ", chunk size " + std::to_string(cs));
      std::string path = Write(sign, cs);
      std::string orig = test::ReadFile(path);
      ReaderOptions ro;
      if (sign) ro.pub_key = pk_;
      ASSERT_TRUE(Check(path, ro).ok());
      for (size_t i = 0; i < orig.size(); ++i) {
        std::string bad = orig;
        bad[i] ^= 0x01;
        test::WriteFile(path, bad);
        Status st = Check(path, ro);
        EXPECT_FALSE(st.ok()) << "flip at byte " << i << " of " << orig.size() << " not detected";
        if (!st.ok()) {
          EXPECT_TRUE(st.code() == Code::kCorrupt || st.code() == Code::kAuth) << st.message();
        }
      }
    }
  }
}

// Several chunks, the last one shorter: a flip in any chunk or table entry is caught.
TEST_F(Tamper, EveryFlippedByteOfAManyChunkFileIsDetected) {
  std::string path = Write(true, kMinChunkSize, true);
  std::string orig = test::ReadFile(path);
  auto r = AssignmentReader::Open(path, {});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ((*r)->header().chunk_count, 3u);
  ReaderOptions ro;
  ro.pub_key = pk_;
  ASSERT_TRUE(Check(path, ro).ok());
  for (size_t i = 0; i < orig.size(); i += 97) {
    std::string bad = orig;
    bad[i] ^= 0x40;
    test::WriteFile(path, bad);
    Status st = Check(path, ro);
    EXPECT_TRUE(st.code() == Code::kCorrupt || st.code() == Code::kAuth) << "flip at " << i << ": " << st.message();
  }
}

TEST_F(Tamper, EveryTruncationIsDetected) {
  for (uint32_t cs : {0u, kDefaultChunkSize}) {
    std::string path = Write(false, cs);
    std::string orig = test::ReadFile(path);
    for (size_t n = 0; n < orig.size(); ++n) {
      test::WriteFile(path, orig.substr(0, n));
      Status st = Check(path, {});
      EXPECT_EQ(st.code(), Code::kCorrupt) << "chunk size " << cs << ", truncated to " << n;
    }
  }
}

TEST_F(Tamper, AppendedBytesAreDetected) {
  for (uint32_t cs : {0u, kDefaultChunkSize}) {
    std::string path = Write(false, cs);
    test::WriteFile(path, test::ReadFile(path) + std::string(32, '\0'));
    EXPECT_EQ(Check(path, {}).code(), Code::kCorrupt) << "chunk size " << cs;
  }
}

TEST_F(Tamper, UnsignedRefusedWhenKeyConfigured) {
  std::string path = Write(false);
  ReaderOptions ro;
  ro.pub_key = pk_;
  Status st = Check(path, ro);
  EXPECT_EQ(st.code(), Code::kAuth);
  EXPECT_NE(st.message().find("not signed"), std::string::npos);
}

TEST_F(Tamper, WrongKeyRefused) {
  std::string path = Write(true);
  ReaderOptions ro;
  ro.pub_key = other_;
  Status st = Check(path, ro);
  EXPECT_EQ(st.code(), Code::kAuth);
  EXPECT_NE(st.message().find("another key"), std::string::npos);
}

TEST(Assignment, EncryptedNeedsTheRightGroupKey) {
  TempDir d;
  ASSERT_TRUE(GenerateGroupKey(d / "g").ok());
  ASSERT_TRUE(GenerateGroupKey(d / "h").ok());
  WriterOptions wo = BasicOptions();
  wo.encrypt = *LoadGroupKey(d / "g");
  AssignmentWriter w;
  ASSERT_TRUE(w.Open(d / "a.cma", wo).ok());
  Command c;
  c.op = Opcode::kCreate;
  c.path = "x";
  c.size = 3;
  c.data = *w.AddBlob("abc", 3, true);
  w.AddCommand(c);
  ASSERT_TRUE(w.Finish().ok());
  auto r = AssignmentReader::Open(d / "a.cma", {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->Verify().code(), Code::kAuth);
  ReaderOptions ro;
  ro.group_key = *LoadGroupKey(d / "h");
  r = AssignmentReader::Open(d / "a.cma", ro);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->Verify().code(), Code::kAuth);
  // The plaintext must not appear in the file.
  EXPECT_EQ(test::ReadFile(d / "a.cma").find("abc"), std::string::npos);
}

TEST(Assignment, EncryptedVerifiesWithoutTheGroupKeyWhenSealedIsAllowed) {
  TempDir d;
  ASSERT_TRUE(GenerateGroupKey(d / "g").ok());
  ASSERT_TRUE(GenerateSigningKey(d / "k").ok());
  for (uint64_t cs : kChunkSizes) {
    WriterOptions wo = BasicOptions(cs);
    wo.encrypt = *LoadGroupKey(d / "g");
    wo.sign = *LoadSigningKey(d / "k");
    AssignmentWriter w;
    ASSERT_TRUE(w.Open(d / "a.cma", wo).ok());
    Command c;
    c.op = Opcode::kCreate;
    c.path = "x";
    c.size = 3;
    c.data = *w.AddBlob("abc", 3, true);
    w.AddCommand(c);
    ASSERT_TRUE(w.Finish().ok());
    ReaderOptions ro;
    ro.allow_sealed = true;
    ro.pub_key = *LoadPublicKey(d / "k.pub");
    auto r = AssignmentReader::Open(d / "a.cma", ro);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE((*r)->Verify().ok());
    EXPECT_TRUE((*r)->sealed());
    Command got;
    EXPECT_EQ((*r)->NextCommand(&got).status().code(), Code::kAuth);
    // Integrity is still checked without the key: a flipped byte is caught.
    std::string bytes = test::ReadFile(d / "a.cma");
    bytes[kHeaderSize + 5] ^= 1;
    ASSERT_TRUE(WriteFileAtomic(d / "b.cma", bytes).ok());
    r = AssignmentReader::Open(d / "b.cma", ro);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->Verify().code(), Code::kCorrupt);
  }
}

TEST(Assignment, UnsafePathsAreRefusedAtVerify) {
  for (std::string bad : {"../etc/passwd", "/abs", "a/../../b", "a//b", "", "./x", "a/."}) {
    TempDir d;
    AssignmentWriter w;
    ASSERT_TRUE(w.Open(d / "a.cma", BasicOptions()).ok());
    Command c;
    c.op = Opcode::kRemove;
    c.path = bad;
    w.AddCommand(c);
    ASSERT_TRUE(w.Finish().ok());
    auto r = AssignmentReader::Open(d / "a.cma", {});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->Verify().code(), Code::kUnsafePath) << bad;
  }
}

TEST(Assignment, RollbackTargetRoundTripsInEveryFormat) {
  for (uint64_t format : kChunkSizes) {
    Header h;
    h.type = Type::kRollback;
    h.serial = 9;
    h.job_id = "j1";
    h.rollback_serial = 1795320043359879ull;
    if (format != 0) {
      h.flags = kFlagChunkTable;
      h.chunk_size = kDefaultChunkSize;
      h.compact_body = (format >> 32) == 0;
    }
    const std::string bytes = EncodeHeader(h);
    Header back;
    ASSERT_TRUE(DecodeHeader(bytes, &back).ok()) << format;
    EXPECT_EQ(back.rollback_serial, h.rollback_serial);
    EXPECT_EQ(back.version(), h.version());
    // A plain rollback leaves the bytes zero, as every older writer did.
    h.rollback_serial = 0;
    ASSERT_TRUE(DecodeHeader(EncodeHeader(h), &back).ok());
    EXPECT_EQ(back.rollback_serial, 0u);
    EXPECT_EQ(EncodeHeader(h).substr(208, 16), std::string(16, '\0'));
  }
}

TEST(Assignment, RollbackTargetInAnotherTypeIsCorrupt) {
  Header h;
  h.type = Type::kCommit;
  h.serial = 9;
  h.job_id = "j1";
  h.rollback_serial = 5;
  Header back;
  EXPECT_EQ(DecodeHeader(EncodeHeader(h), &back).code(), Code::kCorrupt);
}

TEST(Assignment, ReleaseNamesParseExactly) {
  uint64_t serial = 0;
  std::string job;
  ASSERT_TRUE(ParseReleaseName("s000000000042-job-7", &serial, &job).ok());
  EXPECT_EQ(serial, 42u);
  EXPECT_EQ(job, "job-7");
  ASSERT_TRUE(ParseReleaseName("s1795320043359879-j", &serial, &job).ok());
  EXPECT_EQ(serial, 1795320043359879ull);
  for (const char* bad : {"", "s42-j", "s0000000000042-j", "s000000000000-j", "x000000000042-j", "s000000000042-",
                          "s000000000042-a/b", "s000000000042-.x", "s00000000004x-j", "s99999999999999999999999-j"})
    EXPECT_EQ(ParseReleaseName(bad, &serial, &job).code(), Code::kUsage) << bad;
}

TEST(Assignment, SerialFilesNeverFallBehindTheClock) {
  TempDir d;
  PackOptions o;
  o.serial_file = d / "serial";
  auto a = AllocateSerials(o, 1);
  ASSERT_TRUE(a.ok());
  EXPECT_GT(*a, 1600000000ull * 1000000ull);  // microseconds since the epoch
  auto b = AllocateSerials(o, 3);
  ASSERT_TRUE(b.ok());
  EXPECT_GT(*b, *a);
  EXPECT_EQ(test::ReadFile(o.serial_file), std::to_string(*b + 2) + "\n");
  // A file ahead of the clock: last + 1.
  test::WriteFile(o.serial_file, "9000000000000000\n");
  auto c = AllocateSerials(o, 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, 9000000000000001ull);
}

RC_GTEST_PROP(AssignmentProp, RandomBlobsRoundTrip, ()) {
  auto n = *rc::gen::inRange<size_t>(0, 12);
  std::vector<Blob> blobs;
  for (size_t i = 0; i < n; ++i) {
    auto len = *rc::gen::oneOf(rc::gen::inRange<size_t>(0, 100), rc::gen::inRange<size_t>(0, 200000));
    auto kind = *rc::gen::inRange(0, 3);
    std::string data(len, '\0');
    for (size_t k = 0; k < len; ++k) data[k] = static_cast<char>(kind == 0 ? (k * 7919) >> 5 : (k % 13) + 'a');
    blobs.push_back({data, *rc::gen::arbitrary<bool>(), *rc::gen::arbitrary<bool>()});
  }
  RoundTrip(blobs, BasicOptions(*rc::gen::elementOf(std::vector<uint64_t>(std::begin(kChunkSizes), std::end(kChunkSizes)))), {});
}

}  // namespace
}  // namespace cm::pack

namespace cm::pack {
namespace {

delta::TableBase SomeBase() {
  delta::TableBase b;
  b.release = "s000000000006-job6";
  b.serial = 6;
  b.manifest[0] = 0xaa;
  b.result_manifest[31] = 0xbb;
  return b;
}

Command MkdirCmd(const std::string& p) {
  Command c;
  c.op = Opcode::kMkdir;
  c.path = p;
  c.meta.mode = 0755;
  return c;
}

Command BaseCmd(const delta::TableBase& b) {
  Command c;
  c.op = Opcode::kBase;
  c.base = b;
  return c;
}

// Writes the commands, then Verify()s; the reader on success.
Result<std::unique_ptr<AssignmentReader>> WriteAndVerify(const std::string& path, const std::vector<Command>& cmds,
                                                         WriterOptions wo) {
  AssignmentWriter w;
  CM_RETURN_IF_ERROR(w.Open(path, wo));
  for (const auto& c : cmds) w.AddCommand(c);
  CM_RETURN_IF_ERROR(w.Finish());
  CM_ASSIGN_OR_RETURN(auto r, AssignmentReader::Open(path, {}));
  CM_RETURN_IF_ERROR(r->Verify());
  return r;
}

// Every command NextCommand returns, in order (a failure ends the list).
std::vector<Command> ReadCommands(AssignmentReader* r) {
  std::vector<Command> out;
  Command c;
  for (;;) {
    auto more = r->NextCommand(&c);
    EXPECT_TRUE(more.ok()) << more.status().message();
    if (!more.ok() || !*more) return out;
    out.push_back(c);
  }
}

TEST(AssignmentBase, RoundTripsInEveryFormatAndIsNeverReturnedAsACommand) {
  for (uint64_t cs : kChunkSizes) {
    SCOPED_TRACE("format " + std::to_string(cs));
    TempDir d;
    auto r = WriteAndVerify(d / "a.cma", {BaseCmd(SomeBase()), MkdirCmd("a"), MkdirCmd("a/b")}, BasicOptions(cs));
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_TRUE((*r)->base().has_value());
    EXPECT_EQ(*(*r)->base(), SomeBase());
    EXPECT_EQ((*r)->header().command_count, 3u);
    std::vector<std::string> seen;
    for (const Command& c : ReadCommands(r->get())) seen.push_back(c.path);
    EXPECT_EQ(seen, (std::vector<std::string>{"a", "a/b"}));
  }
}

TEST(AssignmentBase, WithoutABaseThereIsNone) {
  TempDir d;
  auto r = WriteAndVerify(d / "a.cma", {MkdirCmd("a")}, BasicOptions());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE((*r)->base().has_value());
}

TEST(AssignmentBase, MisplacedOrDuplicatedBaseIsCorrupt) {
  for (uint64_t cs : kChunkSizes) {
    TempDir d;
    auto late = WriteAndVerify(d / "a.cma", {MkdirCmd("a"), BaseCmd(SomeBase())}, BasicOptions(cs));
    EXPECT_EQ(late.status().code(), Code::kCorrupt);
    auto twice = WriteAndVerify(d / "b.cma", {BaseCmd(SomeBase()), BaseCmd(SomeBase())}, BasicOptions(cs));
    EXPECT_EQ(twice.status().code(), Code::kCorrupt);
    EXPECT_NE(twice.status().message().find("base command not first"), std::string::npos);
    WriterOptions commit = BasicOptions(cs);
    commit.type = Type::kCommit;
    auto control = WriteAndVerify(d / "c.cma", {BaseCmd(SomeBase())}, commit);
    EXPECT_EQ(control.status().code(), Code::kCorrupt);
  }
}

TEST(AssignmentBase, MalformedPayloadIsCorruptInBothEncodings) {
  Command c;
  EXPECT_EQ(DecodeCommandPayload(Opcode::kBase, "\x01", &c).code(), Code::kCorrupt);
  CommandDecoder dec;
  EXPECT_EQ(dec.Decode(Opcode::kBase, std::string(10, '\0'), &c).code(), Code::kCorrupt);
  // A reader that predates BASE sees opcode 9 as unknown: what an older
  // cm-apply answers (exit 4) to an assignment that names its base.
  EXPECT_EQ(DecodeCommandPayload(static_cast<Opcode>(11), "", &c).code(), Code::kCorrupt);
}

Command TouchCmd(const std::string& first, const std::string& last, uint64_t count = 2,
                 int64_t mtime = 1700000000000000000) {
  Command c;
  c.op = Opcode::kTouch;
  c.path = first;
  c.path2 = last;
  c.size = count;
  c.meta.mtime_ns = mtime;
  return c;
}

// TOUCH runs come last, in walk order, not overlapping, with a nonzero mtime
// and count and safe paths; the reader refuses anything else before staging.
TEST(AssignmentTouch, RunsRoundTripInEveryFormatAndMustComeLastInOrder) {
  for (uint64_t cs : kChunkSizes) {
    SCOPED_TRACE("format " + std::to_string(cs));
    TempDir d;
    auto r = WriteAndVerify(d / "a.cma", {MkdirCmd("a"), TouchCmd("a", "a/z", 7), TouchCmd("b", "c/d", 3)},
                            BasicOptions(cs));
    ASSERT_TRUE(r.ok()) << r.status().message();
    std::vector<std::string> seen;
    for (const Command& c : ReadCommands(r->get()))
      seen.push_back(std::string(OpcodeName(c.op)) + " " + c.path + " " + c.path2 + " " + std::to_string(c.size) +
                     (c.op == Opcode::kTouch ? " " + std::to_string(c.meta.mtime_ns) : ""));
    EXPECT_EQ(seen, (std::vector<std::string>{"mkdir a  0", "touch a a/z 7 1700000000000000000",
                                              "touch b c/d 3 1700000000000000000"}));
    auto code = [&](const std::vector<Command>& cmds) {
      return WriteAndVerify(d / "b.cma", cmds, BasicOptions(cs)).status().code();
    };
    EXPECT_EQ(code({TouchCmd("a", "b"), MkdirCmd("c")}), Code::kCorrupt);           // a command after a run
    EXPECT_EQ(code({TouchCmd("a", "b"), TouchCmd("b", "c")}), Code::kCorrupt);      // overlapping
    EXPECT_EQ(code({TouchCmd("c", "d"), TouchCmd("a", "b")}), Code::kCorrupt);      // out of order
    EXPECT_EQ(code({TouchCmd("b", "a")}), Code::kCorrupt);                          // last before first
    EXPECT_EQ(code({TouchCmd("a", "b", 0)}), Code::kCorrupt);                       // empty
    EXPECT_EQ(code({TouchCmd("a", "b", 1, 0)}), Code::kCorrupt);                    // mtime 0
    EXPECT_EQ(code({TouchCmd("a", "../b")}), Code::kUnsafePath);
    EXPECT_EQ(code({TouchCmd("a", "a/b"), TouchCmd("a/c", "b")}), Code::kOk);
  }
}

TEST(AssignmentBase, TheV3ContextIsUntouchedByTheBase) {
  CommandEncoder enc;
  std::string body;
  Command m = MkdirCmd("dir/one");
  enc.Encode(m, &body);
  enc.Encode(BaseCmd(SomeBase()), &body);  // (never after another command in a file; the codec allows it)
  enc.Encode(MkdirCmd("dir/two"), &body);
  CommandDecoder dec;
  ByteReader r(body);
  std::vector<Command> out;
  while (!r.AtEnd()) {
    uint8_t op;
    uint64_t len;
    std::string payload;
    ASSERT_TRUE(r.U8(&op) && r.Varint(&len));
    payload.resize(len);
    ASSERT_TRUE(r.Bytes(payload.data(), len));
    Command c;
    ASSERT_TRUE(dec.Decode(static_cast<Opcode>(op), payload, &c).ok());
    out.push_back(c);
  }
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].base, SomeBase());
  EXPECT_EQ(out[2].path, "dir/two");
}

TEST(AssignmentBase, EffectiveBaseOverridesAndWholeTrees) {
  PackOptions o;
  EXPECT_FALSE(EffectiveBase(std::nullopt, o).has_value());
  EXPECT_EQ(EffectiveBase(SomeBase(), o), SomeBase());
  o.base_manifest = Hash256{};  // --base-manifest none
  o.base_release = "s000000000009-x";
  auto b = EffectiveBase(SomeBase(), o);
  ASSERT_TRUE(b);
  EXPECT_TRUE(delta::IsZeroHash(b->manifest));
  EXPECT_EQ(b->release, "s000000000009-x");
  EXPECT_EQ(b->result_manifest, SomeBase().result_manifest);
  o.type = Type::kReplicate;
  b = EffectiveBase(SomeBase(), o);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->release, "");
  EXPECT_EQ(b->serial, 0u);
  EXPECT_TRUE(delta::IsZeroHash(b->manifest));
  o.type = Type::kPublish;
  o.no_base = true;
  EXPECT_FALSE(EffectiveBase(SomeBase(), o).has_value());
}

// Packing a table that names its base puts the BASE in every part: the base
// manifest in part 1 only, the result manifest in all.
TEST(AssignmentBase, PackedPartsCarryTheBase) {
  TempDir d;
  test::WriteFile(d / "src/a", std::string(3000, 'a'));
  test::WriteFile(d / "src/b", std::string(3000, 'b'));
  StringSink sink;
  delta::DeltaTableWriter w(&sink);
  w.SetBase(SomeBase());
  ASSERT_TRUE(w.Begin(0).ok());
  for (const char* p : {"a", "b"}) {
    delta::DeltaEntry e;
    e.op = delta::Op::kAdd;
    e.path = p;
    e.mode = 0644;
    e.size = 3000;
    std::string content(3000, p[0]);
    e.hash = HashBytes(content.data(), content.size());
    ASSERT_TRUE(w.AddEntry(e).ok());
  }
  ASSERT_TRUE(w.End().ok());
  PackOptions o;
  o.serial = 100;
  o.output = d / "out.cma";
  o.max_size = 2000;  // one file per part
  o.policy = CompressPolicy::Default();
  StringSource src(sink.data());
  auto res = PackDeltaTable(&src, d / "src", o);
  ASSERT_TRUE(res.ok()) << res.status().message();
  ASSERT_EQ(res->files.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto r = AssignmentReader::Open(res->files[i].path, {});
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE((*r)->Verify().ok());
    ASSERT_TRUE((*r)->base().has_value());
    EXPECT_EQ((*r)->base()->result_manifest, SomeBase().result_manifest);
    EXPECT_EQ((*r)->base()->release, SomeBase().release);
    EXPECT_EQ(delta::IsZeroHash((*r)->base()->manifest), i > 0) << "part " << i + 1;
  }
}

}  // namespace
}  // namespace cm::pack
