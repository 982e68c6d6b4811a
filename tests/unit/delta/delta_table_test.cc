#include "delta/delta_table.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <random>

#include "util/byte_io.h"

namespace cm::delta {
namespace {

// One entry plus, for DELTA entries, its instruction bytes.
struct Item {
  DeltaEntry e;
  std::string delta;
};

bool SameEntry(const DeltaEntry& a, const DeltaEntry& b) {
  bool content = (a.op == Op::kAdd || a.op == Op::kModify);
  bool same = a.op == b.op && a.kind == b.kind && a.path == b.path && a.mode == b.mode && a.uid == b.uid &&
              a.gid == b.gid && a.mtime_ns == b.mtime_ns && a.size == b.size;
  if (a.kind == Kind::kFile && content) same = same && a.hash == b.hash;
  if (a.kind == Kind::kSymlink && content) same = same && a.link_target == b.link_target;
  if (a.kind == Kind::kFile && a.op == Op::kModify) {
    same = same && a.encoding == b.encoding;
    if (a.encoding == Encoding::kDelta) same = same && a.base_size == b.base_size && a.base_hash == b.base_hash;
  }
  return same;
}

std::string Write(const std::vector<Item>& items, uint16_t flags = 0, size_t piece = 0) {
  StringSink sink;
  DeltaTableWriter w(&sink);
  EXPECT_TRUE(w.Begin(flags).ok());
  for (const Item& it : items) {
    Status st = w.AddEntry(it.e);
    EXPECT_TRUE(st.ok()) << st.message();
    if (!it.delta.empty()) {
      size_t step = piece == 0 ? it.delta.size() : piece;
      for (size_t i = 0; i < it.delta.size(); i += step)
        EXPECT_TRUE(w.AddDeltaBytes(it.delta.data() + i, std::min(step, it.delta.size() - i)).ok());
    }
  }
  EXPECT_TRUE(w.End().ok());
  EXPECT_EQ(w.entries(), items.size());
  return sink.data();
}

// Reads a whole table; read_deltas=false leaves instruction bytes for Next to skip.
Status ReadAll(const std::string& table, std::vector<Item>* out, bool read_deltas = true,
               uint16_t* flags = nullptr) {
  StringSource src(table);
  DeltaTableReader r(&src);
  CM_RETURN_IF_ERROR(r.Begin());
  if (flags) *flags = r.flags();
  for (;;) {
    Item it;
    CM_ASSIGN_OR_RETURN(bool more, r.Next(&it.e));
    if (!more) break;
    if (read_deltas) {
      char buf[7];
      for (;;) {
        CM_ASSIGN_OR_RETURN(size_t n, r.ReadDeltaBytes(buf, sizeof buf));
        if (n == 0) break;
        it.delta.append(buf, n);
      }
    }
    out->push_back(std::move(it));
  }
  // END is sticky.
  DeltaEntry e;
  auto again = r.Next(&e);
  if (!again.ok() || *again) return Error(Code::kFailure, "Next after END");
  return Status::Ok();
}

Hash256 H(uint8_t v) {
  Hash256 h;
  h.fill(v);
  return h;
}

std::vector<Item> Sample() {
  std::vector<Item> v;
  DeltaEntry d;
  d.op = Op::kAdd;
  d.kind = Kind::kDir;
  d.path = "dir";
  d.mode = 0755;
  d.mtime_ns = 1700000000123456789;
  v.push_back({d, ""});
  DeltaEntry f;
  f.op = Op::kAdd;
  f.path = "dir/new file";
  f.mode = 0644;
  f.uid = 1000;
  f.gid = 100;
  f.size = 12;
  f.hash = H(1);
  f.mtime_ns = -5;  // before the epoch
  v.push_back({f, ""});
  DeltaEntry m;
  m.op = Op::kModify;
  m.path = "dir/z";
  m.size = 100;
  m.hash = H(2);
  m.encoding = Encoding::kDelta;
  m.base_size = 90;
  m.base_hash = H(3);
  v.push_back({m, std::string("\x02\x03xyz\x00", 6)});
  DeltaEntry w = m;
  w.path = "whole";
  w.encoding = Encoding::kWhole;
  v.push_back({w, ""});
  DeltaEntry s;
  s.op = Op::kModify;
  s.kind = Kind::kSymlink;
  s.path = "link";
  s.link_target = "../target";
  s.mode = 0777;
  v.push_back({s, ""});
  DeltaEntry r;
  r.op = Op::kRemove;
  r.kind = Kind::kDir;
  r.path = "old";
  v.push_back({r, ""});
  DeltaEntry mt;
  mt.op = Op::kMeta;
  mt.kind = Kind::kFile;
  mt.path = "x";
  mt.mode = 04755;
  v.push_back({mt, ""});
  return v;
}

TEST(DeltaTable, HeaderLayout) {
  std::string t = Write({}, kTableFlagChecksum);
  ASSERT_GE(t.size(), 12u);
  EXPECT_EQ(t.substr(0, 4), "CMDT");
  EXPECT_EQ(t.substr(4, 2), std::string("\x02\x00", 2));
  EXPECT_EQ(t.substr(6, 2), std::string("\x01\x00", 2));
  EXPECT_EQ(t.substr(8, 4), std::string(4, '\0'));
  EXPECT_EQ(static_cast<uint8_t>(t[12]), kRecEnd);
  EXPECT_EQ(t.size(), 12u + 2 + 1 + 32);
}

TEST(DeltaTable, RoundTripsEveryKindOfEntry) {
  auto items = Sample();
  for (size_t piece : {size_t{0}, size_t{1}, size_t{4}}) {
    std::string t = Write(items, kTableFlagChecksum, piece);
    std::vector<Item> got;
    uint16_t flags = 0;
    Status st = ReadAll(t, &got, true, &flags);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(flags, kTableFlagChecksum);
    ASSERT_EQ(got.size(), items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      EXPECT_TRUE(SameEntry(items[i].e, got[i].e)) << items[i].e.path;
      EXPECT_EQ(items[i].delta, got[i].delta) << items[i].e.path;
    }
  }
}

TEST(DeltaTable, NextSkipsUnreadInstructionBytes) {
  auto items = Sample();
  std::vector<Item> got;
  ASSERT_TRUE(ReadAll(Write(items), &got, false).ok());
  ASSERT_EQ(got.size(), items.size());
  EXPECT_EQ(got.back().e.path, "x");
}

TEST(DeltaTable, LargeInstructionStreamsSpanRecords) {
  std::mt19937_64 rng(1);
  std::string big(3 << 20, '\0');
  for (auto& c : big) c = static_cast<char>(rng());
  auto items = Sample();
  items[2].delta = big;
  std::vector<Item> got;
  ASSERT_TRUE(ReadAll(Write(items), &got).ok());
  EXPECT_EQ(got[2].delta, big);
}

TEST(DeltaTable, WriterRejectsBadEntries) {
  StringSink sink;
  DeltaTableWriter w(&sink);
  ASSERT_TRUE(w.Begin(0).ok());
  DeltaEntry e;
  e.path = "../escape";
  EXPECT_FALSE(w.AddEntry(e).ok());
  e.path = "/abs";
  EXPECT_FALSE(w.AddEntry(e).ok());
  e.path = "a//b";
  EXPECT_FALSE(w.AddEntry(e).ok());
  e.path = "ok";
  e.mode = 010000;
  EXPECT_FALSE(w.AddEntry(e).ok());
  e.mode = 0644;
  e.kind = Kind::kSymlink;
  EXPECT_FALSE(w.AddEntry(e).ok());  // symlink without a target
  EXPECT_FALSE(w.AddDeltaBytes("x", 1).ok());  // no DELTA entry
  e.kind = Kind::kFile;
  e.op = Op::kModify;
  e.encoding = Encoding::kDelta;
  EXPECT_TRUE(w.AddEntry(e).ok());
  EXPECT_FALSE(w.End().ok());  // DELTA entry without instructions
}

TEST(IsSafeRelativePath, AcceptsAndRejects) {
  EXPECT_TRUE(IsSafeRelativePath("a"));
  EXPECT_TRUE(IsSafeRelativePath("a/b c/-d"));
  EXPECT_TRUE(IsSafeRelativePath("...") );
  EXPECT_TRUE(IsSafeRelativePath("a\nb"));
  EXPECT_FALSE(IsSafeRelativePath(""));
  EXPECT_FALSE(IsSafeRelativePath("/a"));
  EXPECT_FALSE(IsSafeRelativePath("a/"));
  EXPECT_FALSE(IsSafeRelativePath("a/./b"));
  EXPECT_FALSE(IsSafeRelativePath("a/../b"));
  EXPECT_FALSE(IsSafeRelativePath(".."));
  EXPECT_FALSE(IsSafeRelativePath(std::string("a\0b", 3)));
  EXPECT_FALSE(IsSafeRelativePath(std::string(4097, 'a')));
  // 4096 bytes in all is fine; a single component is limited to NAME_MAX (255).
  std::string long_path;
  while (long_path.size() < 4096) long_path += std::string(200, 'a') + "/";
  long_path.resize(4096);
  if (long_path.back() == '/') long_path.back() = 'b';
  EXPECT_TRUE(IsSafeRelativePath(long_path));
  EXPECT_TRUE(IsSafeRelativePath(std::string(255, 'a')));
  EXPECT_FALSE(IsSafeRelativePath(std::string(256, 'a')));
}

// ---- corruption --------------------------------------------------------------

Code ReadCode(const std::string& t) {
  std::vector<Item> got;
  return ReadAll(t, &got).code();
}

TEST(DeltaTableReader, EveryTruncationIsCorrupt) {
  std::string t = Write(Sample());
  ASSERT_EQ(ReadCode(t), Code::kOk);
  for (size_t n = 0; n < t.size(); ++n) EXPECT_EQ(ReadCode(t.substr(0, n)), Code::kCorrupt) << "prefix " << n;
}

TEST(DeltaTableReader, BadMagicVersionFlagsReserved) {
  std::string t = Write(Sample());
  std::string bad = t;
  bad[0] = 'X';
  EXPECT_EQ(ReadCode(bad), Code::kCorrupt);
  bad = t;
  bad[4] = 3;
  EXPECT_EQ(ReadCode(bad), Code::kCorrupt);
  bad = t;
  bad[7] = 1;  // unknown flag bit
  EXPECT_EQ(ReadCode(bad), Code::kCorrupt);
  bad = t;
  bad[9] = 1;
  EXPECT_EQ(ReadCode(bad), Code::kCorrupt);
}

TEST(DeltaTable, AnAddedFileMayBeADeltaAgainstAnotherPath) {
  DeltaEntry a;
  a.op = Op::kAdd;
  a.path = "new/place/x.js";
  a.mode = 0644;
  a.size = 100;
  a.hash = H(7);
  a.encoding = Encoding::kDelta;
  a.base_path = "old/place/x.js";
  a.base_size = 90;
  a.base_hash = H(8);
  StringSink sink;
  DeltaTableWriter w(&sink);
  ASSERT_TRUE(w.Begin(0).ok());
  ASSERT_TRUE(w.AddEntry(a).ok());
  ASSERT_TRUE(w.AddDeltaBytes("\x02\x01z\x00", 4).ok());
  ASSERT_TRUE(w.End().ok());
  StringSource src(sink.data());
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  DeltaEntry got;
  auto more = r.Next(&got);
  ASSERT_TRUE(more.ok() && *more) << more.status().message();
  EXPECT_EQ(got.base_path, a.base_path);
  EXPECT_EQ(got.encoding, Encoding::kDelta);
  EXPECT_EQ(got.base_hash, a.base_hash);
  char buf[8];
  auto n = r.ReadDeltaBytes(buf, sizeof buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 4u);
  // A base path equal to the path, or unsafe, is refused by the writer.
  for (std::string bad : {std::string("new/place/x.js"), std::string("../x"), std::string()}) {
    DeltaEntry b = a;
    b.base_path = bad;
    StringSink s2;
    DeltaTableWriter w2(&s2);
    ASSERT_TRUE(w2.Begin(0).ok());
    EXPECT_FALSE(w2.AddEntry(b).ok()) << bad;
  }
}

// A version 1 table (before ADD entries had an encoding) is still read.
TEST(DeltaTableReader, ReadsVersion1) {
  std::string t;
  ByteWriter w(&t);
  w.Bytes(kTableMagic, 4);
  w.U16(1);
  w.U16(0);
  w.U32(0);
  auto record = [&](uint8_t type, const std::string& payload) {
    w.U8(type);
    w.Varint(payload.size());
    w.Bytes(payload);
  };
  std::string e;
  ByteWriter ew(&e);
  ew.U8(3);  // MODIFY
  ew.U8(1);  // file
  ew.Str("f");
  ew.Varint(0644);
  ew.Varint(0);
  ew.Varint(0);
  ew.SVarint(5);
  ew.Varint(1);
  Hash256 h = H(1);
  ew.Bytes(h.data(), 32);
  ew.U8(1);  // DELTA, v1: no base path
  ew.Varint(3);
  ew.Bytes(h.data(), 32);
  record(kRecEntry, e);
  record(kRecDeltaChunk, std::string("\x02\x01z\x00", 4));
  std::string add;
  ByteWriter aw(&add);
  aw.U8(1);  // ADD file: v1 has no encoding byte
  aw.U8(1);
  aw.Str("g");
  aw.Varint(0644);
  aw.Varint(0);
  aw.Varint(0);
  aw.SVarint(5);
  aw.Varint(1);
  aw.Bytes(h.data(), 32);
  record(kRecEntry, add);
  Hash256 all = HashBytes(t.data(), t.size());
  std::string end;
  ByteWriter endw(&end);
  endw.Varint(2);
  endw.Bytes(all.data(), 32);
  record(kRecEnd, end);
  StringSource src(t);
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  DeltaEntry got;
  auto more = r.Next(&got);
  ASSERT_TRUE(more.ok() && *more) << more.status().message();
  EXPECT_EQ(got.encoding, Encoding::kDelta);
  EXPECT_EQ(got.base_size, 3u);
  EXPECT_TRUE(got.base_path.empty());
  more = r.Next(&got);
  ASSERT_TRUE(more.ok() && *more) << more.status().message();
  EXPECT_EQ(got.path, "g");
  EXPECT_EQ(got.encoding, Encoding::kWhole);
  more = r.Next(&got);
  ASSERT_TRUE(more.ok()) << more.status().message();
  EXPECT_FALSE(*more);
}

TEST(DeltaTableReader, EveryFlippedByteIsCorrupt) {
  std::string t = Write(Sample());
  for (size_t i = 0; i < t.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string bad = t;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      EXPECT_EQ(ReadCode(bad), Code::kCorrupt) << "byte " << i << " mask " << int(mask);
    }
  }
}

TEST(DeltaTableReader, TrailingDataIsCorrupt) {
  EXPECT_EQ(ReadCode(Write(Sample()) + "x"), Code::kCorrupt);
}

TEST(DeltaTableReader, OversizeRecordsAreCorrupt) {
  std::string t = Write({});
  std::string head = t.substr(0, 12);
  // A chunk record announcing more than kMaxRecord bytes.
  for (uint8_t type : {uint8_t{kRecEntry}, uint8_t{kRecDeltaChunk}, uint8_t{kRecEnd}, uint8_t{9}}) {
    std::string bad = head;
    ByteWriter w(&bad);
    w.U8(type);
    w.Varint(uint64_t{kMaxRecord} + 1);
    EXPECT_EQ(ReadCode(bad), Code::kCorrupt);
    // And a 10-byte varint length.
    bad = head;
    ByteWriter w2(&bad);
    w2.U8(type);
    w2.Varint(UINT64_MAX);
    EXPECT_EQ(ReadCode(bad), Code::kCorrupt);
  }
  // An entry record longer than any valid entry (without the bytes present).
  std::string bad = head;
  ByteWriter w(&bad);
  w.U8(kRecEntry);
  w.Varint(1 << 20);
  EXPECT_EQ(ReadCode(bad), Code::kCorrupt);
}

TEST(DeltaTableReader, ChunkWithoutDeltaEntryIsCorrupt) {
  // A well-hashed table whose only record is a stray chunk: build by hand.
  std::string t = Write({}).substr(0, 12);
  ByteWriter w(&t);
  w.U8(kRecDeltaChunk);
  w.Varint(1);
  w.U8(0);
  EXPECT_EQ(ReadCode(t), Code::kCorrupt);
}

TEST(DeltaTableReader, EndCountMismatchIsCorrupt) {
  // Rebuild a valid table with a wrong END count, with the right hash.
  std::string t = Write({});
  std::string body = t.substr(0, 12);
  Hash256 h = HashBytes(body.data(), body.size());
  std::string end;
  ByteWriter pw(&end);
  pw.Varint(1);
  pw.Bytes(h.data(), h.size());
  std::string bad = body;
  ByteWriter w(&bad);
  w.U8(kRecEnd);
  w.Varint(end.size());
  w.Bytes(end);
  EXPECT_EQ(ReadCode(bad), Code::kCorrupt);
  // Same with count 0 is valid: proves the hand-built form is right.
  std::string good = body;
  std::string end0;
  ByteWriter pw0(&end0);
  pw0.Varint(0);
  pw0.Bytes(h.data(), h.size());
  ByteWriter w0(&good);
  w0.U8(kRecEnd);
  w0.Varint(end0.size());
  w0.Bytes(end0);
  EXPECT_EQ(ReadCode(good), Code::kOk);
}

// Thousands of random and mutated tables: the reader always ends in ok or
// kCorrupt and never crashes (run under ASan/UBSan too).
TEST(DeltaTableReader, RandomAndMutatedInputsNeverCrash) {
  std::mt19937_64 rng(12345);
  std::string valid = Write(Sample());
  int ok = 0, corrupt = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string t;
    switch (iter % 4) {
      case 0: {  // random bytes behind a valid header
        t = valid.substr(0, 12);
        size_t n = rng() % 200;
        for (size_t i = 0; i < n; ++i) t.push_back(static_cast<char>(rng()));
        break;
      }
      case 1: {  // point mutations
        t = valid;
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < flips; ++i) t[rng() % t.size()] = static_cast<char>(rng());
        break;
      }
      case 2: {  // splice: cut a range out or duplicate one
        t = valid;
        size_t a = rng() % t.size(), b = rng() % t.size();
        if (a > b) std::swap(a, b);
        if (rng() % 2)
          t.erase(a, b - a);
        else
          t.insert(a, t.substr(a, b - a));
        break;
      }
      default: {  // fully random
        size_t n = rng() % 64;
        for (size_t i = 0; i < n; ++i) t.push_back(static_cast<char>(rng()));
        break;
      }
    }
    Code c = ReadCode(t);
    ASSERT_TRUE(c == Code::kOk || c == Code::kCorrupt) << CodeName(c);
    (c == Code::kOk ? ok : corrupt)++;
  }
  EXPECT_GT(corrupt, 4900);
}

