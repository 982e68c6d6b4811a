#include "pack/assignment_format.h"

#include <cstring>

#include "util/byte_io.h"

namespace cm::pack {

const char* TypeName(Type t) {
  switch (t) {
    case Type::kPublish: return "publish";
    case Type::kReplicate: return "replicate";
    case Type::kSynchronize: return "synchronize";
    case Type::kRestore: return "restore";
    case Type::kRemove: return "remove";
    case Type::kCommit: return "commit";
    case Type::kRollback: return "rollback";
    case Type::kHot: return "hot";
  }
  return "unknown";
}

std::optional<Type> ParseType(std::string_view n) {
  for (int i = 1; i <= 8; ++i) {
    auto t = static_cast<Type>(i);
    if (n == TypeName(t)) return t;
  }
  return std::nullopt;
}

const char* OpcodeName(Opcode op) {
  switch (op) {
    case Opcode::kMkdir: return "mkdir";
    case Opcode::kCreate: return "create";
    case Opcode::kPatch: return "patch";
    case Opcode::kRemove: return "remove";
    case Opcode::kRename: return "rename";
    case Opcode::kCopy: return "copy";
    case Opcode::kSetMeta: return "set-meta";
    case Opcode::kSymlink: return "symlink";
    case Opcode::kBase: return "base";
    case Opcode::kTouch: return "touch";
  }
  return "unknown";
}

bool IsValidJobId(std::string_view id) {
  if (id.empty() || id.size() > kJobIdMax) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return id != "." && id != "..";
}

// Header layout (little-endian):
//   0 magic[4] | 4 u16 version | 6 u16 header_size | 8 u8 type | 9 u8 flags |
//  10 u16 reserved | 12 u32 part | 16 u64 serial | 24 job_id[32] |
//  56 u64 created_unix | 64 u64 data_size | 72 u64 body_size |
//  80 u64 space_needed | 88 u64 command_count | 96 data_hash[32] |
// 128 key_id[8] | 136 zero[88] | 224 header_hash[32]
// v2 uses 136..208 of the zero bytes:
// 136 u32 chunk_size | 140 u32 chunk_count | 144 table_hash[32] |
// 176 trailer_hash[32] | 208 zero[16]
// Every version uses 208..216 for a rollback's target (zero otherwise):
// 208 u64 rollback_serial | 216 zero[8]
namespace {
constexpr size_t kChunkFieldsBegin = 136;
constexpr size_t kChunkFieldsEnd = 208;
constexpr size_t kRollbackSerialAt = 208;
constexpr size_t kRollbackSerialEnd = 216;
// Bounds sizes so that layout arithmetic cannot overflow.
constexpr uint64_t kMaxPartSize = uint64_t{1} << 62;
}  // namespace

std::string EncodeHeader(const Header& h) {
  std::string out;
  ByteWriter w(&out);
  w.Bytes(kMagic, 4);
  w.U16(h.version());
  w.U16(kHeaderSize);
  w.U8(static_cast<uint8_t>(h.type));
  w.U8(h.flags);
  w.U16(0);
  w.U32(h.part);
  w.U64(h.serial);
  char job[kJobIdMax] = {};
  std::memcpy(job, h.job_id.data(), std::min(h.job_id.size(), kJobIdMax));
  w.Bytes(job, kJobIdMax);
  w.U64(h.created_unix);
  w.U64(h.data_size);
  w.U64(h.body_size);
  w.U64(h.space_needed);
  w.U64(h.command_count);
  w.Bytes(h.data_hash.data(), 32);
  w.Bytes(h.key_id.data(), 8);
  if (h.has_chunk_table()) {
    w.U32(h.chunk_size);
    w.U32(h.chunk_count);
    w.Bytes(h.table_hash.data(), 32);
    w.Bytes(h.trailer_hash.data(), 32);
  }
  out.resize(kRollbackSerialAt, '\0');
  w.U64(h.rollback_serial);
  out.resize(kHeaderHashedSize, '\0');
  Hash256 hh = HashBytes(out.data(), out.size());
  w.Bytes(hh.data(), 32);
  return out;
}

Status DecodeHeader(std::string_view bytes, Header* h) {
  if (bytes.size() < kHeaderSize) return Error(Code::kCorrupt, "truncated header");
  if (std::memcmp(bytes.data(), kMagic, 4) != 0) return Error(Code::kCorrupt, "not an assignment (bad magic)");
  ByteReader r(bytes.substr(0, kHeaderSize));
  r.Skip(4);
  uint16_t version, hsize, reserved;
  uint8_t type;
  r.U16(&version);
  r.U16(&hsize);
  if (version != kVersion1 && version != kVersion2 && version != kVersion3)
    return Error(Code::kCorrupt, "unsupported assignment version " + std::to_string(version));
  if (hsize != kHeaderSize) return Error(Code::kCorrupt, "bad header size");
  Hash256 want = HashBytes(bytes.data(), kHeaderHashedSize);
  if (std::memcmp(want.data(), bytes.data() + kHeaderHashedSize, 32) != 0)
    return Error(Code::kCorrupt, "header hash mismatch");
  r.U8(&type);
  r.U8(&h->flags);
  r.U16(&reserved);
  r.U32(&h->part);
  r.U64(&h->serial);
  char job[kJobIdMax];
  r.Bytes(job, kJobIdMax);
  h->job_id.assign(job, strnlen(job, kJobIdMax));
  for (size_t i = h->job_id.size(); i < kJobIdMax; ++i)
    if (job[i] != 0) return Error(Code::kCorrupt, "job id in header is not NUL-padded");
  r.U64(&h->created_unix);
  r.U64(&h->data_size);
  r.U64(&h->body_size);
  r.U64(&h->space_needed);
  r.U64(&h->command_count);
  r.Bytes(h->data_hash.data(), 32);
  r.Bytes(h->key_id.data(), 8);
  r.U32(&h->chunk_size);
  r.U32(&h->chunk_count);
  r.Bytes(h->table_hash.data(), 32);
  r.Bytes(h->trailer_hash.data(), 32);
  if (!r.ok()) return Error(Code::kCorrupt, "truncated header");
  if (type < 1 || type > 8) return Error(Code::kCorrupt, "unknown assignment type " + std::to_string(type));
  h->type = static_cast<Type>(type);
  if (h->flags & ~(kFlagSigned | kFlagEncrypted | kFlagLastPart | kFlagChunkTable))
    return Error(Code::kCorrupt, "unknown header flags");
  if (reserved != 0) return Error(Code::kCorrupt, "nonzero reserved header field");
  const bool chunked = version != kVersion1;
  h->compact_body = version == kVersion3;
  if (chunked != h->has_chunk_table())
    return Error(Code::kCorrupt, chunked ? "assignment version " + std::to_string(version) +
                                               " without the chunk table flag"
                                         : "chunk table flag in an assignment of version 1");
  for (size_t i = chunked ? kChunkFieldsEnd : kChunkFieldsBegin; i < kHeaderHashedSize; ++i)
    if ((i < kRollbackSerialAt || i >= kRollbackSerialEnd) && bytes[i] != 0)
      return Error(Code::kCorrupt, "nonzero reserved header bytes");
  {
    ByteReader rs(bytes.substr(kRollbackSerialAt, 8));
    rs.U64(&h->rollback_serial);
  }
  if (h->rollback_serial != 0 && h->type != Type::kRollback)
    return Error(Code::kCorrupt, "a rollback target in a " + std::string(TypeName(h->type)) + " assignment");
  if (!IsValidJobId(h->job_id)) return Error(Code::kCorrupt, "invalid job id in header");
  if (h->serial == 0) return Error(Code::kCorrupt, "serial number 0 in header");
  if (h->part == 0) return Error(Code::kCorrupt, "part number 0 in header");
  if (h->data_size > kMaxPartSize || h->body_size > kMaxPartSize)
    return Error(Code::kCorrupt, "data or body size out of range in header");
  if (chunked) {
    if (!IsValidChunkSize(h->chunk_size))
      return Error(Code::kCorrupt, "bad chunk size " + std::to_string(h->chunk_size) + " in header");
    if (h->chunk_count > kMaxChunkCount ||
        h->chunk_count != ChunkCountFor(h->data_size + h->body_size, h->chunk_size))
      return Error(Code::kCorrupt, "chunk count in header does not match the sizes");
  }
  return Status::Ok();
}

Layout LayoutOf(const Header& h) {
  Layout l;
  l.covered_begin = kHeaderSize;
  l.body_begin = l.covered_begin + h.data_size;
  l.covered_end = l.body_begin + h.body_size;
  l.table_begin = l.covered_end + kTrailerSize;
  l.file_size = l.table_begin + (h.has_chunk_table() ? uint64_t{h.chunk_count} * kChunkHashSize : 0);
  return l;
}

std::string EncodeTrailer(const Trailer& t) {
  std::string out;
  ByteWriter w(&out);
  w.Bytes(kTrailerMagic, 4);
  w.U32(0);
  w.Bytes(t.body_hash.data(), 32);
  w.Bytes(t.signature.data(), 64);
  out.resize(kTrailerSize, '\0');
  return out;
}

Status DecodeTrailer(std::string_view bytes, Trailer* t) {
  if (bytes.size() != kTrailerSize) return Error(Code::kCorrupt, "truncated trailer");
  if (std::memcmp(bytes.data(), kTrailerMagic, 4) != 0) return Error(Code::kCorrupt, "bad trailer magic");
  for (size_t i : {4, 5, 6, 7})
    if (bytes[i] != 0) return Error(Code::kCorrupt, "nonzero reserved trailer field");
  std::memcpy(t->body_hash.data(), bytes.data() + 8, 32);
  std::memcpy(t->signature.data(), bytes.data() + 40, 64);
  for (size_t i = 104; i < kTrailerSize; ++i)
    if (bytes[i] != 0) return Error(Code::kCorrupt, "nonzero reserved trailer bytes");
  return Status::Ok();
}

std::string SignedMessage(std::string_view header_bytes, std::string_view trailer_bytes) {
  std::string m(header_bytes.substr(0, kHeaderSize));
  m.append(trailer_bytes.substr(0, kSignedTrailerPrefix));
  return m;
}

Hash256 TrailerHash(std::string_view trailer_bytes) {
  std::string_view p = trailer_bytes.substr(0, kSignedTrailerPrefix);
  return HashBytes(p.data(), p.size());
}

namespace {
void PutMeta(ByteWriter& w, const Meta& m) {
  w.Varint(m.mode);
  w.U8(m.has_owner ? 1 : 0);
  if (m.has_owner) {
    w.Varint(m.uid);
    w.Varint(m.gid);
  }
  w.SVarint(m.mtime_ns);
}
bool GetMeta(ByteReader& r, Meta* m) {
  uint64_t mode, uid = 0, gid = 0;
  uint8_t owner;
  if (!r.Varint(&mode) || !r.U8(&owner)) return false;
  if (mode > 07777 || owner > 1) return r.Fail();
  if (owner && (!r.Varint(&uid) || !r.Varint(&gid) || uid > UINT32_MAX || gid > UINT32_MAX)) return r.Fail();
  m->mode = static_cast<uint32_t>(mode);
  m->has_owner = owner == 1;
  m->uid = static_cast<uint32_t>(uid);
  m->gid = static_cast<uint32_t>(gid);
  return r.SVarint(&m->mtime_ns);
}
void PutRef(ByteWriter& w, const DataRef& d) {
  w.Varint(d.segment);
  w.Varint(d.offset);
  w.Varint(d.length);
}
bool GetRef(ByteReader& r, DataRef* d) {
  return r.Varint(&d->segment) && r.Varint(&d->offset) && r.Varint(&d->length);
}
constexpr size_t kMaxPath = 4096;
}  // namespace

void EncodeCommand(const Command& c, std::string* out) {
  std::string p;
  ByteWriter w(&p);
  if (c.op == Opcode::kBase) delta::EncodeTableBase(c.base, &p);
  else w.Str(c.path);
  switch (c.op) {
    case Opcode::kMkdir:
    case Opcode::kSetMeta:
      PutMeta(w, c.meta);
      break;
    case Opcode::kCreate:
      PutMeta(w, c.meta);
      w.Varint(c.size);
      w.Bytes(c.hash.data(), 32);
      PutRef(w, c.data);
      break;
    case Opcode::kPatch:
      PutMeta(w, c.meta);
      w.Varint(c.size);
      w.Bytes(c.hash.data(), 32);
      w.Varint(c.base_size);
      w.Bytes(c.base_hash.data(), 32);
      PutRef(w, c.data);
      break;
    case Opcode::kRemove:
      break;
    case Opcode::kRename:
    case Opcode::kCopy:
      w.Str(c.path2);
      break;
    case Opcode::kSymlink:
      w.Str(c.path2);
      PutMeta(w, c.meta);
      break;
    case Opcode::kBase:
      break;
    case Opcode::kTouch:
      w.Str(c.path2);
      w.SVarint(c.meta.mtime_ns);
      w.Varint(c.size);
      break;
  }
  ByteWriter o(out);
  o.U8(static_cast<uint8_t>(c.op));
  o.Varint(p.size());
  o.Bytes(p);
}

Status DecodeCommandPayload(Opcode op, std::string_view payload, Command* c) {
  *c = Command{};
  c->op = op;
  if (op == Opcode::kBase) {
    if (!delta::DecodeTableBase(payload, &c->base)) return Error(Code::kCorrupt, "malformed base command");
    return Status::Ok();
  }
  ByteReader r(payload);
  bool ok = r.Str(&c->path, kMaxPath);
  switch (op) {
    case Opcode::kMkdir:
    case Opcode::kSetMeta:
      ok = ok && GetMeta(r, &c->meta);
      break;
    case Opcode::kCreate:
      ok = ok && GetMeta(r, &c->meta) && r.Varint(&c->size) && r.Bytes(c->hash.data(), 32) &&
           GetRef(r, &c->data);
      break;
    case Opcode::kPatch:
      ok = ok && GetMeta(r, &c->meta) && r.Varint(&c->size) && r.Bytes(c->hash.data(), 32) &&
           r.Varint(&c->base_size) && r.Bytes(c->base_hash.data(), 32) && GetRef(r, &c->data);
      break;
    case Opcode::kRemove:
      break;
    case Opcode::kRename:
    case Opcode::kCopy:
      ok = ok && r.Str(&c->path2, kMaxPath);
      break;
    case Opcode::kSymlink:
      ok = ok && r.Str(&c->path2, kMaxPath) && GetMeta(r, &c->meta);
      break;
    case Opcode::kTouch:
      ok = ok && r.Str(&c->path2, kMaxPath) && r.SVarint(&c->meta.mtime_ns) && r.Varint(&c->size);
      break;
    default:
      return Error(Code::kCorrupt, "unknown command opcode " + std::to_string(static_cast<int>(op)));
  }
  if (!ok || !r.AtEnd()) return Error(Code::kCorrupt, std::string("malformed ") + OpcodeName(op) + " command");
  if (op == Opcode::kCreate && c->data.length != c->size)
    return Error(Code::kCorrupt, "create command data length differs from file size");
  return Status::Ok();
}

}  // namespace cm::pack
