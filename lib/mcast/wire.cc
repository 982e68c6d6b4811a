#include "mcast/wire.h"

#include <cstring>

#include "util/byte_io.h"

namespace cm::mcast {
namespace {

void EncodeBody(const Message& m, ByteWriter* w) {
  switch (m.type) {
    case Type::kAnnounce: {
      const Announce& a = m.announce;
      w->Bytes(a.hash.data(), a.hash.size());
      w->U8(a.flags);
      w->U64(a.size);
      w->U16(a.frame_size);
      w->U8(a.block_k);
      w->U8(a.max_passes);
      w->U32(a.rate_kbps);
      w->U16(a.nack_period_ms);
      w->U8(a.phase);
      w->U32(a.epoch);
      w->U64(a.run);
      w->U64(a.started_ms);
      w->U64(a.stamp_ms);
      w->Str(a.name.substr(0, kMaxNameLen));
      w->Str(a.sender_id.substr(0, kMaxIdLen));
      break;
    }
    case Type::kData:
      w->U32(m.data.block);
      w->U8(m.data.esi);
      w->U8(m.data.pass);
      w->U32(m.data.seq);
      w->U32(m.data.sent_us);
      w->U16(static_cast<uint16_t>(m.data.payload.size()));
      w->Bytes(m.data.payload);
      break;
    case Type::kStatus: {
      const StatusReport& s = m.status;
      w->U32(s.seq);
      w->U8(static_cast<uint8_t>(s.state));
      w->Varint(s.have_bytes);
      w->Varint(s.lost);
      w->Varint(s.heard);
      w->Varint(s.qdelay_us);
      w->Varint(s.unicast);
      w->Str(s.id.substr(0, kMaxIdLen));
      w->Str(s.reason.substr(0, kMaxNameLen));
      size_t n = std::min(s.nacks.size(), kMaxListEntries);
      w->U8(s.more || n < s.nacks.size());
      w->Varint(n);
      uint32_t prev = 0;
      for (size_t i = 0; i < n; ++i) {
        const NackRun& r = s.nacks[i];
        w->Varint(r.first - prev);  // runs are sorted and disjoint
        w->Varint(r.count);
        w->U8(r.need);
        w->U8(r.seen_pass);
        prev = r.first + r.count;
      }
      break;
    }
    case Type::kQuery: {
      w->U32(m.query.seq);
      w->U8(static_cast<uint8_t>(m.query.mode));
      size_t n = std::min(m.query.ids.size(), kMaxListEntries);
      w->Varint(n);
      for (size_t i = 0; i < n; ++i) w->Str(m.query.ids[i].substr(0, kMaxIdLen));
      break;
    }
    case Type::kAnswer:
      w->U8(static_cast<uint8_t>(m.answer.code));
      w->U16(m.answer.nack_period_ms);
      w->U32(m.answer.block);
      break;
    case Type::kClose:
      w->U8(m.close.outcome);
      break;
    case Type::kProbe:
    case Type::kProbeReply:
      w->U32(m.probe.nonce);
      w->Str(m.probe.sender_id.substr(0, kMaxIdLen));
      break;
    case Type::kWant: {
      const Want& wt = m.want;
      std::string id = wt.id.substr(0, kMaxIdLen);
      size_t n = std::min(wt.entries.size(), kMaxWantEntries);
      w->Str(id);
      w->U8(wt.more || n < wt.entries.size());
      w->Varint(n);
      for (size_t i = 0; i < n; ++i) {
        const WantEntry& e = wt.entries[i];
        w->Bytes(e.hash.data(), e.hash.size());
        w->U64(e.size);
        w->Str(e.name.substr(0, kMaxNameLen));
      }
      break;
    }
  }
}

bool PlainName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

bool ParseBody(ByteReader* r, Message* m) {
  switch (m->type) {
    case Type::kAnnounce: {
      Announce& a = m->announce;
      if (!r->Bytes(a.hash.data(), a.hash.size()) || !r->U8(&a.flags) || !r->U64(&a.size) || !r->U16(&a.frame_size) ||
          !r->U8(&a.block_k) || !r->U8(&a.max_passes) || !r->U32(&a.rate_kbps) || !r->U16(&a.nack_period_ms) ||
          !r->U8(&a.phase) || !r->U32(&a.epoch) || !r->U64(&a.run) ||
          !r->U64(&a.started_ms) || !r->U64(&a.stamp_ms) || !r->Str(&a.name, kMaxNameLen) || !r->Str(&a.sender_id, kMaxIdLen))
        return false;
      // Sanity: a frame fits a datagram, a block fits the code, the name is a plain file name.
      if (a.frame_size == 0 || a.frame_size > kMaxDatagram || a.block_k == 0 || a.block_k > 128 || a.phase > 2 ||
          a.flags > 3 || a.run == 0)
        return false;
      // An unknown hash is sent as zeros, so a re-encoding is byte-identical.
      if (!(a.flags & kAnnounceHashKnown) && a.hash != Hash256{}) return false;
      return PlainName(a.name);
    }
    case Type::kData: {
      uint16_t len;
      if (!r->U32(&m->data.block) || !r->U8(&m->data.esi) || !r->U8(&m->data.pass) || !r->U32(&m->data.seq) ||
          !r->U32(&m->data.sent_us) ||
          !r->U16(&len))
        return false;
      if (m->data.esi == 255) return false;
      return r->View(len, &m->data.payload);
    }
    case Type::kStatus: {
      StatusReport& s = m->status;
      uint8_t state, more;
      uint64_t have, lost, heard, qdelay, n;
      if (!r->U32(&s.seq) || !r->U8(&state) || !r->Varint(&have) || !r->Varint(&lost) || !r->Varint(&heard) ||
          !r->Varint(&qdelay) || !r->Varint(&s.unicast) || !r->Str(&s.id, kMaxIdLen) || !r->Str(&s.reason, kMaxNameLen) || !r->U8(&more) || !r->Varint(&n))
        return false;
      if (state > 2 || more > 1 || n > kMaxListEntries || lost > UINT32_MAX || heard > UINT32_MAX ||
          qdelay > UINT32_MAX)
        return false;
      s.qdelay_us = static_cast<uint32_t>(qdelay);
      s.state = static_cast<RecvState>(state);
      s.have_bytes = have;
      s.lost = static_cast<uint32_t>(lost);
      s.heard = static_cast<uint32_t>(heard);
      s.more = more;
      s.nacks.clear();
      uint64_t prev = 0;
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t gap, count;
        NackRun run;
        if (!r->Varint(&gap) || !r->Varint(&count) || !r->U8(&run.need) || !r->U8(&run.seen_pass)) return false;
        if (count == 0 || prev + gap + count > UINT32_MAX) return false;
        run.first = static_cast<uint32_t>(prev + gap);
        run.count = static_cast<uint32_t>(count);
        prev = run.first + count;
        s.nacks.push_back(run);
      }
      return true;
    }
    case Type::kQuery: {
      uint8_t mode;
      uint64_t n;
      if (!r->U32(&m->query.seq) || !r->U8(&mode) || !r->Varint(&n)) return false;
      if (mode > 2 || n > kMaxListEntries) return false;
      m->query.mode = static_cast<QueryMode>(mode);
      m->query.ids.clear();
      for (uint64_t i = 0; i < n; ++i) {
        std::string id;
        if (!r->Str(&id, kMaxIdLen)) return false;
        m->query.ids.push_back(std::move(id));
      }
      return true;
    }
    case Type::kAnswer: {
      uint8_t code;
      if (!r->U8(&code) || !r->U16(&m->answer.nack_period_ms) || !r->U32(&m->answer.block)) return false;
      if (code < 1 || code > 4) return false;
      m->answer.code = static_cast<AnswerCode>(code);
      return true;
    }
    case Type::kClose:
      return r->U8(&m->close.outcome) && m->close.outcome <= 2;
    case Type::kProbe:
    case Type::kProbeReply:
      return r->U32(&m->probe.nonce) && r->Str(&m->probe.sender_id, kMaxIdLen);
    case Type::kWant: {
      Want& wt = m->want;
      uint8_t more;
      uint64_t n;
      if (!r->Str(&wt.id, kMaxIdLen) || !r->U8(&more) || !r->Varint(&n)) return false;
      if (more > 1 || n > kMaxWantEntries) return false;
      wt.more = more;
      wt.entries.clear();
      for (uint64_t i = 0; i < n; ++i) {
        WantEntry e;
        if (!r->Bytes(e.hash.data(), e.hash.size()) || !r->U64(&e.size) || !r->Str(&e.name, kMaxNameLen)) return false;
        if (!PlainName(e.name)) return false;
        wt.entries.push_back(std::move(e));
      }
      return true;
    }
  }
  return false;
}

}  // namespace

