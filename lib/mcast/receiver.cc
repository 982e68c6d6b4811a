#include "mcast/receiver.h"

#include <algorithm>
#include <array>
#include <cstdint>

namespace cm::mcast {

using proto::kMillis;
using proto::kNever;
using proto::Transport;

namespace {
constexpr size_t kMaxRuns = 100;  // NACK runs per report (a datagram's worth)
constexpr Micros kLinger = 5 * proto::kSeconds;  // answer queries after the end, until Close
constexpr size_t kMaxRemembered = 4096;  // runs remembered by the replay defence

void Remember(std::set<uint64_t>* set, std::deque<uint64_t>* order, uint64_t run) {
  if (!set->insert(run).second) return;
  order->push_back(run);
  if (order->size() > kMaxRemembered) {
    set->erase(order->front());
    order->pop_front();
  }
}
}  // namespace

namespace {
constexpr int kOwdSeconds = 10;  // the base delay is the least over this many seconds
// A report's delay is the least of the last this many frames' (not of the
// whole interval: a queue that built up during it would be hidden by the
// frames before it; not of one frame: scheduling jitter).
constexpr size_t kOwdRecent = 16;
constexpr uint32_t kSeqJump = 1u << 16;  // a larger jump in Data::seq is another sender run
}  // namespace

struct Receiver::Session {
  uint32_t id = 0;
  Announce a;
  Geometry geo;
  proto::Address sender, backup;
  bool via_backup = false;
  bool hash_known = false;  // a.hash is the whole-object hash
  uint32_t last_epoch = 0;  // of the last announcement heard (a new sender run starts again at 1)
  std::unique_ptr<ObjectSink> sink;
  struct Block {
    std::vector<uint8_t> esis;
    std::vector<std::string> syms;
    uint8_t seen_pass = 0;
    bool done = false;
  };
  std::vector<Block> blocks;
  uint32_t done_blocks = 0;
  uint64_t have_bytes = 0;
  int64_t highest_seen = -1;
  Micros nack_period = 100 * kMillis;
  Micros last_heard = 0, next_report = kNever, query_reply_at = kNever, close_deadline = kNever;
  Micros wait_until = 0, ended_at = 0, last_complete_answer = -proto::kSeconds * 100;
  bool seq_init = false;
  uint32_t next_seq = 0;  // the sender's frame sequence number expected next
  uint32_t lost = 0, heard = 0, seq = 0;
  // One-way delay of multicast data frames (sender clock to ours, relative
  // to the first frame's): the least since the last report, and the least
  // per second over the last kOwdSeconds (the base). Their difference is
  // the queueing delay a report carries.
  bool owd_init = false;
  uint32_t owd_ref = 0;
  bool owd_heard = false;  // a multicast data frame was heard since the last report
  std::array<int64_t, kOwdRecent> owd_recent{};  // the last frames' delays (a ring)
  uint32_t owd_count = 0;
  std::array<int64_t, kOwdSeconds> owd_sec_min{};
  std::array<int64_t, kOwdSeconds> owd_sec{};
  bool closed = false;
  SessionResult result;
};

Receiver::Receiver(ReceiverConfig cfg, ObjectStore* store)
    : cfg_(std::move(cfg)), store_(store), key_(cfg_.key ? &*cfg_.key : nullptr), rng_(cfg_.seed) {}
Receiver::~Receiver() = default;

const RsCode& Receiver::Code(int k) {
  auto& c = codes_[k];
  if (!c) c = std::make_unique<RsCode>(k);
  return *c;
}

Micros Receiver::Jitter(Micros period) {
  period = std::max<Micros>(period, kMillis);
  return period / 2 + static_cast<Micros>(rng_() % static_cast<uint64_t>(period));
}

std::pair<uint64_t, uint64_t> Receiver::progress() const {
  for (auto& [id, s] : sessions_)
    if (s->result.state == RecvState::kIncomplete) return {s->have_bytes, s->a.size};
  return {0, 0};
}

void Receiver::Start(Micros now, proto::Effects* out) {
  started_ = now;
  if (!cfg_.wants.empty() && !cfg_.one_session)
    next_want_ = now + static_cast<Micros>(rng_() % static_cast<uint64_t>(std::max<Micros>(cfg_.want_period / 4, 1)));
  out->wake_at = next_want_;
}

void Receiver::SetWants(Micros now, std::vector<WantEntry> wants, proto::Effects* out) {
  cfg_.wants = std::move(wants);
  want_backoff_ = 0;
  want_hold_until_ = 0;
  next_want_ = cfg_.wants.empty() || cfg_.one_session ? kNever : now;
  Pump(now, out);
}

std::vector<WantEntry> Receiver::Missing() {
  std::vector<WantEntry> missing;
  for (const WantEntry& w : cfg_.wants) {
    bool arriving = false;
    for (auto& [id, sp] : sessions_) {
      const Session& s = *sp;
      if (s.result.state == RecvState::kIncomplete && s.a.name == w.name && s.a.size == w.size &&
          (!s.hash_known || s.a.hash == w.hash))
        arriving = true;
    }
    if (!arriving && !store_->Has(w.name, w.hash)) missing.push_back(w);
  }
  return missing;
}

void Receiver::CheckWants(Micros now, proto::Effects* out) {
  std::vector<WantEntry> missing = Missing();
  if (missing.empty()) {
    want_backoff_ = 0;
    wanting_.clear();
    next_want_ = now + Jitter(cfg_.want_period);
    return;
  }
  if (now >= want_hold_until_) {
    for (const WantEntry& w : missing)
      if (std::find(wanting_.begin(), wanting_.end(), w.name) == wanting_.end())
        out->events.push_back("want " + w.name);
    wanting_.clear();
    for (const WantEntry& w : missing) wanting_.push_back(w.name);
    // As many datagrams as the list needs (each names what fits).
    for (size_t i = 0; i < missing.size();) {
      size_t n = std::max<size_t>(1, WantEntriesThatFit(missing, i, cfg_.id.size()));
      Message m;
      m.type = Type::kWant;
      m.session = 0;
      m.want.id = cfg_.id;
      m.want.entries.assign(missing.begin() + static_cast<ptrdiff_t>(i),
                            missing.begin() + static_cast<ptrdiff_t>(std::min(missing.size(), i + n)));
      i += n;
      m.want.more = i < missing.size();
      out->sends.push_back({cfg_.group, Encode(m, key_), Transport::kDatagram});
      ++wants_sent_;
    }
  }
  // Unanswered wants back off (a missing object nobody serves costs little).
  Micros period = cfg_.want_period << std::min(want_backoff_++, 3);
  next_want_ = now + Jitter(period);
}

void Receiver::OnTimer(Micros now, proto::Effects* out) { Pump(now, out); }

void Receiver::End(Micros now, Session& s, RecvState st, const std::string& reason, proto::Effects* out,
                   cm::Code error) {
  if (s.result.state != RecvState::kIncomplete) return;
  s.result.state = st;
  s.result.reason = reason;
  s.result.error = st == RecvState::kFailed ? error : cm::Code::kOk;
  s.ended_at = now;
  s.blocks.clear();
  s.blocks.shrink_to_fit();
  s.sink.reset();
  if (st == RecvState::kComplete) RememberCompleted(s);
  results_.push_back(s.result);
  out->events.push_back((st == RecvState::kComplete ? "complete " : "failed ") + s.a.name +
                        (reason.empty() ? "" : ": " + reason));
  SendStatus(now, s, out);
}

std::string Receiver::ReplayCheck(Micros now, const Announce& a, bool fresh_only) {
  if (!key_) return "";
  if (cfg_.replay_window > 0) {
    Micros wall = now + cfg_.wall_offset;
    Micros stamp = static_cast<Micros>(std::min<uint64_t>(a.stamp_ms, INT64_MAX / 2000)) * kMillis;
    if (stamp < wall - cfg_.replay_window || stamp > wall + cfg_.replay_window)
      return "its clock is " + std::to_string((stamp - wall) / kMillis) + " ms from ours (more than the " +
             std::to_string(cfg_.replay_window / kMillis) + " ms replay window): a replay, or clocks out of sync";
  }
  if (fresh_only) return "";
  if (completed_runs_.count(a.run)) return "a run of it already completed here (a replay)";
  uint64_t last = store_->LastSession(a.name, a.sender_id);
  if (a.started_ms < last)
    return "it started before the session that stored " + a.name + " (a replay of an older session)";
  return "";
}

void Receiver::Refuse(const Announce& a, const std::string& why, proto::Effects* out) {
  ++replays_refused_;
  if (refused_runs_.count(a.run)) return;
  Remember(&refused_runs_, &refused_order_, a.run);
  out->alerts.push_back("refused session for " + a.name + " from " + a.sender_id + ": " + why);
}

void Receiver::RememberCompleted(const Session& s) {
  if (!key_) return;
  Remember(&completed_runs_, &completed_order_, s.a.run);
  if (s.a.started_ms > store_->LastSession(s.a.name, s.a.sender_id)) {
    Status st = store_->RecordSession(s.a.name, s.a.sender_id, s.a.started_ms);
    (void)st;  // the run set still holds it; a store that cannot record only weakens restarts
  }
}

void Receiver::Complete(Micros now, Session& s, proto::Effects* out) {
  if (!s.hash_known) return;  // every block is here; the hash comes with a later announcement
  // A newer session of the same sender may have stored the name meanwhile.
  if (key_ && s.a.started_ms < store_->LastSession(s.a.name, s.a.sender_id)) {
    if (s.sink) s.sink->Discard();
    return End(now, s, RecvState::kFailed, "a newer session stored " + s.a.name + " meanwhile", out);
  }
  Status st = s.sink ? s.sink->Commit(s.a.hash) : Error(Code::kIo, "no sink");
  if (!st.ok())
    End(now, s, RecvState::kFailed, st.code() == cm::Code::kCorrupt ? "hash mismatch" : st.ToString(), out, st.code());
  else
    End(now, s, RecvState::kComplete, "", out);
}

void Receiver::OnHashKnown(Micros now, Session& s, proto::Effects* out) {
  if (s.result.state != RecvState::kIncomplete) return;
  if (store_->Has(s.a.name, s.a.hash)) {
    // We held it all along (the first announcements had no hash yet).
    if (s.sink) s.sink->Discard();
    s.result.already_had = true;
    s.last_complete_answer = now;
    return End(now, s, RecvState::kComplete, "", out);
  }
  if (s.done_blocks == s.blocks.size()) Complete(now, s, out);
}

void Receiver::SendStatus(Micros now, Session& s, proto::Effects* out) {
  Message m;
  m.type = Type::kStatus;
  m.session = s.id;
  StatusReport& st = m.status;
  st.seq = ++s.seq;
  st.state = s.result.state;
  st.have_bytes = s.result.state == RecvState::kComplete ? s.a.size : s.have_bytes;
  st.lost = s.lost;
  st.heard = s.heard;
  s.lost = s.heard = 0;
  st.unicast = s.result.unicast_frames;
  if (s.owd_heard) {
    int64_t recent = INT64_MAX;
    for (size_t i = 0; i < std::min<size_t>(s.owd_count, kOwdRecent); ++i) recent = std::min(recent, s.owd_recent[i]);
    int64_t sec = now / proto::kSeconds + 1, base = recent;
    for (int i = 0; i < kOwdSeconds; ++i)
      if (s.owd_sec[static_cast<size_t>(i)] > sec - kOwdSeconds) base = std::min(base, s.owd_sec_min[static_cast<size_t>(i)]);
    st.qdelay_us = static_cast<uint32_t>(std::min<int64_t>(recent - base, UINT32_MAX));
    s.owd_heard = false;
  }
  st.id = cfg_.id;
  st.reason = s.result.reason;
  bool silent = !s.via_backup && now - s.last_heard > cfg_.sender_timeout;
  if (s.result.state == RecvState::kIncomplete) {
    // Blocks behind the newest one heard are overdue; once all data has been
    // sent (or the sender is gone) every incomplete block is.
    bool last_heard_of = s.highest_seen + 1 >= static_cast<int64_t>(s.blocks.size());  // the pass reached the end
    uint32_t horizon = (s.a.phase >= 1 || s.via_backup || silent || s.close_deadline != kNever || last_heard_of)
                           ? static_cast<uint32_t>(s.blocks.size())
                           : static_cast<uint32_t>(std::max<int64_t>(s.highest_seen, 0));
    for (uint32_t b = 0; b < horizon && st.nacks.size() <= kMaxRuns; ++b) {
      const auto& bl = s.blocks[b];
      if (bl.done) continue;
      uint8_t need = static_cast<uint8_t>(s.geo.BlockK(b) - bl.esis.size());
      if (!st.nacks.empty()) {
        NackRun& last = st.nacks.back();
        if (last.first + last.count == b && last.need == need && last.seen_pass == bl.seen_pass) {
          ++last.count;
          continue;
        }
      }
      st.nacks.push_back({b, 1, need, bl.seen_pass});
    }
    if (st.nacks.size() > kMaxRuns) {
      st.nacks.resize(kMaxRuns);
      st.more = true;
    }
  }
  proto::Address to = s.via_backup ? s.backup : s.sender;
  if (silent && s.result.state == RecvState::kIncomplete) {
    m.flags |= kFlagBackup;  // the primary is not answering: ask any backup
    to = cfg_.group;
  }
  out->sends.push_back({to, Encode(m, key_), Transport::kDatagram});
}

void Receiver::OnAnnounce(Micros now, const proto::Address& from, const Message& m, proto::Effects* out) {
  const Announce& a = m.announce;
  bool from_backup = m.flags & kFlagBackup;
  bool known = a.flags & kAnnounceHashKnown;
  std::string stale = ReplayCheck(now, a, true);
  if (!stale.empty()) return Refuse(a, stale, out);
  auto it = sessions_.find(m.session);
  if (it != sessions_.end()) {
    Session& s = *it->second;
    bool other = a.size != s.a.size || a.frame_size != s.a.frame_size || a.block_k != s.a.block_k ||
                 a.name != s.a.name || (known && s.hash_known && a.hash != s.a.hash);
    if (other && s.result.state == RecvState::kIncomplete) return;  // a different object under a colliding id: ignore
    // The same object sent again (a server answering wants, a restarted
    // sender): a session we failed is tried again, and one we completed is
    // received again if the object is no longer in the store; answering
    // "complete" from memory would be a false complete.
    // A failed one is retried when a new sender run announces it (its epoch
    // starts again) or a second after the failure, not at every announcement
    // of the run it failed in (a full disk would loop).
    bool new_run = a.epoch < s.last_epoch;
    bool again = !other && a.phase < 2 && s.result.state != RecvState::kIncomplete && !cfg_.one_session &&
                 ((s.result.state == RecvState::kFailed && (new_run || now - s.ended_at >= proto::kSeconds)) ||
                  (s.result.state == RecvState::kComplete && !store_->Has(s.a.name, s.a.hash)));
    if (other || again) {
      // Starting over is where a replay would replace what we hold.
      std::string why = ReplayCheck(now, a, false);
      if (!why.empty()) return Refuse(a, why, out);
      sessions_.erase(it);  // a new version under an id we used before (same name, size and first bytes)
      it = sessions_.end();
    }
  }
  if (it != sessions_.end()) {
    Session& s = *it->second;
    if (from_backup) {
      s.via_backup = true;
      s.backup = from;
    } else {
      s.via_backup = false;
      s.sender = from;
    }
    s.last_heard = now;
    s.last_epoch = std::max(s.last_epoch, a.epoch);
    bool tail_began = s.a.phase == 0 && a.phase >= 1;
    s.a.phase = a.phase;
    s.nack_period = std::max<Micros>(a.nack_period_ms * kMillis, 10 * kMillis);
    if (s.result.state == RecvState::kIncomplete && s.next_report == kNever) s.next_report = now + Jitter(s.nack_period);
    // All data is out: what we lack now is known; report it soon (after a
    // short random back-off) rather than at the end of the period.
    if (tail_began && s.result.state == RecvState::kIncomplete)
      s.next_report = std::min(s.next_report, now + 1 + static_cast<Micros>(rng_() % static_cast<uint64_t>(std::max<Micros>(s.nack_period / 4, 1))));
    if (known && !s.hash_known) {
      s.hash_known = true;
      s.a.hash = a.hash;
      s.a.flags |= kAnnounceHashKnown;
      s.result.hash = a.hash;
      OnHashKnown(now, s, out);
    }
    // A (re)started sender announcing what we hold hears "complete" at once.
    if (s.result.state == RecvState::kComplete && a.phase == 0 && now - s.last_complete_answer > proto::kSeconds) {
      s.last_complete_answer = now;
      SendStatus(now, s, out);
    }
    return;
  }
  if (!cfg_.only_name.empty() && a.name != cfg_.only_name) return;
  if (cfg_.one_session && !sessions_.empty()) return;
  if (a.phase == 2) return;  // a session that is over
  std::string why = ReplayCheck(now, a, false);
  if (!why.empty()) return Refuse(a, why, out);
  auto s = std::make_unique<Session>();
  s->id = m.session;
  s->a = a;
  s->last_epoch = a.epoch;
  s->hash_known = known;
  s->geo = Geometry{a.size, a.frame_size, a.block_k};
  (from_backup ? s->backup : s->sender) = from;
  s->sender = from;
  s->via_backup = from_backup;
  s->last_heard = now;
  s->nack_period = std::max<Micros>(a.nack_period_ms * kMillis, 10 * kMillis);
  s->result.session = m.session;
  s->result.name = a.name;
  s->result.hash = a.hash;
  s->result.size = a.size;
  Session& ref = *s;
  sessions_[m.session] = std::move(s);
  want_backoff_ = 0;
  out->events.push_back("session " + std::to_string(m.session) + " " + a.name + " size " + std::to_string(a.size));
  if (known && store_->Has(a.name, a.hash)) {
    ref.result.already_had = true;
    ref.last_complete_answer = now;
    return End(now, ref, RecvState::kComplete, "", out);
  }
  // A daemon joining a session for an object on its want list asks to be
  // waited for: the sender may not know it (it was not listed).
  if (!cfg_.one_session) {
    for (const WantEntry& w : cfg_.wants) {
      if (w.name != a.name || w.size != a.size || (known && w.hash != a.hash)) continue;
      Message wm;
      wm.type = Type::kWant;
      wm.want.id = cfg_.id;
      wm.want.entries = {w};
      out->sends.push_back({from, Encode(wm, key_), Transport::kDatagram});
      ++wants_sent_;
      break;
    }
  }
  auto sink = store_->Create(a.name, m.session, a.size);
  if (!sink.ok()) return End(now, ref, RecvState::kFailed, sink.status().ToString(), out, sink.status().code());
  ref.sink = std::move(*sink);
  ref.blocks.resize(ref.geo.blocks());
  if (ref.blocks.empty()) return Complete(now, ref, out);
  // Resume: whole blocks an interrupted session already wrote are done.
  uint64_t block_bytes = uint64_t(ref.geo.k) * ref.geo.frame_size;
  for (auto [off, len] : ref.sink->Resumed()) {
    if (off % block_bytes != 0) continue;
    uint64_t b = off / block_bytes;
    if (b >= ref.blocks.size() || ref.blocks[b].done) continue;
    uint64_t want = std::min<uint64_t>(block_bytes, a.size - off);
    if (len != want) continue;
    ref.blocks[b].done = true;
    ++ref.done_blocks;
    ref.have_bytes += len;
    ref.result.resumed_bytes += len;
  }
  if (ref.result.resumed_bytes)
    out->events.push_back("resumed " + a.name + ": " + std::to_string(ref.result.resumed_bytes) + " bytes on disk");
  // The first report comes within the first half period (25-75 ms at the
  // default 100 ms), not a whole one: the sender's rate control steps its
  // start-up only on reports, and its first epoch ends 100 ms after it began.
  ref.next_report = now + Jitter(ref.nack_period / 2);
  if (ref.done_blocks == ref.blocks.size()) Complete(now, ref, out);
}

void Receiver::OnData(Micros now, const proto::Address& from, const Message& m, proto::Effects* out) {
  auto it = sessions_.find(m.session);
  if (it == sessions_.end()) return;  // not announced yet: the next announcement comes soon
  Session& s = *it->second;
  const Data& d = m.data;
  bool unicast = m.flags & kFlagUnicast;
  if (!unicast) {
    s.last_heard = now;
    if (m.flags & kFlagBackup) {
      s.via_backup = true;
      s.backup = from;
    } else if (s.via_backup) {
      s.via_backup = false;
      s.sender = from;
    }
  }
  if (s.result.state != RecvState::kIncomplete) return;
  if (d.payload.size() != s.a.frame_size || d.block >= s.blocks.size()) return;
  uint32_t k = s.geo.BlockK(d.block);
  if (d.esi >= kMaxSymbols) return;
  if (unicast) {
    ++s.result.unicast_frames;
  } else {
    ++s.heard;
    // Relative one-way delay, to the datagram's arrival (not its read): the
    // clocks' offset cancels in the differences.
    uint32_t x = static_cast<uint32_t>(now - queued_) - d.sent_us;
    if (!s.owd_init) {
      s.owd_init = true;
      s.owd_ref = x;
    }
    int64_t rel = static_cast<int32_t>(x - s.owd_ref);
    s.owd_heard = true;
    s.owd_recent[s.owd_count++ % kOwdRecent] = rel;
    int64_t sec = now / proto::kSeconds + 1;  // +1: 0 marks an empty slot
    size_t slot = static_cast<size_t>(sec % kOwdSeconds);
    if (s.owd_sec[slot] != sec) {
      s.owd_sec[slot] = sec;
      s.owd_sec_min[slot] = rel;
    } else {
      s.owd_sec_min[slot] = std::min(s.owd_sec_min[slot], rel);
    }
    // Loss: gaps in the sender's frame sequence (data and parity alike),
    // counted from the first frame heard; a frame arriving late fills its gap.
    // Another sender run (a backup, a restart) numbers from anywhere: a jump
    // of more than kSeqJump either way starts counting again.
    uint32_t ahead = d.seq - s.next_seq, behind = s.next_seq - d.seq;
    if (!s.seq_init || ahead <= kSeqJump || behind > kSeqJump) {
      if (s.seq_init && ahead <= kSeqJump) s.lost += ahead;
      s.seq_init = true;
      s.next_seq = d.seq + 1;
    } else if (s.lost > 0) {
      --s.lost;
    }
  }
  s.highest_seen = std::max<int64_t>(s.highest_seen, d.block);
  auto& bl = s.blocks[d.block];
  if (bl.done) return;
  bl.seen_pass = std::max(bl.seen_pass, d.pass);
  if (std::find(bl.esis.begin(), bl.esis.end(), d.esi) != bl.esis.end()) return;
  bl.esis.push_back(d.esi);
  bl.syms.emplace_back(d.payload);
  if (bl.esis.size() < k) return;
  // k distinct symbols: rebuild the block and write its data frames.
  std::vector<int> esis(bl.esis.begin(), bl.esis.end());
  std::vector<const uint8_t*> syms;
  for (auto& x : bl.syms) syms.push_back(reinterpret_cast<const uint8_t*>(x.data()));
  std::string buf(static_cast<size_t>(k) * s.a.frame_size, '\0');
  std::vector<uint8_t*> data;
  for (uint32_t i = 0; i < k; ++i) data.push_back(reinterpret_cast<uint8_t*>(&buf[static_cast<size_t>(i) * s.a.frame_size]));
  if (!Code(static_cast<int>(k)).Decode(esis, syms, s.a.frame_size, data)) {
    // Cannot happen with distinct valid esis; drop the symbols and let NACKs refill.
    bl.esis.clear();
    bl.syms.clear();
    return;
  }
  uint64_t off = s.geo.FrameOffset(d.block, 0);
  size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), s.a.size - off));
  Status st = s.sink->Write(off, reinterpret_cast<const uint8_t*>(buf.data()), n);
  if (!st.ok()) return End(now, s, RecvState::kFailed, st.ToString(), out, st.code());
  bl.done = true;
  bl.esis.clear();
  bl.esis.shrink_to_fit();
  bl.syms.clear();
  bl.syms.shrink_to_fit();
  s.have_bytes += n;
  if (++s.done_blocks == s.blocks.size()) Complete(now, s, out);
}

