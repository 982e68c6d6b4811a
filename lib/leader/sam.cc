#include "leader/sam.h"

#include <algorithm>

namespace cm::leader {

using proto::Micros;
using sam::Ballot;
using sam::Entry;
using sam::Message;
using sam::Type;

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

namespace {
// Promise windows: a new leader recovers this many numbers per round trip.
constexpr uint64_t kRecoverWindow = 64;
constexpr uint64_t kNackSpan = 16;  // numbers one Nack asks for
enum RepairKind { kRepairCkpt = 0, kRepairNack = 1, kRepairFetch = 2 };
}  // namespace

Sam::Sam(SamConfig cfg, SamStable stable) : cfg_(std::move(cfg)), st_(std::move(stable)), rng_(cfg_.rng_seed) {
  for (const SamPeer& p : cfg_.members) addr_[p.id] = p.addr;
  const int n = static_cast<int>(cfg_.commit_servers.size());
  commit_quorum_ = cfg_.commit_quorum > 0 ? cfg_.commit_quorum : std::max(cfg_.copies, n / 2 + 1);
  commit_quorum_ = std::clamp(commit_quorum_, 1, std::max(n, 1));
  recover_quorum_ = std::max(n - commit_quorum_ + 1, 1);
  if (cfg_.checkpoint_every == 0) cfg_.checkpoint_every = 1;
  cfg_.max_repairs = std::max(cfg_.max_repairs, 1);
  cfg_.pipeline = std::max(cfg_.pipeline, 1);
  cfg_.lifetime = std::clamp<uint64_t>(cfg_.lifetime, 1, sam::kMaxEntries);
}

std::optional<proto::Address> Sam::AddrOf(uint64_t member) const {
  auto it = addr_.find(member);
  if (it == addr_.end()) return std::nullopt;
  return it->second;
}

bool Sam::IsCommitServer(uint64_t id) const {
  return std::find(cfg_.commit_servers.begin(), cfg_.commit_servers.end(), id) != cfg_.commit_servers.end();
}

Message Sam::Make(Type t) const {
  Message m;
  m.type = t;
  m.sender = cfg_.id;
  return m;
}

// A message to ourselves (the sequencer is also a member, maybe a commit
// server) is handled at once instead of going through the network.
void Sam::Send(const proto::Address& to, const Message& m, proto::Effects* out) {
  if (auto self = AddrOf(cfg_.id); self && *self == to) {
    Dispatch(to, m, out);
    return;
  }
  out->sends.push_back({to, sam::Encode(m), proto::Transport::kDatagram});
}

void Sam::SendTo(uint64_t member, const Message& m, proto::Effects* out) {
  if (auto a = AddrOf(member)) Send(*a, m, out);
}

// A peer for a repair request: one of `preferred` on even attempts, any
// other member on odd ones (a preferred peer may be down or may have
// dropped the data).
uint64_t Sam::Target(const std::vector<uint64_t>& preferred, int attempt) {
  std::vector<uint64_t> pool;
  if (attempt % 2 == 0)
    for (uint64_t p : preferred)
      if (p != cfg_.id && addr_.count(p)) pool.push_back(p);
  if (pool.empty())
    for (const SamPeer& p : cfg_.members)
      if (p.id != cfg_.id) pool.push_back(p.id);
  if (pool.empty()) return 0;
  return pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng_)];
}

// ---- proto::Core -----------------------------------------------------------

void Sam::Start(Micros now, proto::Effects* out) {
  now_ = now;
  out->groups.push_back({proto::GroupChange::Kind::kJoin, cfg_.group});
  // Spread the members' ticks over one period.
  next_tick_ = now + std::uniform_int_distribution<Micros>(1, cfg_.timers.tick)(rng_);
  out->wake_at = next_tick_;
}

void Sam::OnTimer(Micros now, proto::Effects* out) {
  now_ = now;
  Tick(now, out);
  next_tick_ = now + cfg_.timers.tick;
  out->wake_at = next_tick_;
}

void Sam::OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) {
  now_ = now;
  Message m;
  if (sam::Decode(bytes, &m)) {
    Dispatch(from, m, out);
  } else {
    ++rejected_;
  }
  out->wake_at = next_tick_;
}