// ---- property: random entries round-trip -------------------------------------

rc::Gen<std::string> PathGen() {
  auto comp = rc::gen::suchThat(
      rc::gen::container<std::string>(rc::gen::suchThat(rc::gen::arbitrary<char>(), [](char c) {
        return c != '/' && c != '\0';
      })),
      [](const std::string& s) { return !s.empty() && s != "." && s != ".." && s.size() < 64; });
  return rc::gen::map(rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(comp)),
                      [](const std::vector<std::string>& parts) {
                        std::string p;
                        for (size_t i = 0; i < parts.size() && i < 8; ++i) p += (i ? "/" : "") + parts[i];
                        return p;
                      });
}

rc::Gen<Item> ItemGen() {
  return rc::gen::exec([] {
    Item it;
    DeltaEntry& e = it.e;
    e.op = static_cast<Op>(*rc::gen::inRange(1, 5));
    e.kind = static_cast<Kind>(*rc::gen::inRange(1, 4));
    e.path = *PathGen();
    e.mode = *rc::gen::inRange<uint32_t>(0, 010000);
    e.uid = *rc::gen::arbitrary<uint32_t>();
    e.gid = *rc::gen::arbitrary<uint32_t>();
    e.mtime_ns = *rc::gen::arbitrary<int64_t>();
    e.size = *rc::gen::arbitrary<uint64_t>();
    for (auto& b : e.hash) b = *rc::gen::arbitrary<uint8_t>();
    bool content = e.op == Op::kAdd || e.op == Op::kModify;
    if (e.kind == Kind::kSymlink && content) e.link_target = *PathGen();
    if (e.kind == Kind::kFile && e.op == Op::kModify && *rc::gen::arbitrary<bool>()) {
      e.encoding = Encoding::kDelta;
      e.base_size = *rc::gen::arbitrary<uint64_t>();
      for (auto& b : e.base_hash) b = *rc::gen::arbitrary<uint8_t>();
      it.delta = *rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::arbitrary<char>()));
    }
    return it;
  });
}

