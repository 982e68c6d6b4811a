// SegmentCore (leader/segment_core.h): the election and SAM on one socket.
#include "leader/segment_core.h"

#include <algorithm>
#include <cstring>

namespace cm::leader {

using proto::Micros;

namespace {

constexpr std::string_view kMagic = "CMSQ";
constexpr char kHelloTag = '\xff';  // inner payload of a Hello (a SAM message starts with its version, 1)
constexpr size_t kTrailer = 8 + kMacSize;

void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetU64(std::string_view s) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(static_cast<uint8_t>(s[i])) << (8 * i);
  return v;
}

std::string HelloPayload(uint64_t id) {
  std::string s(1, kHelloTag);
  PutU64(&s, id);
  return s;
}

}  // namespace

std::string SegmentCore::Seal(std::string_view sam_bytes, const GroupKey* key, uint64_t counter) {
  std::string s(kMagic);
  s.append(sam_bytes);
  if (key) {
    PutU64(&s, counter);
    const Mac mac = ComputeMac(*key, s);
    s.append(reinterpret_cast<const char*>(mac.data()), mac.size());
  }
  return s;
}

bool SegmentCore::IsSam(std::string_view bytes) { return bytes.substr(0, kMagic.size()) == kMagic; }

namespace {
SamConfig WithSelf(SamConfig c, const proto::Address& self) {
  if (std::none_of(c.members.begin(), c.members.end(), [&](const SamPeer& p) { return p.id == c.id; }))
    c.members.push_back({c.id, self});
  return c;
}
}  // namespace

SegmentCore::SegmentCore(SegmentConfig cfg, SamStable stable)
    : cfg_(std::move(cfg)),
      sam_(cfg_.sam ? std::optional<Sam>(std::in_place, WithSelf(*cfg_.sam, cfg_.election.self), std::move(stable))
                    : std::nullopt),
      election_(cfg_.election, sam_ ? &*sam_ : nullptr) {}

// Moves `from`'s effects into `into`; SAM's datagrams get the envelope, and
// its join of the control group (the election's) is dropped.
void SegmentCore::Merge(proto::Effects* into, proto::Effects& from, bool sam) {
  for (proto::GroupChange& g : from.groups)
    if (!sam || g.group != cfg_.election.control) into->groups.push_back(g);
  for (proto::Send& s : from.sends) {
    if (sam) {
      const GroupKey* key = cfg_.election.key ? &*cfg_.election.key : nullptr;
      s.bytes = Seal(s.bytes, key, NextCounter());
    }
    into->sends.push_back(std::move(s));
  }
  for (std::string& e : from.events) into->events.push_back(std::move(e));
  for (std::string& a : from.alerts) into->alerts.push_back(std::move(a));
}

// The next envelope counter: strictly increasing, and near the wall clock
// (the `now` of the call plus the configured offset).
uint64_t SegmentCore::NextCounter() {
  const auto wall = static_cast<uint64_t>(std::max<Micros>(0, now_ + cfg_.election.wall_offset));
  last_counter_ = std::max(last_counter_ + 1, wall);
  return last_counter_;
}

void SegmentCore::Reschedule(Micros now, proto::Effects* out) {
  (void)now;
  out->wake_at = std::min({election_wake_, sam_wake_, hello_wake_});
}

void SegmentCore::Start(Micros now, proto::Effects* out) {
  now_ = now;
  last_counter_ = static_cast<uint64_t>(std::max<Micros>(0, now + cfg_.election.wall_offset));
  proto::Effects e;
  election_.Start(now, &e);
  election_wake_ = e.wake_at;
  Merge(out, e, false);
  if (sam_) {
    proto::Effects s;
    sam_->Start(now, &s);
    sam_wake_ = s.wake_at;
    Merge(out, s, true);
    Hello(now, out);
  }
  Reschedule(now, out);
}

void SegmentCore::Hello(Micros now, proto::Effects* out) {
  const GroupKey* key = cfg_.election.key ? &*cfg_.election.key : nullptr;
  now_ = now;
  out->sends.push_back({cfg_.election.control, Seal(HelloPayload(cfg_.sam->id), key, NextCounter()),
                        proto::Transport::kDatagram});
  hello_wake_ = now + cfg_.hello_every;
}