void Sam::OnData(uint64_t id, uint64_t ts) {
  if (id == 0 || st_.held.count(id)) return;
  st_.held[id] = SamStable::Held{ts, 0};
  unreported_.insert(id);
  Dirty();
}

void Sam::OnLeadership(bool leader, uint64_t epoch) {
  if (leader) {
    want_epoch_ = epoch;
    want_stop_ = false;
  } else {
    want_epoch_.reset();
    want_stop_ = true;
  }
}

uint64_t Sam::HighestSequence() const { return phase_ != Phase::kIdle ? committed_ : known_committed_; }

std::vector<uint64_t> Sam::TakeDroppable() {
  std::vector<uint64_t> v;
  v.swap(droppable_);
  return v;
}

void Sam::Tick(Micros now, proto::Effects* out) {
  const SamTimers& t = cfg_.timers;
  if (want_stop_) {
    want_stop_ = false;
    StopLeading();
  }
  if (want_epoch_) {
    BeginLeading(out);
    want_epoch_.reset();
  }
  if (phase_ == Phase::kRecovering && now >= next_assign_) {
    if (recover_started_) {
      SendRecover(out);
    } else {
      StartRecovery(out);
    }
    next_assign_ = now + t.assign_retry;
  }
  if (phase_ == Phase::kSequencing) {
    AssignReady(out);
    if (now >= next_assign_) {
      SendAssigns(out);
      next_assign_ = now + t.assign_retry;
    }
  }
  if (phase_ != Phase::kIdle && now >= next_alive_) {
    SendAlive(out);
    next_alive_ = now + t.alive_every;
  }
  const bool news = !unreported_.empty() || have_seq_id_ != seq_id_ || have_ckpt_ != st_.ckpt_seq;
  if (news || now >= next_have_) {
    SendHave(out);
    next_have_ = now + (have_pending_ ? t.have_every : t.have_idle);
  }
  RequestRepairs(now, out);
}

void Sam::Dispatch(const proto::Address& from, const Message& m, proto::Effects* out) {
  const uint64_t conflicts = conflicts_;
  switch (m.type) {
    case Type::kAlive:
      OnAlive(from, m, out);
      break;
    case Type::kHave:
      if (phase_ != Phase::kIdle) OnHave(m, out);
      break;
    case Type::kAssign:
      if (IsCommitServer(cfg_.id)) OnAssign(from, m, out);
      break;
    case Type::kAck:
      if (phase_ == Phase::kSequencing) OnAck(m, out);
      break;
    case Type::kCommit:
      if (m.ballot < st_.seen) {
        ++rejected_;
        break;
      }
      for (Entry e : m.entries) {
        e.ballot = m.ballot;
        MarkCommitted(e);
        Learn(e);
      }
      DeliverReady();
      break;
    case Type::kRecover:
      if (IsCommitServer(cfg_.id)) OnRecover(from, m, out);
      break;
    case Type::kPromise:
      if (phase_ == Phase::kRecovering && m.ballot == ballot_) OnPromise(m, out);
      break;
    case Type::kFenced:
      if (phase_ != Phase::kIdle && ballot_ < m.ballot) {
        out->alerts.push_back("sam: fenced by ballot " + std::to_string(m.ballot.epoch) + "." +
                              std::to_string(m.ballot.round) + "." + std::to_string(m.ballot.id) +
                              "; stops sequencing");
        StopLeading();
      }
      break;
    case Type::kNack: {
      Message a = Make(Type::kAnswer);
      const uint64_t n = std::min<uint64_t>(m.n2, kNackSpan * 4);
      for (uint64_t s = m.n1; s < m.n1 + n; ++s) {
        Entry e;
        if (KnownCommitted(s, &e)) a.entries.push_back(e);
      }
      if (!a.entries.empty()) Send(from, a, out);
      break;
    }
    case Type::kAnswer:
      for (const Entry& e : m.entries) {
        MarkCommitted(e);
        Learn(e);
      }
      DeliverReady();
      RequestRepairs(now_, out);  // the next request goes out at once
      break;
    case Type::kFetch: {
      Message d = Make(Type::kData);
      for (uint64_t id : m.ids)
        if (st_.held.count(id)) d.ids.push_back(id);
      if (!d.ids.empty()) Send(from, d, out);
      break;
    }
    case Type::kData:
      for (uint64_t id : m.ids) {
        if (id == 0 || st_.held.count(id)) continue;
        st_.held[id] = SamStable::Held{known_committed_, 0, true};
        Dirty();
      }
      DeliverReady();
      RequestRepairs(now_, out);
      break;
    case Type::kCkptFetch:
      if (st_.ckpt_seq > 0 && st_.ckpt_seq >= m.n1) {
        Message c = Make(Type::kCkpt);
        c.n1 = st_.ckpt_seq;
        c.n2 = st_.ckpt_hash;
        for (auto it = st_.log.begin(); it != st_.log.end() && it->first <= st_.ckpt_seq; ++it)
          if (it->first + cfg_.lifetime > st_.ckpt_seq) c.entries.push_back(Entry{it->first, it->second, {}, {}});
        Send(from, c, out);
      }
      break;
    case Type::kCkpt:
      if (m.n1 > st_.delivered) Install(m);
      DeliverReady();
      RequestRepairs(now_, out);
      break;
  }
  if (conflicts_ != conflicts)
    out->alerts.push_back("sam: two ids heard committed at one number (invariant I1 broken)");
}

