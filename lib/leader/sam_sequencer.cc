// The sequencer side of the SAM core (leader/sam.h): a term's recovery from
// the commit servers, numbering, commits, heartbeats, the advertised checkpoint.
#include "leader/sam.h"

#include <algorithm>

namespace cm::leader {

using sam::Ballot;
using sam::Entry;
using sam::kRecoverWindow;
using sam::Message;
using sam::Type;

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
