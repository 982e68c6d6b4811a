#include "pack/command_codec.h"

#include <limits>

#include "util/byte_io.h"

namespace cm::pack {
namespace {

constexpr size_t kMaxPath = 4096;
enum MetaBits : uint8_t { kMode = 1, kOwner = 2, kHasOwner = 4, kMtime = 8, kAllBits = 15 };

void PutMeta(ByteWriter& w, const Meta& m, Meta* prev) {
  uint8_t bits = (m.mode != prev->mode ? kMode : 0) |
                 (m.uid != prev->uid || m.gid != prev->gid ? kOwner : 0) | (m.has_owner ? kHasOwner : 0) |
                 (m.mtime_ns != prev->mtime_ns ? kMtime : 0);
  w.U8(bits);
  if (bits & kMode) w.Varint(m.mode);
  if (bits & kOwner) {
    w.Varint(m.uid);
    w.Varint(m.gid);
  }
  // Two's-complement difference: well defined for any pair of int64.
  if (bits & kMtime)
    w.SVarint(static_cast<int64_t>(static_cast<uint64_t>(m.mtime_ns) - static_cast<uint64_t>(prev->mtime_ns)));
  *prev = m;
}

bool GetMeta(ByteReader& r, Meta* m, Meta* prev) {
  uint8_t bits;
  if (!r.U8(&bits)) return false;
  if (bits & ~kAllBits) return r.Fail();
  *m = *prev;
  m->has_owner = (bits & kHasOwner) != 0;
  if (bits & kMode) {
    uint64_t mode;
    if (!r.Varint(&mode) || mode > 07777) return r.Fail();
    m->mode = static_cast<uint32_t>(mode);
  }
  if (bits & kOwner) {
    uint64_t uid, gid;
    if (!r.Varint(&uid) || !r.Varint(&gid) || uid > UINT32_MAX || gid > UINT32_MAX) return r.Fail();
    m->uid = static_cast<uint32_t>(uid);
    m->gid = static_cast<uint32_t>(gid);
  }
  if (bits & kMtime) {
    int64_t d;
    if (!r.SVarint(&d)) return false;
    m->mtime_ns = static_cast<int64_t>(static_cast<uint64_t>(prev->mtime_ns) + static_cast<uint64_t>(d));
  }
  *prev = *m;
  return true;
}

void PutRef(ByteWriter& w, const DataRef& d, DataRef* prev) {
  // References only go forward (the writer appends; the reader refuses
  // anything else), so step and gap are never negative.
  const uint64_t step = d.segment - prev->segment;
  w.Varint(step);
  w.Varint(step > 0 ? d.offset : d.offset - (prev->offset + prev->length));
  *prev = d;
}

bool GetRef(ByteReader& r, DataRef* d, DataRef* prev) {
  uint64_t step, gap;
  if (!r.Varint(&step) || !r.Varint(&gap)) return false;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max() / 4;
  if (step > kMax || prev->segment > kMax || gap > kMax) return r.Fail();
  d->segment = prev->segment + step;
  const uint64_t prev_end = prev->offset + prev->length;  // both bounded below
  d->offset = step > 0 ? gap : prev_end + gap;
  if (d->offset > kMax) return r.Fail();
  return true;
}

bool Bounded(ByteReader& r, uint64_t v) { return v <= std::numeric_limits<uint64_t>::max() / 4 || r.Fail(); }

}  // namespace

void CommandEncoder::Encode(const Command& c, std::string* out) {
  std::string p;
  ByteWriter w(&p);
  if (c.op == Opcode::kBase) {
    // No path and no context: the same payload as v1/v2.
    delta::EncodeTableBase(c.base, &p);
    ByteWriter o(out);
    o.U8(static_cast<uint8_t>(c.op));
    o.Varint(p.size());
    o.Bytes(p);
    return;
  }
  size_t keep = 0;
  const size_t lim = std::min(prev_path_.size(), c.path.size());
  while (keep < lim && prev_path_[keep] == c.path[keep]) ++keep;
  w.Varint(keep);
  w.Str(std::string_view(c.path).substr(keep));
  prev_path_ = c.path;
  switch (c.op) {
    case Opcode::kMkdir:
    case Opcode::kSetMeta:
      PutMeta(w, c.meta, &prev_meta_);
      break;
    case Opcode::kCreate:
      PutMeta(w, c.meta, &prev_meta_);
      w.Varint(c.size);
      PutRef(w, c.data, &prev_ref_);
      break;
    case Opcode::kPatch:
      PutMeta(w, c.meta, &prev_meta_);
      w.Varint(c.size);
      w.Varint(c.base_size);
      w.Bytes(c.base_hash.data(), 32);
      PutRef(w, c.data, &prev_ref_);
      w.Varint(c.data.length);
      break;
    case Opcode::kRemove:
      break;
    case Opcode::kRename:
    case Opcode::kCopy:
      w.Str(c.path2);
      break;
    case Opcode::kSymlink:
      w.Str(c.path2);
      PutMeta(w, c.meta, &prev_meta_);
      break;
    case Opcode::kBase:
      break;
    case Opcode::kTouch: {
      // The last path against the first; the mtime against the previous meta's.
      size_t k2 = 0;
      const size_t lim2 = std::min(c.path.size(), c.path2.size());
      while (k2 < lim2 && c.path[k2] == c.path2[k2]) ++k2;
      w.Varint(k2);
      w.Str(std::string_view(c.path2).substr(k2));
      w.SVarint(static_cast<int64_t>(static_cast<uint64_t>(c.meta.mtime_ns) -
                                     static_cast<uint64_t>(prev_meta_.mtime_ns)));
      prev_meta_.mtime_ns = c.meta.mtime_ns;
      w.Varint(c.size);
      break;
    }
  }
  ByteWriter o(out);
  o.U8(static_cast<uint8_t>(c.op));
  o.Varint(p.size());
  o.Bytes(p);
}

Status CommandDecoder::Decode(Opcode op, std::string_view payload, Command* c) {
  *c = Command{};
  c->op = op;
  c->has_hash = false;
  if (op == Opcode::kBase) {
    if (!delta::DecodeTableBase(payload, &c->base)) return Error(Code::kCorrupt, "malformed base command");
    return Status::Ok();
  }
  ByteReader r(payload);
  uint64_t keep;
  std::string suffix;
  bool ok = r.Varint(&keep) && r.Str(&suffix, kMaxPath);
  if (ok && (keep > prev_path_.size() || keep + suffix.size() > kMaxPath)) ok = r.Fail();
  if (ok) {
    c->path = prev_path_.substr(0, keep) + suffix;
    prev_path_ = c->path;
  }
  switch (op) {
    case Opcode::kMkdir:
    case Opcode::kSetMeta:
      ok = ok && GetMeta(r, &c->meta, &prev_meta_);
      break;
    case Opcode::kCreate:
      ok = ok && GetMeta(r, &c->meta, &prev_meta_) && r.Varint(&c->size) && Bounded(r, c->size) &&
           GetRef(r, &c->data, &prev_ref_);
      if (ok) {
        c->data.length = c->size;
        prev_ref_ = c->data;
      }
      break;
    case Opcode::kPatch:
      ok = ok && GetMeta(r, &c->meta, &prev_meta_) && r.Varint(&c->size) && r.Varint(&c->base_size) &&
           r.Bytes(c->base_hash.data(), 32) && GetRef(r, &c->data, &prev_ref_) && r.Varint(&c->data.length) &&
           Bounded(r, c->data.length);
      if (ok) prev_ref_ = c->data;
      break;
    case Opcode::kRemove:
      break;
    case Opcode::kRename:
    case Opcode::kCopy:
      ok = ok && r.Str(&c->path2, kMaxPath);
      break;
    case Opcode::kSymlink:
      ok = ok && r.Str(&c->path2, kMaxPath) && GetMeta(r, &c->meta, &prev_meta_);
      break;
    case Opcode::kTouch: {
      uint64_t k2 = 0;
      std::string s2;
      int64_t d = 0;
      ok = ok && r.Varint(&k2) && r.Str(&s2, kMaxPath) && r.SVarint(&d) && r.Varint(&c->size);
      if (ok && (k2 > c->path.size() || k2 + s2.size() > kMaxPath)) ok = r.Fail();
      if (ok) {
        c->path2 = c->path.substr(0, k2) + s2;
        c->meta.mtime_ns = static_cast<int64_t>(static_cast<uint64_t>(prev_meta_.mtime_ns) + static_cast<uint64_t>(d));
        prev_meta_.mtime_ns = c->meta.mtime_ns;
      }
      break;
    }
    default:
      return Error(Code::kCorrupt, "unknown command opcode " + std::to_string(static_cast<int>(op)));
  }
  if (!ok || !r.AtEnd()) return Error(Code::kCorrupt, std::string("malformed ") + OpcodeName(op) + " command");
  return Status::Ok();
}

}  // namespace cm::pack