// ---- member ------------------------------------------------------------------

void Sam::OnAlive(const proto::Address& from, const Message& m, proto::Effects* out) {
  if (m.ballot < st_.seen) {  // a deposed sequencer: fenced
    ++rejected_;
    return;
  }
  if (st_.seen < m.ballot) {
    st_.seen = m.ballot;
    Dirty();
  }
  if (phase_ != Phase::kIdle && ballot_ < m.ballot) {
    out->alerts.push_back("sam: a sequencer with a higher ballot is alive; stops sequencing");
    StopLeading();
  }
  seq_addr_ = from;
  seq_id_ = m.sender;
  seq_known_ = true;
  known_committed_ = std::max(known_committed_, m.n1);
  if (m.n2 >= adv_ckpt_) {
    adv_ckpt_ = m.n2;
    adv_holders_ = m.ids;
  }
  // A commit server learns which of its accepted entries are committed: the
  // sequencer of this ballot proposed one id per number and commits in order.
  if (IsCommitServer(cfg_.id)) {
    for (auto& [seq, e] : st_.accepted) {
      if (seq > m.n1) break;
      if (e.ballot == m.ballot && !st_.accepted_committed.count(seq)) {
        st_.accepted_committed.insert(seq);
        Dirty();
        Learn(e);
      }
    }
  }
  CollectGarbage();
  DeliverReady();
  RequestRepairs(now_, out);  // a gap in the heartbeat is repaired at once
}

bool Sam::KnownCommitted(uint64_t seq, Entry* e) const {
  if (seq == 0) return false;
  if (auto it = st_.log.find(seq); it != st_.log.end()) {
    *e = Entry{seq, it->second, {}, {}};
    if (auto h = st_.held.find(it->second); h != st_.held.end()) e->holders = {cfg_.id};
    return true;
  }
  if (auto it = known_.find(seq); it != known_.end()) {
    *e = it->second;
    e->ballot = {};
    return true;
  }
  if (st_.accepted_committed.count(seq)) {
    auto it = st_.accepted.find(seq);
    if (it != st_.accepted.end()) {
      *e = it->second;
      e->ballot = {};
      return true;
    }
  }
  return false;
}

void Sam::Learn(const Entry& e) {
  if (e.seq <= st_.delivered) {
    if (auto it = st_.log.find(e.seq); it != st_.log.end() && it->second != e.id) ++conflicts_;
    return;
  }
  known_committed_ = std::max(known_committed_, e.seq);  // numbers commit in order
  auto [it, fresh] = known_.try_emplace(e.seq, e);
  if (!fresh) {
    if (it->second.id != e.id) {
      ++conflicts_;
      return;
    }
    for (uint64_t h : e.holders)
      if (it->second.holders.size() < sam::kMaxHolders &&
          std::find(it->second.holders.begin(), it->second.holders.end(), h) == it->second.holders.end())
        it->second.holders.push_back(h);
  }
  it->second.ballot = {};
}

