#include "leader/sam_wire.h"

#include <algorithm>

namespace cm::leader {

namespace sam {

namespace {

// Every number is a LEB128 varint (most are small): a few bytes a field.
void Put(std::string* s, uint64_t v) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  s->append(buf, n);
}
void PutBallot(std::string* s, const Ballot& b) {
  Put(s, b.epoch);
  Put(s, b.round);
  Put(s, b.id);
}

struct Reader {
  std::string_view b;
  size_t pos = 0;
  bool ok = true;
  uint64_t Get() {
    uint64_t v = 0;
    for (int shift = 0; ok; shift += 7) {
      if (pos >= b.size() || shift > 63) {
        ok = false;
        break;
      }
      const uint8_t c = static_cast<uint8_t>(b[pos++]);
      if (shift == 63 && c > 1) {
        ok = false;
        break;
      }
      v |= uint64_t(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    return 0;
  }
  Ballot GetBallot() {
    Ballot x;
    x.epoch = Get();
    x.round = Get();
    x.id = Get();
    return x;
  }
};

}  // namespace

std::string Encode(const Message& m) {
  std::string s;
  s.reserve(32 + m.entries.size() * 12 + m.ids.size() * 4);
  s.push_back(static_cast<char>(kVersion));
  s.push_back(static_cast<char>(m.type));
  Put(&s, m.sender);
  PutBallot(&s, m.ballot);
  Put(&s, m.n1);
  Put(&s, m.n2);
  Put(&s, m.n3);
  const size_t ne = std::min(m.entries.size(), kMaxEntries);
  Put(&s, ne);
  for (size_t i = 0; i < ne; ++i) {
    const Entry& e = m.entries[i];
    Put(&s, e.seq);
    Put(&s, e.id);
    PutBallot(&s, e.ballot);
    const size_t h = std::min(e.holders.size(), kMaxHolders);
    Put(&s, h);
    for (size_t j = 0; j < h; ++j) Put(&s, e.holders[j]);
  }
  const size_t ni = std::min(m.ids.size(), kMaxEntries);
  Put(&s, ni);
  for (size_t i = 0; i < ni; ++i) Put(&s, m.ids[i]);
  return s;
}

bool Decode(std::string_view bytes, Message* out) {
  if (bytes.size() < 2 || static_cast<uint8_t>(bytes[0]) != kVersion) return false;
  const uint8_t t = static_cast<uint8_t>(bytes[1]);
  if (t < uint8_t(Type::kAlive) || t > uint8_t(Type::kCkpt)) return false;
  Reader r{bytes, 2};
  Message m;
  m.type = static_cast<Type>(t);
  m.sender = r.Get();
  m.ballot = r.GetBallot();
  m.n1 = r.Get();
  m.n2 = r.Get();
  m.n3 = r.Get();
  const uint64_t ne = r.Get();
  if (!r.ok || ne > kMaxEntries) return false;
  m.entries.reserve(ne);
  for (uint64_t i = 0; i < ne && r.ok; ++i) {
    Entry e;
    e.seq = r.Get();
    e.id = r.Get();
    e.ballot = r.GetBallot();
    const uint64_t h = r.Get();
    if (h > kMaxHolders) return false;
    for (uint64_t j = 0; j < h && r.ok; ++j) e.holders.push_back(r.Get());
    m.entries.push_back(std::move(e));
  }
  const uint64_t ni = r.Get();
  if (!r.ok || ni > kMaxEntries) return false;
  m.ids.reserve(ni);
  for (uint64_t i = 0; i < ni && r.ok; ++i) m.ids.push_back(r.Get());
  if (!r.ok || r.pos != bytes.size()) return false;
  *out = std::move(m);
  return true;
}

uint64_t ChainHash(uint64_t prev, uint64_t seq, uint64_t id) {
  // splitmix64 over the three words: cheap, and a different id or number
  // anywhere in the prefix gives a different hash with overwhelming odds.
  uint64_t x = prev ^ (seq * 0x9e3779b97f4a7c15ull) ^ (id + 0x632be59bd9b4e019ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace sam

}  // namespace cm::leader
