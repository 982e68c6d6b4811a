#include "delta/delta_table.h"

#include "util/path_util.h"

#include <algorithm>
#include <cstring>

#include "delta/tree_walk.h"
#include "util/byte_io.h"

namespace cm::delta {
namespace {

constexpr size_t kHeaderSize = 12;
// An entry payload is a few fixed fields plus a path and a link target of at
// most kMaxPathBytes each; anything longer is corrupt, whatever kMaxRecord says.
constexpr size_t kMaxPathBytes = 4096;
constexpr uint32_t kMaxEntryRecord = 2 * kMaxPathBytes + 256;
constexpr uint32_t kMaxEndRecord = 10 + 32;
constexpr uint32_t kMaxBaseRecord = 2 + kMaxBaseRelease + 10 + 64;
// Instruction bytes are written in records of at most this size.
constexpr size_t kChunkSize = 1 << 20;

Status Corrupt(const std::string& what) { return Error(Code::kCorrupt, "delta table: " + what); }

bool HasHash(const DeltaEntry& e) {
  return e.kind == Kind::kFile && (e.op == Op::kAdd || e.op == Op::kModify);
}
bool HasTarget(const DeltaEntry& e) {
  return e.kind == Kind::kSymlink && (e.op == Op::kAdd || e.op == Op::kModify);
}
// Version 1: MODIFY files only; version 2 also ADD files (a delta against a
// base elsewhere in the old tree: base_path).
bool HasEncoding(const DeltaEntry& e, uint16_t version = kTableVersion) {
  return e.kind == Kind::kFile && (e.op == Op::kModify || (version >= 2 && e.op == Op::kAdd));
}

// Semantic checks shared by writer and reader (the reader maps a failure to
// kCorrupt, the writer to kFailure since it means a caller bug).
const char* ValidateEntry(const DeltaEntry& e) {
  if (e.op < Op::kAdd || e.op > Op::kTimes) return "bad op";
  if (e.op == Op::kTimes) {
    if (e.kind != Kind::kFile || e.mode != 0 || e.uid != 0 || e.gid != 0) return "bad TIMES entry";
    if (e.mtime_ns == 0 || e.size == 0) return "bad TIMES entry";
    if (!IsSafeRelativePath(e.path) || !IsSafeRelativePath(e.last_path) || ComparePaths(e.path, e.last_path) > 0)
      return "bad TIMES range";
    return nullptr;
  }
  if (!e.last_path.empty()) return "bad entry";
  if (e.kind < Kind::kFile || e.kind > Kind::kSymlink) return "bad kind";
  if (!IsSafeRelativePath(e.path)) return "unsafe path";
  if (e.mode > 07777) return "bad mode";
  if (HasTarget(e) && (e.link_target.empty() || e.link_target.size() > kMaxPathBytes ||
                       e.link_target.find('\0') != std::string::npos))
    return "bad symlink target";
  if (HasEncoding(e) && e.encoding != Encoding::kWhole && e.encoding != Encoding::kDelta)
    return "bad encoding";
  const bool cross = e.op == Op::kAdd && e.kind == Kind::kFile && e.encoding == Encoding::kDelta;
  if (cross ? !IsSafeRelativePath(e.base_path) || e.base_path == e.path : !e.base_path.empty())
    return "bad base path";
  return nullptr;
}

}  // namespace

const char* OpName(Op op) {
  switch (op) {
    case Op::kAdd: return "add";
    case Op::kRemove: return "remove";
    case Op::kModify: return "modify";
    case Op::kMeta: return "meta";
    case Op::kTimes: return "times";
  }
  return "?";
}

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kFile: return "file";
    case Kind::kDir: return "dir";
    case Kind::kSymlink: return "symlink";
  }
  return "?";
}

bool IsSafeRelativePath(const std::string& path) { return IsSafeContentPath(path); }

bool IsZeroHash(const Hash256& h) {
  for (uint8_t b : h)
    if (b) return false;
  return true;
}

void EncodeTableBase(const TableBase& b, std::string* out) {
  ByteWriter w(out);
  w.Str(b.release);
  w.Varint(b.serial);
  w.Bytes(b.manifest.data(), b.manifest.size());
  w.Bytes(b.result_manifest.data(), b.result_manifest.size());
}

bool DecodeTableBase(std::string_view payload, TableBase* b) {
  ByteReader r(payload);
  TableBase out;
  if (!r.Str(&out.release, kMaxBaseRelease) || !r.Varint(&out.serial) ||
      !r.Bytes(out.manifest.data(), out.manifest.size()) ||
      !r.Bytes(out.result_manifest.data(), out.result_manifest.size()) || !r.AtEnd())
    return false;
  for (unsigned char c : out.release)
    if (c <= 0x20 || c >= 0x7f) return false;
  *b = std::move(out);
  return true;
}