RC_GTEST_PROP(DeltaTable, RandomEntriesRoundTrip, ()) {
  const auto items = *rc::gen::container<std::vector<Item>>(ItemGen());
  const auto flags = *rc::gen::element<uint16_t>(0, kTableFlagChecksum);
  const auto piece = *rc::gen::inRange<size_t>(0, 5);
  std::string t = Write(items, flags, piece);
  std::vector<Item> got;
  uint16_t f = 0;
  Status st = ReadAll(t, &got, true, &f);
  RC_ASSERT(st.ok());
  RC_ASSERT(f == flags);
  RC_ASSERT(got.size() == items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    RC_ASSERT(SameEntry(items[i].e, got[i].e));
    RC_ASSERT(items[i].delta == got[i].delta);
  }
  // Deterministic encoding.
  RC_ASSERT(Write(items, flags, piece) == t);
}

}  // namespace
}  // namespace cm::delta

namespace cm::delta {
namespace {

TableBase SampleBase() {
  TableBase b;
  b.release = "s000000000041-job41";
  b.serial = 41;
  for (size_t i = 0; i < 32; ++i) {
    b.manifest[i] = static_cast<uint8_t>(i + 1);
    b.result_manifest[i] = static_cast<uint8_t>(200 - i);
  }
  return b;
}

std::string WriteWithBase(const std::optional<TableBase>& base, const std::vector<DeltaEntry>& entries) {
  StringSink sink;
  DeltaTableWriter w(&sink);
  if (base) w.SetBase(*base);
  EXPECT_TRUE(w.Begin(0).ok());
  for (const auto& e : entries) EXPECT_TRUE(w.AddEntry(e).ok());
  EXPECT_TRUE(w.End().ok());
  return sink.data();
}

DeltaEntry Dir(const std::string& p) {
  DeltaEntry e;
  e.op = Op::kAdd;
  e.kind = Kind::kDir;
  e.path = p;
  e.mode = 0755;
  return e;
}

// Raw record bytes: type | varint length | payload.
std::string Record(uint8_t type, const std::string& payload) {
  std::string out;
  ByteWriter w(&out);
  w.U8(type);
  w.Varint(payload.size());
  w.Bytes(payload);
  return out;
}

std::string Header(uint16_t version) {
  std::string h;
  ByteWriter w(&h);
  w.Bytes(kTableMagic, 4);
  w.U16(version);
  w.U16(0);
  w.U32(0);
  return h;
}

TEST(DeltaTableBase, RoundTripsAsVersion3) {
  const TableBase b = SampleBase();
  std::string t = WriteWithBase(b, {Dir("a"), Dir("a/b")});
  EXPECT_EQ(static_cast<uint8_t>(t[4]), 3);  // version, little-endian
  StringSource src(t);
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  EXPECT_EQ(r.version(), 3);
  ASSERT_TRUE(r.base().has_value());
  EXPECT_EQ(*r.base(), b);
  DeltaEntry e;
  int n = 0;
  for (;;) {
    auto more = r.Next(&e);
    ASSERT_TRUE(more.ok()) << more.status().message();
    if (!*more) break;
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST(DeltaTableBase, ATableWithoutBaseStaysVersion2) {
  std::string t = WriteWithBase(std::nullopt, {Dir("a")});
  EXPECT_EQ(static_cast<uint8_t>(t[4]), 2);
  StringSource src(t);
  DeltaTableReader r(&src);
  ASSERT_TRUE(r.Begin().ok());
  EXPECT_FALSE(r.base().has_value());
}

TEST(DeltaTableBase, EveryFlippedByteOfTheBaseIsCorrupt) {
  std::string t = WriteWithBase(SampleBase(), {Dir("a")});
  for (size_t i = 12; i < t.size(); ++i) {
    std::string bad = t;
    bad[i] ^= 0x40;
    std::vector<Item> items;
    Status st = ReadAll(bad, &items);
    EXPECT_EQ(st.code(), Code::kCorrupt) << "byte " << i;
  }
}

TEST(DeltaTableBase, Version3WithoutTheBaseFirstIsCorrupt) {
  std::string entry;
  {
    // An entry record as a v2 writer makes it.
    std::string t2 = WriteWithBase(std::nullopt, {Dir("a")});
    entry = t2.substr(12, t2.size() - 12);
  }
  StringSource src(Header(3) + entry);
  DeltaTableReader r(&src);
  Status st = r.Begin();
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("base record"), std::string::npos) << st.message();
}

TEST(DeltaTableBase, MisplacedOrDuplicatedBaseIsCorrupt) {
  std::string payload;
  EncodeTableBase(SampleBase(), &payload);
  const std::string base = Record(kRecBase, payload);
  for (const std::string& t : {Header(2) + base, Header(3) + base + base, Header(1) + base}) {
    StringSource src(t);
    DeltaTableReader r(&src);
    Status st = r.Begin();
    DeltaEntry e;
    if (st.ok()) st = r.Next(&e).status();
    EXPECT_EQ(st.code(), Code::kCorrupt);
    EXPECT_NE(st.message().find("base record not first"), std::string::npos) << st.message();
  }
}

TEST(DeltaTableBase, MalformedBasePayloadsAreRefused) {
  TableBase b = SampleBase();
  std::string p;
  EncodeTableBase(b, &p);
  TableBase out;
  EXPECT_TRUE(DecodeTableBase(p, &out));
  EXPECT_FALSE(DecodeTableBase(p + "x", &out));               // trailing bytes
  EXPECT_FALSE(DecodeTableBase(p.substr(0, p.size() - 1), &out));  // truncated
  b.release = "bad name";                                      // not printable without spaces
  p.clear();
  EncodeTableBase(b, &p);
  EXPECT_FALSE(DecodeTableBase(p, &out));
  b.release = std::string(kMaxBaseRelease + 1, 'x');
  p.clear();
  EncodeTableBase(b, &p);
  EXPECT_FALSE(DecodeTableBase(p, &out));
  // The writer refuses it rather than write a table no reader takes.
  StringSink sink;
  DeltaTableWriter w(&sink);
  w.SetBase(b);
  EXPECT_FALSE(w.Begin(0).ok());
}

// A reader of version 2 (before the base record) refuses any version above
// 2: the same check this reader applies to version 4.
TEST(DeltaTableBase, VersionsAboveThreeAreRefused) {
  std::string t = WriteWithBase(SampleBase(), {});
  t[4] = 4;
  StringSource src(t);
  DeltaTableReader r(&src);
  Status st = r.Begin();
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("unsupported version 4"), std::string::npos);
}

}  // namespace
}  // namespace cm::delta