void Receiver::OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) {
  Message m;
  if (Parse(bytes, key_, &m) == ParseResult::kOk) {
    switch (m.type) {
      case Type::kAnnounce:
        OnAnnounce(now, from, m, out);
        break;
      case Type::kData:
        OnData(now, from, m, out);
        break;
      case Type::kQuery: {
        auto it = sessions_.find(m.session);
        if (it == sessions_.end()) break;
        Session& s = *it->second;
        bool listed = std::find(m.query.ids.begin(), m.query.ids.end(), cfg_.id) != m.query.ids.end();
        bool me = m.query.mode == QueryMode::kAll || (m.query.mode == QueryMode::kOnlyListed) == listed;
        s.last_heard = now;
        if (me && s.query_reply_at == kNever) s.query_reply_at = now + static_cast<Micros>(rng_() % static_cast<uint64_t>(s.nack_period));
        break;
      }
      case Type::kAnswer: {
        auto it = sessions_.find(m.session);
        if (it == sessions_.end()) {
          // An answer to our want: a session for it is coming. Ask again
          // only if it has not started after a while.
          if (m.answer.code == AnswerCode::kWait && next_want_ != kNever) want_hold_until_ = now + cfg_.want_period;
          break;
        }
        Session& s = *it->second;
        if (m.answer.nack_period_ms) s.nack_period = std::max<Micros>(m.answer.nack_period_ms * kMillis, 10 * kMillis);
        if (m.answer.code == AnswerCode::kWait || m.answer.code == AnswerCode::kUnicast)
          s.wait_until = now + 2 * s.nack_period;
        if (m.answer.code == AnswerCode::kDontHave) out->events.push_back("sender does not have what we asked for");
        break;
      }
      case Type::kClose: {
        auto it = sessions_.find(m.session);
        if (it == sessions_.end()) break;
        Session& s = *it->second;
        s.closed = true;
        if (s.result.state == RecvState::kIncomplete && s.close_deadline == kNever) {
          // Ask one last time: the sender answers late NACKs by unicast.
          s.close_deadline = now + cfg_.close_grace;
          s.a.phase = 2;
          SendStatus(now, s, out);
        }
        break;
      }
      default:
        break;
    }
  }
  Pump(now, out);
}