// ---- writer ------------------------------------------------------------------

DeltaTableWriter::DeltaTableWriter(ByteSink* sink) : sink_(sink) {}

Status DeltaTableWriter::Begin(uint16_t flags) {
  flags_ = flags;
  std::string h;
  ByteWriter w(&h);
  w.Bytes(kTableMagic, 4);
  w.U16(base_ ? kTableVersionBase : kTableVersion);
  w.U16(flags);
  w.U32(0);
  hasher_.Update(h);
  CM_RETURN_IF_ERROR(sink_->Write(h.data(), h.size()));
  if (!base_) return Status::Ok();
  std::string p;
  EncodeTableBase(*base_, &p);
  TableBase check;
  if (!DecodeTableBase(p, &check)) return Error(Code::kFailure, "delta table: bad base release name");
  return WriteRecord(kRecBase, p);
}

Status DeltaTableWriter::WriteRecord(uint8_t type, const std::string& payload) {
  if (payload.size() > kMaxRecord) return Error(Code::kFailure, "delta table: record too large");
  std::string hdr;
  ByteWriter w(&hdr);
  w.U8(type);
  w.Varint(payload.size());
  hasher_.Update(hdr);
  hasher_.Update(payload);
  CM_RETURN_IF_ERROR(sink_->Write(hdr.data(), hdr.size()));
  return sink_->Write(payload.data(), payload.size());
}

Status DeltaTableWriter::AddEntry(const DeltaEntry& e) {
  if (const char* why = ValidateEntry(e))
    return Error(Code::kFailure, "delta table: " + e.path + ": " + why);
  if (delta_open_ && delta_written_ == 0)
    return Error(Code::kFailure, "delta table: DELTA entry without instructions");
  if (e.op == Op::kTimes ? !(flags_ & kTableFlagTimeRuns) ||
                               (!times_last_.empty() && ComparePaths(times_last_, e.path) >= 0)
                         : !times_last_.empty())
    return Error(Code::kFailure, "delta table: " + e.path + ": TIMES entry out of place");
  std::string p;
  ByteWriter w(&p);
  w.U8(static_cast<uint8_t>(e.op));
  w.U8(static_cast<uint8_t>(e.kind));
  w.Str(e.path);
  w.Varint(e.mode);
  w.Varint(e.uid);
  w.Varint(e.gid);
  w.SVarint(e.mtime_ns);
  w.Varint(e.size);
  if (HasHash(e)) w.Bytes(e.hash.data(), e.hash.size());
  if (HasTarget(e)) w.Str(e.link_target);
  if (HasEncoding(e)) {
    w.U8(static_cast<uint8_t>(e.encoding));
    if (e.encoding == Encoding::kDelta) {
      w.Str(e.base_path);
      w.Varint(e.base_size);
      w.Bytes(e.base_hash.data(), e.base_hash.size());
    }
  }
  if (e.op == Op::kTimes) {
    w.Str(e.last_path);
    times_last_ = e.last_path;
  }
  CM_RETURN_IF_ERROR(WriteRecord(kRecEntry, p));
  ++entries_;
  delta_open_ = HasEncoding(e) && e.encoding == Encoding::kDelta;
  delta_written_ = 0;
  return Status::Ok();
}

Status DeltaTableWriter::AddDeltaBytes(const void* data, size_t n) {
  if (!delta_open_) return Error(Code::kFailure, "delta table: instruction bytes without a DELTA entry");
  const char* p = static_cast<const char*>(data);
  delta_written_ += n;
  while (n > 0) {
    size_t take = std::min(n, kChunkSize);
    CM_RETURN_IF_ERROR(WriteRecord(kRecDeltaChunk, std::string(p, take)));
    p += take;
    n -= take;
  }
  return Status::Ok();
}

Status DeltaTableWriter::End() {
  if (delta_open_ && delta_written_ == 0)
    return Error(Code::kFailure, "delta table: DELTA entry without instructions");
  std::string p;
  ByteWriter w(&p);
  w.Varint(entries_);
  Hash256 h = hasher_.Finish();
  w.Bytes(h.data(), h.size());
  std::string hdr;
  ByteWriter hw(&hdr);
  hw.U8(kRecEnd);
  hw.Varint(p.size());
  CM_RETURN_IF_ERROR(sink_->Write(hdr.data(), hdr.size()));
  return sink_->Write(p.data(), p.size());
}

