#include "pack/command_codec.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "pack/assignment_writer.h"
#include "util/byte_io.h"

namespace cm::pack {
namespace {

// Splits an encoded stream into (opcode, payload) and decodes each in order.
Status DecodeAll(const std::string& stream, std::vector<Command>* out) {
  ByteReader r(stream);
  CommandDecoder d;
  while (!r.AtEnd()) {
    uint8_t op;
    uint64_t len;
    std::string_view payload;
    if (!r.U8(&op) || !r.Varint(&len) || len > kMaxCommandPayload || !r.View(static_cast<size_t>(len), &payload))
      return Error(Code::kCorrupt, "framing");
    Command c;
    CM_RETURN_IF_ERROR(d.Decode(static_cast<Opcode>(op), payload, &c));
    out->push_back(c);
  }
  return Status::Ok();
}

void ExpectSame(const Command& a, const Command& b) {
  EXPECT_EQ(a.op, b.op);
  EXPECT_EQ(a.path, b.path);
  EXPECT_FALSE(b.has_hash);
  switch (a.op) {
    case Opcode::kTouch:
      EXPECT_EQ(a.path2, b.path2);
      EXPECT_EQ(a.meta.mtime_ns, b.meta.mtime_ns);
      EXPECT_EQ(a.size, b.size);
      return;
    case Opcode::kRename:
    case Opcode::kCopy:
      EXPECT_EQ(a.path2, b.path2);
      break;
    case Opcode::kRemove:
      break;
    case Opcode::kSymlink:
      EXPECT_EQ(a.path2, b.path2);
      [[fallthrough]];
    default:
      EXPECT_EQ(a.meta.mode, b.meta.mode);
      EXPECT_EQ(a.meta.has_owner, b.meta.has_owner);
      EXPECT_EQ(a.meta.uid, b.meta.uid);
      EXPECT_EQ(a.meta.gid, b.meta.gid);
      EXPECT_EQ(a.meta.mtime_ns, b.meta.mtime_ns);
  }
  if (a.op == Opcode::kCreate || a.op == Opcode::kPatch) {
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(a.data.segment, b.data.segment);
    EXPECT_EQ(a.data.offset, b.data.offset);
    EXPECT_EQ(a.data.length, b.data.length);
  }
  if (a.op == Opcode::kPatch) {
    EXPECT_EQ(a.base_size, b.base_size);
    EXPECT_EQ(a.base_hash, b.base_hash);
  }
}

TEST(CommandCodec, SortedMetadataRunsCostAFewBytesEach) {
  CommandEncoder e;
  std::string v3, v2;
  for (int i = 0; i < 1000; ++i) {
    Command c;
    c.op = Opcode::kSetMeta;
    c.path = "src/lib/module/file" + std::to_string(1000 + i) + ".js";
    c.meta.mode = 0644;
    c.meta.mtime_ns = 1700000000000000000 + i * 37000;
    e.Encode(c, &v3);
    EncodeCommand(c, &v2);
  }
  std::vector<Command> back;
  ASSERT_TRUE(DecodeAll(v3, &back).ok());
  ASSERT_EQ(back.size(), 1000u);
  EXPECT_EQ(back[999].path, "src/lib/module/file1999.js");
  EXPECT_EQ(back[999].meta.mtime_ns, 1700000000000000000 + 999 * 37000);
  // Front-coded paths and mtime steps: 41 bytes a command in v2, about 12
  // before compression and a few after (the body as stored).
  EXPECT_LT(v3.size() * 3, v2.size());
  ASSERT_TRUE(SealBody(19, &v3).ok());
  EXPECT_LT(v3.size(), 4u * 1000) << "sealed v3 " << v3.size() << ", v2 " << v2.size();
}

TEST(CommandCodec, KeepLongerThanThePreviousPathIsCorrupt) {
  std::string p;
  ByteWriter w(&p);
  w.Varint(3);  // keep 3 bytes of "" (the initial previous path)
  w.Str("x");
  CommandDecoder d;
  Command c;
  EXPECT_EQ(d.Decode(Opcode::kRemove, p, &c).code(), Code::kCorrupt);
}

TEST(CommandCodec, UnknownMetaBitsAreCorrupt) {
  std::string p;
  ByteWriter w(&p);
  w.Varint(0);
  w.Str("a");
  w.U8(0x80);
  CommandDecoder d;
  Command c;
  EXPECT_EQ(d.Decode(Opcode::kSetMeta, p, &c).code(), Code::kCorrupt);
}

// TOUCH: its last path is coded against its first, its mtime against the
// previous meta's; a run of a whole tree costs a few bytes. Versions 1/2 carry
// the same fields plainly.
TEST(CommandCodec, TouchRoundTripsInEveryBodyVersion) {
  Command meta;
  meta.op = Opcode::kSetMeta;
  meta.path = "usr/lib/python3/dist-packages/django/__init__.py";
  meta.meta.mode = 0644;
  meta.meta.mtime_ns = 1700000000000000000;
  Command t;
  t.op = Opcode::kTouch;
  t.path = "usr/lib/python3/dist-packages/django";
  t.path2 = "usr/lib/python3/dist-packages/django/views/templates/technical_500.txt";
  t.meta.mtime_ns = 1700000000000000000;
  t.size = 5888;
  std::string stream;
  CommandEncoder e;
  e.Encode(meta, &stream);
  const size_t before = stream.size();
  e.Encode(t, &stream);
  EXPECT_LE(stream.size() - before, 2 + 1 + 1 + 1 + 1 + 40 + 1 + 2u);  // header, keeps, suffixes, delta 0, count
  std::vector<Command> back;
  ASSERT_TRUE(DecodeAll(stream, &back).ok());
  ASSERT_EQ(back.size(), 2u);
  ExpectSame(t, back[1]);
  EXPECT_STREQ(OpcodeName(Opcode::kTouch), "touch");

  std::string v2;
  EncodeCommand(t, &v2);
  ByteReader r(v2);
  uint8_t op;
  uint64_t len;
  std::string_view payload;
  ASSERT_TRUE(r.U8(&op) && r.Varint(&len) && r.View(static_cast<size_t>(len), &payload) && r.AtEnd());
  Command c;
  ASSERT_TRUE(DecodeCommandPayload(static_cast<Opcode>(op), payload, &c).ok());
  EXPECT_EQ(c.op, Opcode::kTouch);
  EXPECT_EQ(c.path, t.path);
  EXPECT_EQ(c.path2, t.path2);
  EXPECT_EQ(c.meta.mtime_ns, t.meta.mtime_ns);
  EXPECT_EQ(c.size, t.size);
  // A last path whose keep exceeds the first path is corrupt.
  std::string bad;
  ByteWriter w(&bad);
  w.Varint(0);
  w.Str("ab");
  w.Varint(3);  // keep2 > 2
  w.Str("c");
  w.SVarint(0);
  w.Varint(1);
  CommandDecoder d;
  EXPECT_EQ(d.Decode(Opcode::kTouch, bad, &c).code(), Code::kCorrupt);
}

RC_GTEST_PROP(CommandCodecProp, RandomCommandSequencesRoundTrip, ()) {
  const auto n = *rc::gen::inRange<size_t>(0, 60);
  std::vector<Command> cmds;
  DataRef ref;
  std::string stream;
  CommandEncoder e;
  for (size_t i = 0; i < n; ++i) {
    Command c;
    c.op = *rc::gen::element(Opcode::kMkdir, Opcode::kCreate, Opcode::kPatch, Opcode::kRemove, Opcode::kRename,
                             Opcode::kCopy, Opcode::kSetMeta, Opcode::kSymlink, Opcode::kTouch);
    c.path = *rc::gen::container<std::string>(*rc::gen::inRange<size_t>(1, 40), rc::gen::element('a', 'b', '/', '.'));
    c.path2 = *rc::gen::container<std::string>(*rc::gen::inRange<size_t>(0, 20), rc::gen::element('x', 'y'));
    c.meta.mode = *rc::gen::inRange<uint32_t>(0, 07777 + 1);
    c.meta.has_owner = *rc::gen::arbitrary<bool>();
    c.meta.uid = *rc::gen::element(0u, 1000u, UINT32_MAX);
    c.meta.gid = *rc::gen::element(0u, 1000u, UINT32_MAX);
    c.meta.mtime_ns = *rc::gen::element<int64_t>(0, -1, INT64_MIN, INT64_MAX, 1700000000123456789);
    c.size = *rc::gen::inRange<uint64_t>(0, 1 << 30);
    c.base_size = *rc::gen::inRange<uint64_t>(0, 1 << 30);
    c.base_hash[0] = static_cast<uint8_t>(i);
    if (c.op == Opcode::kCreate || c.op == Opcode::kPatch) {
      // References go forward: a later segment, or further on in the same one.
      if (*rc::gen::arbitrary<bool>()) {
        ref.segment += *rc::gen::inRange<uint64_t>(1, 5);
        ref.offset = *rc::gen::inRange<uint64_t>(0, 100);
      } else {
        ref.offset += ref.length + *rc::gen::inRange<uint64_t>(0, 100);
      }
      ref.length = c.op == Opcode::kCreate ? c.size : *rc::gen::inRange<uint64_t>(0, 1 << 20);
      c.data = ref;
    }
    e.Encode(c, &stream);
    cmds.push_back(c);
  }
  std::vector<Command> back;
  Status st = DecodeAll(stream, &back);
  RC_ASSERT(st.ok());
  RC_ASSERT(back.size() == cmds.size());
  for (size_t i = 0; i < n; ++i) ExpectSame(cmds[i], back[i]);
}

RC_GTEST_PROP(CommandCodecProp, RandomBytesNeverCrashTheDecoder, ()) {
  const auto bytes = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  CommandDecoder d;
  Command c;
  for (int op = 0; op < 10; ++op) (void)d.Decode(static_cast<Opcode>(op), bytes, &c);
}

}  // namespace
}  // namespace cm::pack