namespace cm::delta {
namespace {

DeltaEntry Times(const std::string& first, const std::string& last, uint64_t count, int64_t mtime = 1700000000) {
  DeltaEntry e;
  e.op = Op::kTimes;
  e.kind = Kind::kFile;
  e.path = first;
  e.last_path = last;
  e.size = count;
  e.mtime_ns = mtime;
  return e;
}

// Writes entries with the runs flag; false when the writer refused one.
bool WriteRuns(const std::vector<DeltaEntry>& es, std::string* out, uint16_t flags = kTableFlagTimeRuns) {
  StringSink sink;
  DeltaTableWriter w(&sink);
  if (!w.Begin(flags).ok()) return false;
  for (const auto& e : es)
    if (!w.AddEntry(e).ok()) return false;
  if (!w.End().ok()) return false;
  *out = sink.data();
  return true;
}

TEST(DeltaTableTimes, RunsRoundTripAfterTheOtherEntries) {
  std::string t;
  ASSERT_TRUE(WriteRuns({Dir("a"), Times("a", "a/z", 12), Times("b", "c/d", 3, -5)}, &t));
  std::vector<Item> got;
  uint16_t flags = 0;
  ASSERT_TRUE(ReadAll(t, &got, true, &flags).ok());
  EXPECT_EQ(flags, kTableFlagTimeRuns);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].e.op, Op::kTimes);
  EXPECT_EQ(got[1].e.path, "a");
  EXPECT_EQ(got[1].e.last_path, "a/z");
  EXPECT_EQ(got[1].e.size, 12u);
  EXPECT_EQ(got[1].e.mtime_ns, 1700000000);
  EXPECT_EQ(got[2].e.last_path, "c/d");
  EXPECT_EQ(got[2].e.mtime_ns, -5);
  EXPECT_STREQ(OpName(Op::kTimes), "times");
  // Every truncation and every flipped byte is refused (or reads as other valid entries).
  for (size_t n = 0; n < t.size(); ++n) EXPECT_EQ(ReadCode(t.substr(0, n)), Code::kCorrupt) << n;
}