// ---- reader ------------------------------------------------------------------

DeltaTableReader::DeltaTableReader(ByteSource* src) : src_(src) {}

Status DeltaTableReader::Begin() {
  uint8_t h[kHeaderSize];
  Status st = src_->ReadExact(h, sizeof h, "delta table header");
  if (!st.ok()) return st.code() == Code::kCorrupt ? Corrupt("truncated header") : st;
  if (std::memcmp(h, kTableMagic, 4) != 0) return Corrupt("bad magic (not a delta table)");
  ByteReader r(h + 4, sizeof h - 4);
  uint16_t version = 0;
  uint32_t reserved = 0;
  r.U16(&version);
  r.U16(&flags_);
  r.U32(&reserved);
  if (version < 1 || version > kTableVersionBase) return Corrupt("unsupported version " + std::to_string(version));
  version_ = version;
  if ((flags_ & ~(kTableFlagChecksum | kTableFlagNoTimes | kTableFlagTimeRuns)) != 0) return Corrupt("unknown flags");
  if (reserved != 0) return Corrupt("nonzero reserved field");
  hasher_.Update(h, sizeof h);
  if (version_ < kTableVersionBase) return Status::Ok();
  // Version 3: the base record comes first.
  uint8_t type;
  uint32_t len;
  CM_RETURN_IF_ERROR(ReadRecordHeader(&type, &len));
  if (type != kRecBase) return Corrupt("version 3 table without its base record first");
  if (len > kMaxBaseRecord) return Corrupt("base record too large");
  std::string p(len, '\0');
  st = src_->ReadExact(p.data(), len, "base record");
  if (!st.ok()) return st.code() == Code::kCorrupt ? Corrupt("truncated base record") : st;
  hasher_.Update(p);
  TableBase b;
  if (!DecodeTableBase(p, &b)) return Corrupt("malformed base record");
  base_ = std::move(b);
  return Status::Ok();
}