std::string Encode(const Message& m, const GroupKey* key) {
  std::string out;
  out.reserve(kDataHeaderSize + m.data.payload.size() + kTagSize);
  ByteWriter w(&out);
  w.U16(kMagic);
  w.U8(kVersion);
  w.U8(static_cast<uint8_t>(m.type));
  w.U8(static_cast<uint8_t>(key ? (m.flags | kFlagTag) : (m.flags & ~kFlagTag)));
  w.U32(m.session);
  EncodeBody(m, &w);
  if (key) {
    Mac tag = ComputeMac(*key, out);
    w.Bytes(tag.data(), kTagSize);
  }
  return out;
}

ParseResult Parse(std::string_view bytes, const GroupKey* key, Message* m) {
  ByteReader r(bytes);
  uint16_t magic;
  uint8_t version, type;
  if (!r.U16(&magic) || !r.U8(&version) || !r.U8(&type) || !r.U8(&m->flags) || !r.U32(&m->session))
    return ParseResult::kBad;
  if (magic != kMagic || version != kVersion || type < 1 || type > 9) return ParseResult::kBad;
  m->type = static_cast<Type>(type);
  bool tagged = m->flags & kFlagTag;
  if (tagged != (key != nullptr)) return ParseResult::kUnauthenticated;
  if (key) {
    if (bytes.size() < kHeaderSize + kTagSize) return ParseResult::kBad;
    std::string_view signed_part = bytes.substr(0, bytes.size() - kTagSize);
    if (!MacMatches(*key, signed_part, reinterpret_cast<const uint8_t*>(bytes.data()) + signed_part.size()))
      return ParseResult::kUnauthenticated;
    r = ByteReader(signed_part);
    r.Skip(kHeaderSize);
  }
  if (!ParseBody(&r, m) || !r.AtEnd()) return ParseResult::kBad;
  return ParseResult::kOk;
}

uint32_t SessionId(std::string_view name, uint64_t size, std::string_view prefix) {
  Hasher h;
  std::string head = "cm-mcast-session-v2";
  ByteWriter w(&head);
  w.U64(size);
  w.Str(name);
  h.Update(head);
  h.Update(prefix.substr(0, kSessionPrefix));
  Hash256 d = h.Finish();
  uint32_t id;
  std::memcpy(&id, d.data(), 4);
  return id == 0 ? 1 : id;
}

size_t WantEntriesThatFit(const std::vector<WantEntry>& entries, size_t first, size_t id_len) {
  // Header, tag, id (varint + bytes), more, count; each entry hash + size + name.
  size_t used = kHeaderSize + kTagSize + 2 + std::min(id_len, kMaxIdLen) + 1 + 2, n = 0;
  for (size_t i = first; i < entries.size() && n < kMaxWantEntries; ++i, ++n) {
    size_t e = 32 + 8 + 2 + std::min(entries[i].name.size(), kMaxNameLen);
    if (used + e > kMaxDatagram) break;
    used += e;
  }
  return n;
}

}  // namespace cm::mcast