void Receiver::Pump(Micros now, proto::Effects* out) {
  if (next_want_ != kNever && now >= next_want_) CheckWants(now, out);
  Micros wake = next_want_;
  bool all_over = !sessions_.empty();
  for (auto& [id, sp] : sessions_) {
    Session& s = *sp;
    if (s.result.state == RecvState::kIncomplete) {
      if (s.close_deadline != kNever && now >= s.close_deadline)
        End(now, s, RecvState::kFailed, "the sender closed the session before we had it all", out);
      else if (now - s.last_heard > cfg_.give_up)
        End(now, s, RecvState::kFailed, "no sender for " + std::to_string(cfg_.give_up / proto::kSeconds) + " s", out);
    }
    if (s.query_reply_at != kNever && now >= s.query_reply_at) {
      s.query_reply_at = kNever;
      SendStatus(now, s, out);
      s.next_report = now + Jitter(s.nack_period);
    }
    if (s.result.state == RecvState::kIncomplete) {
      if (s.next_report != kNever && now >= s.next_report) {
        bool silent = !s.via_backup && now - s.last_heard > cfg_.sender_timeout;
        if (now >= s.wait_until) SendStatus(now, s, out);
        s.next_report = now + Jitter(silent ? 2 * s.nack_period : s.nack_period);
      }
      wake = std::min({wake, s.next_report, s.close_deadline, s.last_heard + cfg_.give_up + 1});
      all_over = false;
    } else if (!s.closed && now - s.ended_at < kLinger) {
      all_over = false;
      wake = std::min(wake, s.ended_at + kLinger);
    }
    wake = std::min(wake, s.query_reply_at);
  }
  if (cfg_.one_session && all_over && !finished_) {
    finished_ = true;
    out->events.push_back("finished");
  }
  out->wake_at = wake;
}

}  // namespace cm::mcast