// Applies committed numbers in order while their data is here (I2).
void Sam::DeliverReady() {
  while (!known_.empty()) {
    auto it = known_.begin();
    if (it->first <= st_.delivered) {
      known_.erase(it);
      continue;
    }
    if (it->first != st_.delivered + 1) break;
    const uint64_t id = it->second.id;
    auto h = st_.held.find(id);
    if (id != 0 && h == st_.held.end()) break;
    st_.delivered = it->first;
    st_.hash = sam::ChainHash(st_.hash, st_.delivered, id);
    st_.log[st_.delivered] = id;
    if (id != 0) h->second.seq = st_.delivered;
    if (st_.delivered % cfg_.checkpoint_every == 0) {
      st_.ckpt_seq = st_.delivered;
      st_.ckpt_hash = st_.hash;
    }
    while (!st_.log.empty() && st_.log.begin()->first + cfg_.lifetime <= st_.ckpt_seq) st_.log.erase(st_.log.begin());
    known_.erase(it);
    Dirty();
  }
}

// A state transfer: the prefix up to the checkpoint replaced by its hash
// and the ids of its last `lifetime` numbers.
void Sam::Install(const Message& ckpt) {
  const uint64_t seq = ckpt.n1, hash = ckpt.n2;
  st_.delivered = seq;
  st_.hash = hash;
  st_.install_floor = seq;
  st_.log.clear();
  for (const Entry& e : ckpt.entries)
    if (e.seq <= seq && e.seq + cfg_.lifetime > seq) st_.log[e.seq] = e.id;
  st_.ckpt_seq = seq;
  st_.ckpt_hash = hash;
  known_.erase(known_.begin(), known_.upper_bound(seq));
  known_committed_ = std::max(known_committed_, seq);
  ++installs_;
  Dirty();
}

// Data applied at or below the advertised checkpoint is covered by it, and
// data stamped more than `lifetime` below the committed number will never
// be numbered: both may go. Commit servers drop checkpointed entries.
void Sam::CollectGarbage() {
  const uint64_t bound = std::min(adv_ckpt_, st_.delivered);
  for (auto it = st_.held.begin(); it != st_.held.end();) {
    const SamStable::Held& h = it->second;
    const bool covered = h.seq != 0 && h.seq <= bound;
    const bool stale = h.seq == 0 && h.ts + cfg_.lifetime < known_committed_;
    if (covered || stale) {
      droppable_.push_back(it->first);
      it = st_.held.erase(it);
      Dirty();
    } else {
      ++it;
    }
  }
  if (adv_ckpt_ > st_.trim_floor && IsCommitServer(cfg_.id)) {
    st_.trim_floor = adv_ckpt_;
    st_.accepted.erase(st_.accepted.begin(), st_.accepted.upper_bound(adv_ckpt_));
    st_.accepted_committed.erase(st_.accepted_committed.begin(), st_.accepted_committed.upper_bound(adv_ckpt_));
    Dirty();
  }
}

// Gap repair, receiver-driven: the checkpoint when behind it, else the ids
// of missing numbers (Nack) and the data of known ones (Fetch); at most
// max_repairs outstanding, each re-sent to another peer after repair_retry.
void Sam::RequestRepairs(Micros now, proto::Effects* out) {
  std::vector<std::pair<int, uint64_t>> want;
  const size_t limit = static_cast<size_t>(cfg_.max_repairs);
  // Data nobody answers for may have been dropped under a checkpoint this
  // member never heard of: then ask any peer for a newer checkpoint too.
  bool stuck = false;
  for (const auto& [key, r] : repairs_) stuck |= key.first == kRepairFetch && r.attempt >= 3;
  if (adv_ckpt_ > st_.delivered) {
    want.push_back({kRepairCkpt, adv_ckpt_});
  } else {
    if (stuck) want.push_back({kRepairCkpt, st_.delivered + 1});
    for (uint64_t s = st_.delivered + 1; s <= known_committed_ && want.size() < limit;) {
      if (known_.count(s)) {
        ++s;
        continue;
      }
      want.push_back({kRepairNack, s});
      s += kNackSpan;
    }
    for (auto it = known_.begin(); it != known_.end() && want.size() < limit; ++it) {
      if (it->first > st_.delivered + 4 * kNackSpan) break;
      if (it->second.id != 0 && !st_.held.count(it->second.id)) want.push_back({kRepairFetch, it->second.id});
    }

  }
  // Requests no longer wanted are answered (or moot).
  for (auto it = repairs_.begin(); it != repairs_.end();)
    it = std::find(want.begin(), want.end(), it->first) == want.end() ? repairs_.erase(it) : std::next(it);
  std::vector<uint64_t> commit_peers = cfg_.commit_servers;
  if (seq_known_ && seq_id_) commit_peers.push_back(seq_id_);
  for (const auto& key : want) {
    auto it = repairs_.find(key);
    if (it == repairs_.end()) {
      if (repairs_.size() >= limit) continue;
      it = repairs_.emplace(key, Repair{0, -1}).first;
    } else if (now < it->second.deadline) {
      continue;
    }
    Repair& r = it->second;
    ++r.attempt;
    r.deadline = now + cfg_.timers.repair_retry;
    ++repairs_sent_;
    if (key.first == kRepairCkpt) {
      Message m = Make(Type::kCkptFetch);
      m.n1 = key.second;
      SendTo(Target(adv_holders_, r.attempt), m, out);
    } else if (key.first == kRepairNack) {
      Message m = Make(Type::kNack);
      m.n1 = key.second;
      m.n2 = kNackSpan;
      SendTo(Target(commit_peers, r.attempt), m, out);
    } else {
      Message m = Make(Type::kFetch);
      m.ids = {key.second};
      std::vector<uint64_t> holders;
      for (const auto& [s, e] : known_)
        if (e.id == key.second) holders = e.holders;
      SendTo(Target(holders, r.attempt), m, out);
    }
  }
}

