#include "leader/wire.h"

#include <algorithm>

#include "util/byte_io.h"

namespace cm::leader {
namespace {

constexpr uint8_t kFlagAuth = 1;

void PutAddr(ByteWriter* w, const proto::Address& a) {
  w->U32(a.ip);
  w->U16(a.port);
}
bool GetAddr(ByteReader* r, proto::Address* a) { return r->U32(&a->ip) && r->U16(&a->port); }

bool GetU32Varint(ByteReader* r, uint32_t* v) {
  uint64_t x;
  if (!r->Varint(&x)) return false;
  if (x > UINT32_MAX) return r->Fail();
  *v = static_cast<uint32_t>(x);
  return true;
}

}  // namespace

uint64_t ListHash(const std::vector<uint64_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t id : ids)
    for (int i = 0; i < 8; ++i) {
      h ^= (id >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  return h ? h : 1;
}

std::string Encode(const Message& m, const GroupKey* key, uint64_t counter) {
  std::string out;
  ByteWriter w(&out);
  w.Bytes("CL", 2);
  w.U8(kWireVersion);
  w.U8(static_cast<uint8_t>(m.type));
  w.U8(key ? kFlagAuth : 0);
  w.U64(m.sender);
  w.Varint(m.epoch);
  w.Varint(m.priority);
  PutAddr(&w, m.addr);
  switch (m.type) {
    case MsgType::kAlive:
      w.Varint(m.interval_us);
      w.U8(m.dead_intervals);
      w.Varint(m.member_count);
      w.Varint(m.sequence);
      w.Varint(m.beat);
      break;
    case MsgType::kClaim:
      w.U64(m.leader);
      w.Varint(m.beat);
      w.U8(m.preempt ? 1 : 0);
      break;
    case MsgType::kResign:
      break;
    case MsgType::kRegister:
      w.U64(m.leader);
      w.Str(m.name.substr(0, kMaxNameLen));
      w.Varint(m.free_disk_mb);
      w.Varint(m.cpu_permille);
      w.Varint(m.beat);
      w.Varint(m.reg_count);
      {
        // The digest: the list's hash, the bit count, the bits (LSB first).
        const size_t n = m.list_hash ? std::min(m.heard.size(), kMaxMembersOnWire) : 0;
        w.U64(n ? m.list_hash : 0);
        w.Varint(n);
        for (size_t i = 0; i < n; i += 8) {
          uint8_t b = 0;
          for (size_t j = 0; j < 8 && i + j < n; ++j) b |= uint8_t(m.heard[i + j] ? 1 : 0) << j;
          w.U8(b);
        }
      }
      break;
    case MsgType::kVouch:
      w.U64(m.leader);
      w.Varint(m.beat);
      w.Varint(m.age_us);
      break;
    case MsgType::kMembers: {
      size_t n = std::min(m.members.size(), kMaxMembersOnWire);
      w.Varint(n);
      for (size_t i = 0; i < n; ++i) w.U64(m.members[i]);
      break;
    }
    case MsgType::kMove:
      PutAddr(&w, m.channel);
      break;
  }
  if (key) {
    w.U64(counter);
    Mac mac = ComputeMac(*key, out);
    w.Bytes(mac.data(), mac.size());
  }
  return out;
}

std::optional<Decoded> Decode(std::string_view bytes, const GroupKey* key) {
  ByteReader r(bytes);
  char magic[2];
  uint8_t version, type, flags;
  if (!r.Bytes(magic, 2) || magic[0] != 'C' || magic[1] != 'L') return std::nullopt;
  if (!r.U8(&version) || version < kWireVersionMin || version > kWireVersion) return std::nullopt;
  if (!r.U8(&type) || type < 1 || type > (version >= 3 ? 7 : 6) || !r.U8(&flags) || (flags & ~kFlagAuth)) return std::nullopt;
  Decoded d;
  Message& m = d.msg;
  m.type = static_cast<MsgType>(type);
  if (!r.U64(&m.sender) || !r.Varint(&m.epoch) || !GetU32Varint(&r, &m.priority) || !GetAddr(&r, &m.addr))
    return std::nullopt;
  switch (m.type) {
    case MsgType::kAlive:
      if (!GetU32Varint(&r, &m.interval_us) || !r.U8(&m.dead_intervals) || !GetU32Varint(&r, &m.member_count) ||
          !r.Varint(&m.sequence) || (version >= 2 && !r.Varint(&m.beat)))
        return std::nullopt;
      break;
    case MsgType::kClaim:
      if (version >= 3) {
        uint8_t f;
        if (!r.U64(&m.leader) || !r.Varint(&m.beat) || !r.U8(&f) || f > 1) return std::nullopt;
        m.preempt = f == 1;
      }
      break;
    case MsgType::kResign:
      break;
    case MsgType::kRegister:
      if (!r.U64(&m.leader) || !r.Str(&m.name, kMaxNameLen) || !r.Varint(&m.free_disk_mb) ||
          !GetU32Varint(&r, &m.cpu_permille) || (version >= 3 && (!r.Varint(&m.beat) || !r.Varint(&m.reg_count))))
        return std::nullopt;
      if (version >= 4) {
        uint64_t n;
        if (!r.U64(&m.list_hash) || !r.Varint(&n) || n > kMaxMembersOnWire || (n > 0) != (m.list_hash != 0) ||
            (n + 7) / 8 > r.remaining())
          return std::nullopt;
        m.heard.resize(static_cast<size_t>(n));
        for (size_t i = 0; i < n; i += 8) {
          uint8_t b;
          if (!r.U8(&b)) return std::nullopt;
          for (size_t j = 0; j < 8; ++j) {
            const bool bit = b >> j & 1;
            if (i + j < n) m.heard[i + j] = bit;
            else if (bit) return std::nullopt;  // padding bits are 0 (one encoding per message)
          }
        }
      }
      break;
    case MsgType::kVouch:
      if (!r.U64(&m.leader) || !r.Varint(&m.beat) || !r.Varint(&m.age_us)) return std::nullopt;
      break;
    case MsgType::kMembers: {
      uint64_t n;
      if (!r.Varint(&n) || n > kMaxMembersOnWire || n * 8 > r.remaining()) return std::nullopt;
      m.members.resize(static_cast<size_t>(n));
      for (auto& id : m.members)
        if (!r.U64(&id)) return std::nullopt;
      break;
    }
    case MsgType::kMove:
      if (!GetAddr(&r, &m.channel)) return std::nullopt;
      break;
  }
  const size_t signed_len = r.position();
  if (flags & kFlagAuth) {
    if (!r.U64(&d.counter)) return std::nullopt;
    std::string_view mac;
    if (!r.View(kMacSize, &mac)) return std::nullopt;
    if (key) {
      if (!MacMatches(*key, bytes.substr(0, signed_len + 8), reinterpret_cast<const uint8_t*>(mac.data())))
        return std::nullopt;
      d.authenticated = true;
    }
  } else if (key) {
    return std::nullopt;  // a keyed group accepts only authenticated messages
  }
  if (!r.AtEnd()) return std::nullopt;
  return d;
}

}  // namespace cm::leader
