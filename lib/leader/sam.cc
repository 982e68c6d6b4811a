// The SAM core (leader/sam.h): plumbing, the member (apply in order, gap
// repair, checkpoints, garbage) and the commit server. The sequencer side is
// in sam_sequencer.cc, the messages in sam_wire.cc.
#include "leader/sam.h"

#include <algorithm>

namespace cm::leader {

using proto::Micros;
using sam::Ballot;
using sam::Entry;
using sam::Message;
using sam::Type;

namespace {
using sam::kNackSpan;
using sam::kRecoverWindow;
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

void Sam::AddPeer(uint64_t id, const proto::Address& addr) {
  if (id == 0 || id == cfg_.id) return;
  addr_[id] = addr;
  if (std::none_of(cfg_.members.begin(), cfg_.members.end(), [&](const SamPeer& p) { return p.id == id; }))
    cfg_.members.push_back({id, addr});
}

bool Sam::WantsData(uint64_t id) const {
  if (id == 0 || st_.held.count(id)) return false;
  for (const auto& [seq, e] : known_)
    if (e.id == id && seq > st_.delivered) return true;
  return false;
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

// A commit server answers a message of an older ballot than it promised
// with kFenced (and counts it): true when `m` was fenced.
bool Sam::Fence(const proto::Address& from, const Message& m, proto::Effects* out) {
  if (!(m.ballot < st_.promised)) return false;
  Message f = Make(Type::kFenced);
  f.ballot = st_.promised;
  Send(from, f, out);
  ++rejected_;
  return true;
}

void Sam::OnAssign(const proto::Address& from, const Message& m, proto::Effects* out) {
  if (Fence(from, m, out)) return;
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
  if (Fence(from, m, out)) return;
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

}  // namespace cm::leader