// Holdings not yet known committed, and the own checkpoint, to the sequencer.
void Sam::SendHave(proto::Effects* out) {
  unreported_.clear();
  if (!seq_known_) return;
  have_seq_id_ = seq_id_;
  have_ckpt_ = st_.ckpt_seq;
  std::set<uint64_t> known_ids;
  for (const auto& [s, e] : known_) known_ids.insert(e.id);
  Message m = Make(Type::kHave);
  m.n1 = st_.ckpt_seq;
  m.n2 = st_.ckpt_hash;
  m.n3 = adv_ckpt_;
  for (const auto& [id, h] : st_.held) {
    if (m.entries.size() >= 64) break;
    if (h.seq != 0 || h.fetched || known_ids.count(id)) continue;
    m.entries.push_back(Entry{h.ts, id, {}, {}});
  }
  have_pending_ = !m.entries.empty();
  Send(seq_addr_, m, out);
}

// ---- commit server -------------------------------------------------------------

void Sam::OnAssign(const proto::Address& from, const Message& m, proto::Effects* out) {
  if (m.ballot < st_.promised) {
    Message f = Make(Type::kFenced);
    f.ballot = st_.promised;
    Send(from, f, out);
    ++rejected_;
    return;
  }
  if (st_.promised < m.ballot) st_.promised = m.ballot;
  Message ack = Make(Type::kAck);
  ack.ballot = m.ballot;
  for (const Entry& e : m.entries) {
    if (e.seq > st_.trim_floor) {
      Entry& a = st_.accepted[e.seq];
      if (a.id != e.id || a.seq == 0) st_.accepted_committed.erase(e.seq);
      a = e;
      a.seq = e.seq;
      a.ballot = m.ballot;
    }
    ack.entries.push_back(Entry{e.seq, e.id, {}, {}});
  }
  Dirty();
  Send(from, ack, out);
}

void Sam::OnRecover(const proto::Address& from, const Message& m, proto::Effects* out) {
  if (m.ballot < st_.promised) {
    Message f = Make(Type::kFenced);
    f.ballot = st_.promised;
    Send(from, f, out);
    ++rejected_;
    return;
  }
  if (st_.promised < m.ballot) {
    st_.promised = m.ballot;
    Dirty();
  }
  Message p = Make(Type::kPromise);
  p.ballot = m.ballot;
  p.n1 = m.n1;
  p.n3 = st_.trim_floor;
  const uint64_t lo = std::max(m.n1, st_.trim_floor);
  p.n2 = st_.accepted.empty() ? st_.trim_floor : std::max(st_.trim_floor, st_.accepted.rbegin()->first);
  for (auto it = st_.accepted.upper_bound(lo); it != st_.accepted.end() && it->first <= lo + kRecoverWindow; ++it) {
    p.entries.push_back(it->second);
    if (st_.accepted_committed.count(it->first)) p.entries.back().ballot = sam::kChosen;
  }
  Send(from, p, out);
}