// Reads a record header (type and length) and hashes it. A clean end of input
// before the type byte is still corruption: a table ends with its END record.
Status DeltaTableReader::ReadRecordHeader(uint8_t* type, uint32_t* len) {
  uint8_t hdr[11];
  size_t n = 0;
  Status st = src_->ReadExact(hdr, 1, "record");
  if (!st.ok()) return st.code() == Code::kCorrupt ? Corrupt("truncated (no END record)") : st;
  n = 1;
  uint64_t length = 0;
  for (int shift = 0;; shift += 7) {
    if (n == sizeof hdr) return Corrupt("bad record length");
    st = src_->ReadExact(hdr + n, 1, "record");
    if (!st.ok()) return st.code() == Code::kCorrupt ? Corrupt("truncated record header") : st;
    uint8_t b = hdr[n++];
    if (shift >= 35) return Corrupt("record length too large");
    length |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  if (length > kMaxRecord) return Corrupt("record length too large");
  *type = hdr[0];
  *len = static_cast<uint32_t>(length);
  if (*type != kRecEnd) hasher_.Update(hdr, n);
  return Status::Ok();
}

Result<bool> DeltaTableReader::Next(DeltaEntry* e) {
  if (done_) return false;
  // Skip what is left of the previous DELTA entry's instruction stream.
  if (in_delta_) {
    char buf[16384];
    for (;;) {
      auto r = ReadDeltaBytes(buf, sizeof buf);
      if (!r.ok()) return r.status();
      if (*r == 0) break;
    }
  }
  uint8_t type;
  uint32_t len;
  if (have_peek_) {
    type = peek_type_;
    len = peek_len_;
    have_peek_ = false;
  } else {
    CM_RETURN_IF_ERROR(ReadRecordHeader(&type, &len));
  }
  if (type == kRecDeltaChunk) return Corrupt("instruction bytes without a DELTA entry");
  if (type == kRecBase) return Corrupt("base record not first (or not in a version 3 table)");
  if (type == kRecEnd) {
    if (len > kMaxEndRecord) return Corrupt("END record too large");
    uint8_t p[kMaxEndRecord];
    Status st = src_->ReadExact(p, len, "END");
    if (!st.ok()) return st.code() == Code::kCorrupt ? Corrupt("truncated END record") : st;
    ByteReader r(p, len);
    uint64_t count = 0;
    Hash256 want{};
    if (!r.Varint(&count) || !r.Bytes(want.data(), want.size()) || !r.AtEnd())
      return Corrupt("malformed END record");
    if (count != entries_) return Corrupt("entry count mismatch");
    if (hasher_.Finish() != want) return Corrupt("table hash mismatch");
    uint8_t extra;
    auto more = src_->Read(&extra, 1);
    if (!more.ok()) return more.status();
    if (*more != 0) return Corrupt("data after END record");
    done_ = true;
    return false;
  }
  if (type != kRecEntry) return Corrupt("unknown record type " + std::to_string(type));
  if (len > kMaxEntryRecord) return Corrupt("entry record too large");
  chunk_.resize(len);
  Status st = src_->ReadExact(chunk_.data(), len, "entry");
  if (!st.ok()) return st.code() == Code::kCorrupt ? Corrupt("truncated entry") : st;
  hasher_.Update(chunk_);

  ByteReader r(chunk_);
  DeltaEntry out;
  uint8_t op = 0, kind = 0;
  uint64_t mode = 0, uid = 0, gid = 0;
  if (!r.U8(&op) || !r.U8(&kind) || !r.Str(&out.path, kMaxPathBytes) || !r.Varint(&mode) ||
      !r.Varint(&uid) || !r.Varint(&gid) || !r.SVarint(&out.mtime_ns) || !r.Varint(&out.size))
    return Corrupt("malformed entry");
  if (op < 1 || op > 5 || (op == 5 && !(flags_ & kTableFlagTimeRuns))) return Corrupt("bad op " + std::to_string(op));
  if (kind < 1 || kind > 3) return Corrupt("bad kind " + std::to_string(kind));
  if (mode > 07777 || uid > UINT32_MAX || gid > UINT32_MAX) return Corrupt("bad mode or owner");
  out.op = static_cast<Op>(op);
  out.kind = static_cast<Kind>(kind);
  out.mode = static_cast<uint32_t>(mode);
  out.uid = static_cast<uint32_t>(uid);
  out.gid = static_cast<uint32_t>(gid);
  if (HasHash(out) && !r.Bytes(out.hash.data(), out.hash.size())) return Corrupt("malformed entry");
  if (HasTarget(out) && !r.Str(&out.link_target, kMaxPathBytes)) return Corrupt("malformed entry");
  if (HasEncoding(out, version_)) {
    uint8_t enc = 0;
    if (!r.U8(&enc) || enc > 1) return Corrupt("bad encoding");
    out.encoding = static_cast<Encoding>(enc);
    if (out.encoding == Encoding::kDelta &&
        ((version_ >= 2 && !r.Str(&out.base_path, kMaxPathBytes)) || !r.Varint(&out.base_size) ||
         !r.Bytes(out.base_hash.data(), out.base_hash.size())))
      return Corrupt("malformed entry");
  }
  if (out.op == Op::kTimes) {
    if (!r.Str(&out.last_path, kMaxPathBytes)) return Corrupt("malformed entry");
    if (!times_last_.empty() && ComparePaths(times_last_, out.path) >= 0) return Corrupt("TIMES entries overlap or out of order");
  } else if (!times_last_.empty()) {
    return Corrupt(out.path + ": entry after a TIMES entry");
  }
  if (!r.AtEnd()) return Corrupt("trailing bytes in entry");
  if (const char* why = ValidateEntry(out)) return Corrupt(out.path + ": " + why);
  if (out.op == Op::kTimes) times_last_ = out.last_path;
  ++entries_;
  in_delta_ = HasEncoding(out, version_) && out.encoding == Encoding::kDelta;
  delta_seen_ = 0;
  chunk_left_ = 0;
  *e = std::move(out);
  return true;
}

Result<size_t> DeltaTableReader::ReadDeltaBytes(void* buf, size_t n) {
  if (!in_delta_ || n == 0) return size_t{0};
  while (chunk_left_ == 0) {
    uint8_t type;
    uint32_t len;
    CM_RETURN_IF_ERROR(ReadRecordHeader(&type, &len));
    if (type != kRecDeltaChunk) {
      // The stream ended; keep the header for Next.
      if (delta_seen_ == 0) return Corrupt("DELTA entry without instructions");
      have_peek_ = true;
      peek_type_ = type;
      peek_len_ = len;
      in_delta_ = false;
      return size_t{0};
    }
    if (len == 0) return Corrupt("empty instruction record");
    chunk_left_ = len;
  }
  size_t take = static_cast<size_t>(std::min<uint64_t>(n, chunk_left_));
  Status st = src_->ReadExact(buf, take, "instructions");
  if (!st.ok()) return st.code() == Code::kCorrupt ? Corrupt("truncated instructions") : st;
  hasher_.Update(buf, take);
  chunk_left_ -= take;
  delta_seen_ += take;
  return take;
}

}  // namespace cm::delta