TEST(DeltaTableTimes, WriterRefusesRunsOutOfPlace) {
  std::string t;
  EXPECT_FALSE(WriteRuns({Times("a", "b", 1)}, &t, 0));                      // no flag
  EXPECT_FALSE(WriteRuns({Times("a", "b", 1), Dir("c")}, &t));              // an entry after a run
  EXPECT_FALSE(WriteRuns({Times("a", "b", 1), Times("b", "c", 1)}, &t));    // overlapping
  EXPECT_FALSE(WriteRuns({Times("c", "d", 1), Times("a", "b", 1)}, &t));    // out of order
  EXPECT_FALSE(WriteRuns({Times("b", "a", 1)}, &t));                        // last before first
  EXPECT_FALSE(WriteRuns({Times("a/b", "a", 1)}, &t));                      // a child before its directory
  EXPECT_FALSE(WriteRuns({Times("a", "b", 0)}, &t));                        // empty
  EXPECT_FALSE(WriteRuns({Times("a", "b", 1, 0)}, &t));                     // mtime 0 means "leave"
  EXPECT_FALSE(WriteRuns({Times("a", "../b", 1)}, &t));                     // unsafe
  EXPECT_TRUE(WriteRuns({Times("a", "a", 1)}, &t));
}

// A table of these entries whatever their order (the writer would refuse
// some), with a valid END: what a buggy or hostile writer could produce.
std::string Craft(const std::vector<DeltaEntry>& es, uint16_t flags = kTableFlagTimeRuns) {
  std::string t;
  ByteWriter hw(&t);
  hw.Bytes(kTableMagic, 4);
  hw.U16(kTableVersion);
  hw.U16(flags);
  hw.U32(0);
  for (const auto& e : es) {
    StringSink one;
    DeltaTableWriter w(&one);
    EXPECT_TRUE(w.Begin(kTableFlagTimeRuns).ok());
    EXPECT_TRUE(w.AddEntry(e).ok());
    t += one.data().substr(12);
  }
  Hash256 h = HashBytes(t.data(), t.size());
  std::string p;
  ByteWriter w(&p);
  w.Varint(es.size());
  w.Bytes(h.data(), h.size());
  return t + Record(kRecEnd, p);
}

TEST(DeltaTableTimes, ReaderRefusesRunsWithoutTheFlagOrOutOfPlace) {
  EXPECT_EQ(ReadCode(Craft({Dir("a"), Times("b", "c", 2)})), Code::kOk);
  EXPECT_EQ(ReadCode(Craft({Dir("a"), Times("b", "c", 2)}, 0)), Code::kCorrupt);
  EXPECT_EQ(ReadCode(Craft({Times("b", "c", 2), Dir("d")})), Code::kCorrupt);
  EXPECT_EQ(ReadCode(Craft({Times("b", "c", 2), Times("c", "d", 2)})), Code::kCorrupt);
  EXPECT_EQ(ReadCode(Craft({Times("c", "d", 2), Times("a", "b", 2)})), Code::kCorrupt);
  EXPECT_EQ(ReadCode(Craft({Times("b", "c", 2), Times("c/x", "d", 2)})), Code::kOk);  // c's children follow c
  EXPECT_EQ(ReadCode(Craft({Times("b", "c", 2), Times("d", "e", 2)})), Code::kOk);
}

}  // namespace
}  // namespace cm::delta