// A committed entry heard by a commit server replaces whatever it accepted
// at that number (the committed id is the only one any later ballot proposes).
void Sam::MarkCommitted(const Entry& e) {
  if (!IsCommitServer(cfg_.id) || e.seq <= st_.trim_floor) return;
  auto it = st_.accepted.find(e.seq);
  if (it == st_.accepted.end() || it->second.id != e.id) {
    Entry a = e;
    st_.accepted[e.seq] = a;
  }
  st_.accepted_committed.insert(e.seq);
  Dirty();
}

// ---- sequencer -------------------------------------------------------------------

void Sam::BeginLeading(proto::Effects* out) {
  const uint64_t epoch = *want_epoch_;
  StopLeading();
  Ballot b{epoch, st_.led.epoch == epoch ? st_.led.round + 1 : 0, cfg_.id};
  if (b < st_.led) b = Ballot{st_.led.epoch, st_.led.round + 1, cfg_.id};  // never reuse a ballot
  st_.led = b;
  if (st_.seen < b) st_.seen = b;
  Dirty();
  ballot_ = b;
  phase_ = Phase::kRecovering;
  recover_started_ = false;
  committed_ = st_.delivered;
  ckpt_seq_ = adv_ckpt_;
  ckpt_holders_ = adv_holders_;
  out->events.push_back("sam: leads ballot " + std::to_string(b.epoch) + "." + std::to_string(b.round));
  StartRecovery(out);
  next_assign_ = now_ + cfg_.timers.assign_retry;
  next_alive_ = now_;
}

// Recovery starts from our own applied prefix (all committed; its ids and
// the `lifetime` before it are in the log). Behind the advertised
// checkpoint we install it first (the member side does), then start.
void Sam::StartRecovery(proto::Effects* out) {
  if (recover_started_ || adv_ckpt_ > st_.delivered) return;
  recover_started_ = true;
  recover_base_ = recover_from_ = window_last_ = st_.delivered;
  committed_ = std::max(committed_, st_.delivered);
  floor_ = st_.delivered > cfg_.lifetime ? st_.delivered - cfg_.lifetime : 0;
  id_seq_.clear();
  for (const auto& [s, id] : st_.log)
    if (s > floor_ && id) id_seq_[id] = s;
  promises_.clear();
  recovered_.clear();
  out->events.push_back("sam: recovering above " + std::to_string(recover_base_));
  SendRecover(out);
}

void Sam::StopLeading() {
  phase_ = Phase::kIdle;
  promises_.clear();
  recovered_.clear();
  pending_.clear();
  id_seq_.clear();
  have_.clear();
  have_ts_.clear();
  member_ckpt_.clear();
}

void Sam::SendRecover(proto::Effects* out) {
  if (!recover_started_) return;
  Message m = Make(Type::kRecover);
  m.ballot = ballot_;
  m.n1 = recover_from_;
  for (uint64_t c : cfg_.commit_servers) {
    if (phase_ != Phase::kRecovering) return;  // a local promise finished it
    if (!promises_.count(c)) SendTo(c, m, out);
  }
}

void Sam::OnPromise(const Message& m, proto::Effects* out) {
  if (!recover_started_ || m.n1 != recover_from_) return;  // an answer to an earlier window
  if (m.n3 > recover_from_) {
    // That server dropped numbers up to a checkpoint we have not applied:
    // install it (the member side asks for it), then recover above it.
    recover_started_ = false;
    if (m.n3 > adv_ckpt_) {
      adv_ckpt_ = m.n3;
      adv_holders_.clear();
    }
    return;
  }
  if (!promises_.insert(m.sender).second) return;
  window_last_ = std::max(window_last_, m.n2);
  for (const Entry& e : m.entries) {
    if (e.seq <= recover_from_ || e.seq > recover_from_ + kRecoverWindow) continue;
    auto it = recovered_.find(e.seq);
    if (it == recovered_.end() || it->second.ballot < e.ballot) recovered_[e.seq] = e;
  }
  if (static_cast<int>(promises_.size()) < recover_quorum_) return;
  if (window_last_ > recover_from_ + kRecoverWindow) {
    recover_from_ += kRecoverWindow;
    window_last_ = recover_from_;
    promises_.clear();
    SendRecover(out);
    return;
  }
  FinishRecovery(out);
}