// Checks the envelope; on success *sam_bytes is the payload.
bool SegmentCore::Open(Micros now, std::string_view bytes, std::string_view* sam_bytes) {
  if (!IsSam(bytes)) return false;
  bytes.remove_prefix(kMagic.size());
  if (!cfg_.election.key) {
    *sam_bytes = bytes;
    return true;
  }
  if (bytes.size() < kTrailer) return false;
  const std::string_view signed_part(bytes.data() - kMagic.size(), kMagic.size() + bytes.size() - kMacSize);
  if (!MacMatches(*cfg_.election.key, signed_part, reinterpret_cast<const uint8_t*>(bytes.data() + bytes.size() - kMacSize)))
    return false;
  const uint64_t counter = GetU64(bytes.substr(bytes.size() - kTrailer, 8));
  *sam_bytes = bytes.substr(0, bytes.size() - kTrailer);
  if (cfg_.election.replay_window > 0) {
    const Micros wall = now + cfg_.election.wall_offset;
    const Micros diff = static_cast<Micros>(counter) - wall;
    if (diff > cfg_.election.replay_window || -diff > cfg_.election.replay_window) return false;
  }
  // The sender: a Hello's id or the SAM message's.
  uint64_t sender = 0;
  if (!sam_bytes->empty() && (*sam_bytes)[0] == kHelloTag) {
    if (sam_bytes->size() != 9) return false;
    sender = GetU64(sam_bytes->substr(1));
  } else {
    sam::Message m;
    if (!sam::Decode(*sam_bytes, &m)) return false;
    sender = m.sender;
  }
  Window& w = replay_[sender];
  if (counter > w.high) {
    const uint64_t shift = counter - w.high;
    w.bits = shift >= 64 ? 0 : w.bits << shift;
    w.bits |= 1;
    w.high = counter;
    return true;
  }
  const uint64_t back = w.high - counter;
  if (back >= 64 || (w.bits >> back & 1)) return false;
  w.bits |= uint64_t{1} << back;
  return true;
}

void SegmentCore::OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) {
  now_ = now;
  if (!IsSam(bytes)) {
    proto::Effects e;
    election_.OnDatagram(now, from, bytes, &e);
    election_wake_ = e.wake_at;
    Merge(out, e, false);
    Reschedule(now, out);
    return;
  }
  std::string_view inner;
  if (!sam_ || !Open(now, bytes, &inner)) {
    ++sam_rejected_;
    Reschedule(now, out);
    return;
  }
  if (!inner.empty() && inner[0] == kHelloTag) {
    const uint64_t id = GetU64(inner.substr(1));
    if (id != 0 && id != cfg_.sam->id) sam_->AddPeer(id, from);
    Reschedule(now, out);
    return;
  }
  sam::Message m;
  if (!sam::Decode(inner, &m)) {
    ++sam_rejected_;
    Reschedule(now, out);
    return;
  }
  if (m.sender != 0 && m.sender != cfg_.sam->id) sam_->AddPeer(m.sender, from);
  if (m.type == sam::Type::kData) {  // the bytes are the edge's to fetch first
    for (uint64_t id : m.ids)  // only what this member asked for: a peer cannot fill our spool
      if (sam_->WantsData(id)) offers_.push_back({id, m.sender, from});
    Reschedule(now, out);
    return;
  }
  proto::Effects s;
  sam_->OnDatagram(now, from, inner, &s);
  if (s.wake_at != proto::kNever) sam_wake_ = s.wake_at;
  Merge(out, s, true);
  Reschedule(now, out);
}

void SegmentCore::OnTimer(Micros now, proto::Effects* out) {
  now_ = now;
  if (now >= election_wake_) {
    proto::Effects e;
    election_.OnTimer(now, &e);
    election_wake_ = e.wake_at;
    Merge(out, e, false);
  }
  if (sam_ && now >= sam_wake_) {
    proto::Effects s;
    sam_->OnTimer(now, &s);
    sam_wake_ = s.wake_at;
    Merge(out, s, true);
  }
  if (sam_ && now >= hello_wake_) Hello(now, out);
  Reschedule(now, out);
}

std::vector<DataOffer> SegmentCore::TakeOffers() {
  std::vector<DataOffer> v;
  v.swap(offers_);
  return v;
}

void SegmentCore::OnData(uint64_t id, uint64_t ts) {
  if (sam_) sam_->OnData(id, ts);
}

void SegmentCore::OnFetched(Micros now, const proto::Address& from, uint64_t id, proto::Effects* out) {
  now_ = now;
  if (!sam_) return;
  sam::Message m;
  m.type = sam::Type::kData;
  m.sender = 0;
  m.ids = {id};
  proto::Effects s;
  sam_->OnDatagram(now, from, sam::Encode(m), &s);
  if (s.wake_at != proto::kNever) sam_wake_ = s.wake_at;
  Merge(out, s, true);
  Reschedule(now, out);
}

}  // namespace cm::leader