// Re-proposes every number up to the highest accepted one under our ballot
// (the highest-ballot entry, a no-op where none), then new numbers follow.
// An id found at two numbers keeps the applied one, else the one of the
// higher ballot (I3: once an id is committed somewhere, every copy of it at
// another number has a lower ballot), and the other becomes a no-op.
void Sam::FinishRecovery(proto::Effects* out) {
  const uint64_t last = std::min(window_last_, recover_from_ + kRecoverWindow);
  std::map<uint64_t, std::pair<Ballot, uint64_t>> best;  // id -> (ballot, number) to keep
  for (const auto& [s, e] : recovered_) {
    if (e.id == 0 || s <= recover_base_ || s > last || id_seq_.count(e.id)) continue;
    auto [it, fresh] = best.try_emplace(e.id, e.ballot, s);
    if (!fresh && it->second.first < e.ballot) it->second = {e.ballot, s};
  }
  uint64_t dropped = 0;
  for (uint64_t s = recover_base_ + 1; s <= last; ++s) {
    Pending p;
    if (auto it = recovered_.find(s); it != recovered_.end() && it->second.id != 0) {
      auto b = best.find(it->second.id);
      if (b != best.end() && b->second.second == s) {
        p.id = it->second.id;
        p.holders = it->second.holders;
      } else {
        ++dropped;
      }
    }
    if (p.id) id_seq_[p.id] = s;
    pending_[s] = std::move(p);
  }
  recovered_.clear();
  promises_.clear();
  st_.next_seq = last + 1;  // on disk before any Assign leaves (I4)
  Dirty();
  phase_ = Phase::kSequencing;
  out->events.push_back("sam: sequencing from " + std::to_string(st_.next_seq) + " (" +
                        std::to_string(pending_.size()) + " re-proposed, " + std::to_string(dropped) +
                        " duplicate ids made no-ops)");
  SendAssigns(out);
  next_assign_ = now_ + cfg_.timers.assign_retry;
  AssignReady(out);
}

void Sam::OnHave(const Message& m, proto::Effects* out) {
  member_ckpt_[m.sender] = {m.n1, m.n2};
  if (m.n3 > ckpt_seq_) {
    // A checkpoint an earlier sequencer advertised: data below it may be
    // gone, so it stays advertised (held by the members whose own is newer).
    ckpt_seq_ = m.n3;
    ckpt_holders_.clear();
  }
  UpdateCheckpoint();
  for (const Entry& e : m.entries) {
    if (e.id == 0 || id_seq_.count(e.id)) continue;
    have_[e.id].insert(m.sender);
    have_ts_.try_emplace(e.id, e.seq);
  }
  if (phase_ == Phase::kSequencing) AssignReady(out);
}

// Numbers every id that `copies` members hold (I3), up to the pipeline.
void Sam::AssignReady(proto::Effects* out) {
  if (phase_ != Phase::kSequencing || static_cast<int>(pending_.size()) >= cfg_.pipeline) return;
  std::vector<std::pair<uint64_t, uint64_t>> ready;  // (ts, id)
  for (auto it = have_.begin(); it != have_.end();) {
    const uint64_t id = it->first;
    const uint64_t ts = have_ts_[id];
    if (id_seq_.count(id) || ts + cfg_.lifetime < st_.next_seq) {
      have_ts_.erase(id);
      it = have_.erase(it);
      continue;
    }
    if (ts >= floor_ && static_cast<int>(it->second.size()) >= cfg_.copies) ready.push_back({ts, id});
    ++it;
  }
  if (ready.empty()) return;
  std::sort(ready.begin(), ready.end());
  std::vector<uint64_t> fresh;
  for (const auto& [ts, id] : ready) {
    if (static_cast<int>(pending_.size()) >= cfg_.pipeline) break;
    const uint64_t s = st_.next_seq++;  // on disk before the Assign leaves (I4)
    Pending p;
    p.id = id;
    for (uint64_t h : have_[id])
      if (p.holders.size() < sam::kMaxHolders) p.holders.push_back(h);
    pending_[s] = std::move(p);
    id_seq_[id] = s;
    have_.erase(id);
    have_ts_.erase(id);
    fresh.push_back(s);
    out->events.push_back("sam: numbered " + std::to_string(id) + " at " + std::to_string(s) + " (stamp " +
                          std::to_string(ts) + ", floor " + std::to_string(floor_) + ")");
  }
  Dirty();
  while (!id_seq_.empty() && floor_ + cfg_.lifetime < st_.next_seq) {
    // Forget assignments older than the lifetime: no id stamped that far
    // back is numbered any more.
    floor_ = st_.next_seq - cfg_.lifetime;
    for (auto it = id_seq_.begin(); it != id_seq_.end();)
      it = it->second <= floor_ ? id_seq_.erase(it) : std::next(it);
  }
  Message m = Make(Type::kAssign);
  m.ballot = ballot_;
  for (uint64_t s : fresh) m.entries.push_back(Entry{s, pending_[s].id, {}, pending_[s].holders});
  for (uint64_t c : cfg_.commit_servers) {
    if (phase_ != Phase::kSequencing) return;
    SendTo(c, m, out);
  }
}

// Re-sends every uncommitted number to the commit servers that have not acknowledged it.
void Sam::SendAssigns(proto::Effects* out) {
  for (uint64_t c : cfg_.commit_servers) {
    Message m = Make(Type::kAssign);
    m.ballot = ballot_;
    for (const auto& [s, p] : pending_) {
      if (p.acks.count(c)) continue;
      if (m.entries.size() >= sam::kMaxEntries) break;
      m.entries.push_back(Entry{s, p.id, {}, p.holders});
    }
    if (phase_ != Phase::kSequencing) return;
    if (!m.entries.empty()) SendTo(c, m, out);
  }
}

void Sam::OnAck(const Message& m, proto::Effects* out) {
  if (m.ballot != ballot_) return;
  for (const Entry& e : m.entries) {
    auto it = pending_.find(e.seq);
    if (it != pending_.end() && it->second.id == e.id) it->second.acks.insert(m.sender);
  }
  // Commit in order only (I1: a committed number implies every lower one is).
  Message c = Make(Type::kCommit);
  c.ballot = ballot_;
  while (!pending_.empty()) {
    auto it = pending_.begin();
    if (it->first != committed_ + 1 || static_cast<int>(it->second.acks.size()) < commit_quorum_) break;
    Entry e{it->first, it->second.id, {}, it->second.holders};
    committed_ = it->first;
    ++commits_;
    commit_log_.push_back(e);
    if (commit_log_.size() > 8192) commit_log_.erase(commit_log_.begin(), commit_log_.begin() + 4096);
    c.entries.push_back(e);
    pending_.erase(it);
  }
  if (c.entries.empty()) return;
  for (size_t i = 0; i < c.entries.size(); i += sam::kMaxEntries) {
    Message part = c;
    part.entries.assign(c.entries.begin() + i, c.entries.begin() + std::min(c.entries.size(), i + sam::kMaxEntries));
    out->sends.push_back({cfg_.group, sam::Encode(part), proto::Transport::kDatagram});
    Dispatch(*AddrOf(cfg_.id), part, out);  // our own member / commit-server side
  }
  AssignReady(out);
}

void Sam::UpdateCheckpoint() {
  member_ckpt_[cfg_.id] = {st_.ckpt_seq, st_.ckpt_hash};
  std::vector<uint64_t> seqs;
  for (const auto& [id, c] : member_ckpt_) seqs.push_back(c.first);
  uint64_t c = 0;  // the newest checkpoint `copies` members hold
  if (static_cast<int>(seqs.size()) >= cfg_.copies) {
    std::nth_element(seqs.begin(), seqs.begin() + (cfg_.copies - 1), seqs.end(), std::greater<>());
    c = seqs[cfg_.copies - 1];
  }
  ckpt_seq_ = std::max(ckpt_seq_, c);
  ckpt_holders_.clear();
  for (const auto& [id, ck] : member_ckpt_)
    if (ckpt_seq_ > 0 && ck.first >= ckpt_seq_ && ckpt_holders_.size() < sam::kMaxHolders) ckpt_holders_.push_back(id);
}

void Sam::SendAlive(proto::Effects* out) {
  UpdateCheckpoint();
  Message m = Make(Type::kAlive);
  m.ballot = ballot_;
  m.n1 = committed_;
  m.n2 = ckpt_seq_;
  m.ids = ckpt_holders_;
  out->sends.push_back({cfg_.group, sam::Encode(m), proto::Transport::kDatagram});
  if (auto self = AddrOf(cfg_.id)) Dispatch(*self, m, out);
}

}  // namespace cm::leader
