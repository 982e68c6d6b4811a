#include "mcast/sender.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace cm::mcast {

using proto::kMillis;
using proto::kNever;
using proto::Transport;

namespace {
// Pacing credit that may accumulate: a sender woken late (on a busy host
// the scheduler keeps it off the CPU for 10-20 ms at times) catches up
// instead of losing the time: up to 20 ms of sending, and at most 512 KiB
// (20 ms at 200 Mbit/s, 4 ms at 1 Gbit/s), which a switch port's buffer or
// a tbf's burst plus queue absorbs. With 8 ms, a 200 Mbit/s sender on the
// 2-core bench host lost 0.3-1 s of a 10 s session to late wake-ups.
constexpr Micros kBurstTime = 20 * kMillis;
constexpr uint64_t kBurstBytes = 512 << 10;
// Frames due within this window go out now, in one batch: one wake-up (and
// one sendmmsg) per half millisecond instead of one per frame. The average
// rate is unchanged; a frame leaves at most this early (12.5 kB at
// 200 Mbit/s).
constexpr Micros kPaceAhead = 500;
constexpr int kParityBatch = 24;  // parity symbols computed per pass over a block
constexpr size_t kWireOverhead = 14 + 20 + 8;   // Ethernet + IPv4 + UDP
constexpr Micros kRateCheck = 100 * kMillis;  // the rate control's epoch
// The unicast finish: a receiver's window of frames in flight is what it
// took in kUnicastWindowTime (at least kUnicastMinWindow); with nothing
// acknowledged for kUnicastStall, what is in flight counts as lost.
constexpr uint64_t kUnicastMinWindow = 256;
constexpr double kSlowLoss = 0.5;  // a receiver losing more (and 3x the median) is finished by unicast
constexpr double kUnicastWindowTime = 500'000;  // µs
constexpr Micros kUnicastStall = 5 * proto::kSeconds;
}  // namespace

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kRunning: return "running";
    case Outcome::kAllDone: return "all";
    case Outcome::kQuorum: return "quorum";
    case Outcome::kFailed: return "failed";
  }
  return "?";
}

Sender::Sender(SenderConfig cfg, ObjectSource* source)
    : cfg_(std::move(cfg)),
      source_(source),
      hash_(cfg_.hash),
      key_(cfg_.key ? &*cfg_.key : nullptr),
      rng_(cfg_.seed),
      rate_(cfg_.rate_bps),
      rc_(RateConfig{.cap_bps = cfg_.rate_bps, .start_bps = cfg_.start_rate_bps}) {
  rate_ = rc_.rate();
  rate_said_ = rate_;
  cfg_.block_k = std::clamp(cfg_.block_k, 1, kMaxBlockK);
  if (cfg_.frame_size == 0) cfg_.frame_size = 1;
  geo_ = Geometry{cfg_.size, cfg_.frame_size, static_cast<uint32_t>(cfg_.block_k)};
  blocks_.resize(geo_.blocks());
  frame_buf_.resize(cfg_.frame_size);
  // The run id comes from the seed without drawing from rng_, so the rest of
  // a seeded run is the same with or without it (splitmix64 finaliser).
  uint64_t z = cfg_.seed + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  run_ = (z ^ (z >> 31)) | 1;
}

Message Sender::Base(Type t) const {
  Message m;
  m.type = t;
  m.session = session_;
  if (!cfg_.backup_for.empty()) m.flags |= kFlagBackup;
  return m;
}

void Sender::Emit(const Message& m, const proto::Address& to, Transport t, proto::Effects* out) {
  std::string bytes = Encode(m, key_);
  if (t == Transport::kDatagram && to.IsMulticast()) stats_.bytes += bytes.size();
  out->sends.push_back({to, std::move(bytes), t});
}

ReceiverInfo& Sender::Info(const std::string& id) {
  auto [it, fresh] = recv_.try_emplace(id);
  if (fresh) it->second.id = id;
  return it->second;
}

const RsCode& Sender::Code(int k) {
  auto& c = codes_[k];
  if (!c) c = std::make_unique<RsCode>(k);
  return *c;
}

Micros Sender::NackPeriod() const {
  // Advice grows with the group so reports never implode on the sender.
  return cfg_.nack_period * static_cast<Micros>(1 + recv_.size() / 32);
}

Micros Sender::FrameCost(size_t bytes) {
  // In nanoseconds with the remainder carried: truncating to whole
  // microseconds would pace ~1.6% above the rate at 200 Mbit/s, and a tbf
  // set to the rate then drops the excess once its queue fills.
  uint64_t ns = (bytes + kWireOverhead) * 8 * 1'000'000'000ull / std::max<uint64_t>(rate_, 1000) + pace_carry_ns_;
  pace_carry_ns_ = ns % 1000;
  return static_cast<Micros>(ns / 1000);
}

uint64_t Sender::Avail() {
  if (avail_ < cfg_.size) avail_ = std::min<uint64_t>(source_->Available(), cfg_.size);
  return avail_;
}

bool Sender::Prepare(Micros now, proto::Effects* out) {
  if (ready_) return true;
  size_t need = static_cast<size_t>(std::min<uint64_t>(cfg_.size, kSessionPrefix));
  if (Avail() < need) return false;
  std::string prefix(need, '\0');
  if (need && !source_->Read(0, need, reinterpret_cast<uint8_t*>(prefix.data())).ok()) {
    out->alerts.push_back("error: cannot read the object");
    Finish(now, Outcome::kFailed, out);
    return false;
  }
  session_ = SessionId(cfg_.name, cfg_.size, prefix);
  ready_ = true;
  return true;
}

void Sender::Start(Micros now, proto::Effects* out) {
  started_ = now;
  started_ms_ = static_cast<uint64_t>(std::max<Micros>(now + cfg_.wall_offset, 0) / kMillis);
  last_progress_ = now;
  for (const auto& id : cfg_.receivers) Info(id);
  next_rate_check_ = now + kRateCheck;
  if (!cfg_.backup_for.empty()) {
    active_ = false;
    primary_heard_ = now;  // assume alive until shown otherwise
    out->events.push_back("backup: standing by for " + cfg_.backup_for);
    Prepare(now, out);
    out->wake_at = ready_ ? now + cfg_.primary_timeout : now + kSourcePoll;
    return;
  }
  if (!Prepare(now, out)) {
    if (outcome_ == Outcome::kRunning) out->events.push_back("waiting for the first bytes of " + cfg_.name);
    out->wake_at = outcome_ == Outcome::kRunning ? now + kSourcePoll : now;
    return;
  }
  BeginSession(now, out);
  Pump(now, out);
}

void Sender::BeginSession(Micros now, proto::Effects* out) {
  last_progress_ = now;
  last_growth_ = now;
  growth_watched_ = true;
  next_announce_ = now;
  data_start_ = now + cfg_.announce_lead;
  next_send_ = data_start_;
  if (geo_.blocks() == 0) {
    tail_ = true;
    next_query_ = data_start_;
  }
  out->events.push_back("start session " + std::to_string(session_) + " " + cfg_.name + " size " +
                        std::to_string(cfg_.size) + " rate " + std::to_string(rate_));
}

void Sender::RefreshSource(Micros now, proto::Effects* out) {
  if (avail_ < cfg_.size) {
    uint64_t before = avail_;
    if (Avail() > before) last_progress_ = last_growth_ = now;  // the source growing is progress too
    if (growth_watched_ && now - last_growth_ > cfg_.stall_timeout && outcome_ == Outcome::kRunning) {
      // Its writer is gone (a relay that died while receiving): receivers
      // that keep hearing our announcements would otherwise wait forever.
      std::string why = cfg_.name + " stopped growing at " + std::to_string(avail_) + " of " +
                        std::to_string(cfg_.size) + " bytes for " +
                        std::to_string(cfg_.stall_timeout / proto::kSeconds) + " s";
      FailIncomplete("the source " + why, out);
      out->alerts.push_back("error: " + why);
      return Finish(now, Outcome::kFailed, out);
    }
  }
  if (!hash_) {
    if (Status e = source_->Fault(); !e.ok() && outcome_ == Outcome::kRunning) {
      out->alerts.push_back("error: " + e.message());
      return Finish(now, Outcome::kFailed, out);
    }
    hash_ = source_->Hash();
    if (hash_) {
      out->events.push_back("hash known");
      if (active_ && data_start_ > 0) next_announce_ = now;  // tell receivers at once
    }
  }
}

void Sender::AddReceiver(Micros now, const std::string& id, const proto::Address& addr, proto::Effects* out) {
  ReceiverInfo& r = Info(id);
  r.addr = addr;
  r.last_heard = now;
  if (r.state != RecvState::kIncomplete) {
    r.state = RecvState::kIncomplete;  // it wants the object again: it does not hold it
    r.reason.clear();
  }
  if (!cfg_.receivers.empty() && std::find(cfg_.receivers.begin(), cfg_.receivers.end(), id) == cfg_.receivers.end()) {
    cfg_.receivers.push_back(id);
    out->events.push_back("want from " + id + ": added to the session");
  }
}

void Sender::OnWant(Micros now, const proto::Address& from, const Message& m, proto::Effects* out) {
  if (!active_ || !ready_ || !hash_ || outcome_ != Outcome::kRunning || m.want.id.empty()) return;
  for (const WantEntry& e : m.want.entries) {
    if (e.name != cfg_.name || e.size != cfg_.size || e.hash != *hash_) continue;
    auto known = recv_.find(m.want.id);
    bool waited_for = known != recv_.end() && known->second.state == RecvState::kIncomplete &&
                      (cfg_.receivers.empty() ||
                       std::find(cfg_.receivers.begin(), cfg_.receivers.end(), m.want.id) != cfg_.receivers.end());
    AddReceiver(now, m.want.id, from, out);
    if (waited_for) return;  // already in the session: no need to hold it off
    Message a = Base(Type::kAnswer);
    a.answer.code = AnswerCode::kWait;  // it is coming: this session
    a.answer.nack_period_ms = static_cast<uint16_t>(NackPeriod() / kMillis);
    Emit(a, from, Transport::kDatagram, out);
    return;
  }
}

void Sender::OnTimer(Micros now, proto::Effects* out) { Pump(now, out); }

void Sender::SendAnnounce(Micros now, proto::Effects* out, const proto::Address* to) {
  Message m = Base(Type::kAnnounce);
  Announce& a = m.announce;
  if (hash_) {
    a.hash = *hash_;
    a.flags |= kAnnounceHashKnown;
  }
  if (avail_ < cfg_.size) a.flags |= kAnnounceGrowing;
  a.size = cfg_.size;
  a.frame_size = cfg_.frame_size;
  a.block_k = static_cast<uint8_t>(cfg_.block_k);
  a.max_passes = static_cast<uint8_t>(cfg_.max_passes);
  a.rate_kbps = static_cast<uint32_t>(std::min<uint64_t>(rate_ / 1000, UINT32_MAX));
  a.nack_period_ms = static_cast<uint16_t>(std::min<Micros>(NackPeriod() / kMillis, 60000));
  a.phase = outcome_ != Outcome::kRunning ? 2 : tail_ ? 1 : 0;
  a.epoch = ++epoch_;
  a.run = run_;
  a.started_ms = started_ms_;
  a.stamp_ms = static_cast<uint64_t>(std::max<Micros>(now + cfg_.wall_offset, 0) / kMillis);
  a.name = cfg_.name;
  a.sender_id = cfg_.id;
  Emit(m, to ? *to : cfg_.group, Transport::kDatagram, out);
  ++stats_.announces;
}

bool Sender::LoadBlock(uint32_t b, std::vector<uint8_t>* buf) {
  uint32_t k = geo_.BlockK(b);
  buf->assign(static_cast<size_t>(k) * cfg_.frame_size, 0);
  uint64_t off = geo_.FrameOffset(b, 0);
  size_t n = static_cast<size_t>(std::min<uint64_t>(buf->size(), cfg_.size - off));
  return source_->Read(off, n, buf->data()).ok();
}

int Sender::NextParityEsi(uint32_t b) const {
  int k = static_cast<int>(geo_.BlockK(b));
  int used = blocks_[b].used;
  int esi = cfg_.backup_for.empty() ? k + used : kMaxSymbols - 1 - used;
  return esi < k || esi >= kMaxSymbols ? -1 : esi;
}

const uint8_t* Sender::Parity(uint32_t b, int esi, int ahead) {
  size_t fs = cfg_.frame_size;
  if (parity_block_ == b && parity_next_ < parity_esis_.size() && parity_esis_[parity_next_] == esi)
    return &parity_buf_[fs * parity_next_++];
  int k = static_cast<int>(geo_.BlockK(b));
  int step = cfg_.backup_for.empty() ? 1 : -1;  // the order NextParityEsi hands them out
  parity_esis_.clear();
  for (int i = 0, e = esi; i < std::clamp(ahead, 1, kParityBatch) && e >= k && e < kMaxSymbols; ++i, e += step)
    parity_esis_.push_back(e);
  parity_buf_.resize(fs * parity_esis_.size());
  std::vector<const uint8_t*> ptrs(static_cast<size_t>(k));
  for (int i = 0; i < k; ++i) ptrs[static_cast<size_t>(i)] = &block_buf_[static_cast<size_t>(i) * fs];
  std::vector<uint8_t*> outs(parity_esis_.size());
  for (size_t i = 0; i < outs.size(); ++i) outs[i] = &parity_buf_[i * fs];
  Code(k).EncodeMany(parity_esis_, ptrs.data(), fs, outs.data());
  parity_block_ = b;
  parity_next_ = 1;
  return parity_buf_.data();
}

void Sender::QueueTailParity(Micros now, proto::Effects* out) {
  // The reports about the blocks sent last cannot have arrived yet: their
  // repairs would wait a round trip after the data ends, which is most of a
  // session's tail. Send now what the lossiest receiver is expected to need
  // for them (mean + one standard deviation of its losses, over the loss of
  // the parity itself); NACKs still correct any shortfall.
  double loss = 0;
  for (auto& [id, r] : recv_)
    if (r.heard && r.state == RecvState::kIncomplete && !r.slow) loss = std::max(loss, r.loss);
  loss = std::min(loss, 0.5);
  if (loss < 0.01) return;
  Micros window = NackPeriod() * 3 / 2 + 20 * kMillis;
  uint64_t frames = 0;
  for (uint32_t b = geo_.blocks(); b-- > 0;) {
    BlockState& bs = blocks_[b];
    if (now - bs.sent_at > window) break;
    if (bs.pass != 0 || pending_.count(b)) continue;
    double k = geo_.BlockK(b), mean = k * loss;
    int want = static_cast<int>(std::ceil((mean + std::sqrt(mean * (1 - loss))) / (1 - loss)));
    ++bs.pass;
    pending_[b] = want;
    repairs_.push_back(b);
    frames += static_cast<uint64_t>(want);
  }
  stats_.tail_parity += frames;
  if (frames)
    out->events.push_back("tail parity: " + std::to_string(frames) + " frames for a loss of " +
                          std::to_string(static_cast<int>(loss * 1000) / 10.0).substr(0, 4) + "%");
}

bool Sender::SendOneFrame(Micros now, proto::Effects* out) {
  Message m = Base(Type::kData);
  if (!repairs_.empty()) {
    uint32_t b = repairs_.front();
    BlockState& bs = blocks_[b];
    int& count = pending_[b];
    int k = static_cast<int>(geo_.BlockK(b));
    int esi = NextParityEsi(b);
    if (count <= 0 || esi < 0) {
      // Nothing left to send, or the symbol space is used up (the pass cap
      // sends later NACKs for this block over unicast).
      if (esi < 0) bs.pass = static_cast<uint8_t>(std::max(cfg_.max_passes, 1));
      pending_.erase(b);
      repairs_.pop_front();
      return true;
    }
    if (cached_block_ != b) {
      if (Avail() < std::min<uint64_t>(cfg_.size, geo_.FrameOffset(b, static_cast<uint32_t>(k)))) {
        // A growing source (a backup that took over with less than the
        // primary had): this block is not all here yet; the others first.
        source_wait_ = true;
        repairs_.pop_front();
        repairs_.push_back(b);
        return false;
      }
      if (!LoadBlock(b, &block_buf_)) return false;
      cached_block_ = b;
    }
    int fresh = kMaxSymbols - k - bs.used;
    if (count > fresh && bs.data_resent < k) {
      // More symbols wanted than fresh parity can give (a receiver holds
      // almost nothing of the block, e.g. after a backup took over with no
      // data pass of its own): the data frames themselves go again first.
      esi = bs.data_resent++;
      std::memcpy(frame_buf_.data(), &block_buf_[static_cast<size_t>(esi) * cfg_.frame_size], cfg_.frame_size);
    } else {
      std::memcpy(frame_buf_.data(), Parity(b, esi, count), cfg_.frame_size);
      ++bs.used;
    }
    m.data.block = b;
    m.data.esi = static_cast<uint8_t>(esi);
    m.data.pass = bs.pass;
    bs.last_repair = now;
    if (--count <= 0) {
      pending_.erase(b);
      repairs_.pop_front();
    }
    ++stats_.repair_frames;
  } else if (!tail_) {
    uint32_t b = next_block_, esi = next_esi_;
    // One read per block rather than a pread per frame; its own buffer, so
    // repairs of older blocks in between do not evict it.
    if (data_block_ != b) {
      uint64_t end = std::min<uint64_t>(cfg_.size, geo_.FrameOffset(b, geo_.BlockK(b)));
      if (Avail() < end) {
        source_wait_ = true;  // a growing source: this block is not all there yet
        return false;
      }
      data_block_ = UINT32_MAX;
      if (!LoadBlock(b, &data_buf_)) {
        out->alerts.push_back("error: cannot read the object");
        Finish(now, Outcome::kFailed, out);
        return false;
      }
      data_block_ = b;
    }
    std::memcpy(frame_buf_.data(), &data_buf_[static_cast<size_t>(esi) * cfg_.frame_size], cfg_.frame_size);
    m.data.block = b;
    m.data.esi = static_cast<uint8_t>(esi);
    m.data.pass = 0;
    if (++next_esi_ >= geo_.BlockK(b)) {
      next_esi_ = 0;
      blocks_[b].sent_at = now;
      if (++next_block_ >= geo_.blocks()) {
        tail_ = true;
        // Give receivers one NACK period to report before the first query,
        // and tell them at once that all data is out (they NACK every block).
        next_query_ = now + NackPeriod();
        next_announce_ = now;
        out->events.push_back("tail: all data sent once");
        QueueTailParity(now, out);
      }
    }
    ++stats_.data_frames;
  } else {
    return false;
  }
  m.data.payload = std::string_view(reinterpret_cast<const char*>(frame_buf_.data()), cfg_.frame_size);
  m.data.sent_us = static_cast<uint32_t>(now);
  m.data.seq = frame_seq_++;
  Emit(m, cfg_.group, Transport::kDatagram, out);
  next_send_ += FrameCost(kDataHeaderSize + cfg_.frame_size + (key_ ? kTagSize : 0));
  return true;
}

bool Sender::SendUnicast(Micros now, proto::Effects* out) {
  // Each receiver's stream carries at most its window of frames not yet
  // acknowledged (the `unicast` count of its reports): the TCP queue never
  // holds more than about half a second of what the receiver takes, and a
  // block is never queued behind a copy of itself.
  // A slow receiver's finish waits for the multicast part: every byte sent
  // to it crosses the links the others share, and they must not wait for it.
  bool hold_slow = outcome_ == Outcome::kRunning &&
                   std::any_of(recv_.begin(), recv_.end(), [](const auto& e) {
                     return !e.second.slow && e.second.heard && e.second.state == RecvState::kIncomplete;
                   });
  std::vector<uint8_t> buf;
  int jobs = 0;
  for (auto q = unicast_.begin(); q != unicast_.end();) {
    auto it = recv_.find(q->id);
    if (it == recv_.end()) {
      q = unicast_.erase(q);
      continue;
    }
    ReceiverInfo& r = it->second;
    if (r.slow && hold_slow) {
      ++q;
      continue;
    }
    uint64_t in_flight = r.uni_sent - std::min(r.uni_sent, r.uni_acked);
    if (in_flight > 0 && now - r.uni_progress > kUnicastStall) {
      // Nothing acknowledged for this long (a stream that broke and took
      // its queue with it): what is in flight is lost, blocks may go again.
      out->events.push_back("unicast to " + r.id + ": no progress for " +
                            std::to_string(kUnicastStall / proto::kSeconds) + " s, sending again");
      r.uni_sent = r.uni_acked;
      for (auto u = unicast_sent_.begin(); u != unicast_sent_.end();)
        u = u->first.first == r.id && u->second > r.uni_acked ? unicast_sent_.erase(u) : std::next(u);
      in_flight = 0;
    }
    if (in_flight >= UnicastWindow(r)) {
      ++q;
      continue;
    }
    if (jobs == 4) return true;  // more to send: the caller comes back at once
    ++jobs;
    UnicastJob j = *q;
    q = unicast_.erase(q);
    if (!LoadBlock(j.block, &buf)) continue;
    auto recv = it;
    uint32_t k = geo_.BlockK(j.block);
    std::vector<const uint8_t*> ptrs(k);
    for (uint32_t i = 0; i < k; ++i) ptrs[i] = &buf[static_cast<size_t>(i) * cfg_.frame_size];
    // The stream is reliable: `need` fresh parity symbols complete the block.
    // Only when the symbol space is spent does the whole block go.
    BlockState& bs = blocks_[j.block];
    int fresh = kMaxSymbols - static_cast<int>(k) - bs.used;
    bool parity = j.need > 0 && j.need <= fresh;
    uint32_t count = parity ? static_cast<uint32_t>(j.need) : k;
    std::vector<uint8_t> sym;
    std::vector<int> esis;
    if (parity) {
      for (uint32_t n = 0; n < count; ++n) {
        esis.push_back(NextParityEsi(j.block));
        ++bs.used;
      }
      sym.resize(static_cast<size_t>(count) * cfg_.frame_size);
      std::vector<uint8_t*> outs(count);
      for (uint32_t n = 0; n < count; ++n) outs[n] = &sym[static_cast<size_t>(n) * cfg_.frame_size];
      Code(static_cast<int>(k)).EncodeMany(esis, ptrs.data(), cfg_.frame_size, outs.data());
    }
    for (uint32_t n = 0; n < count; ++n) {
      Message m = Base(Type::kData);
      m.flags |= kFlagUnicast;
      m.data.block = j.block;
      m.data.pass = bs.pass;
      if (parity) {
        m.data.esi = static_cast<uint8_t>(esis[n]);
        m.data.payload = std::string_view(reinterpret_cast<const char*>(&sym[static_cast<size_t>(n) * cfg_.frame_size]),
                                          cfg_.frame_size);
      } else {
        m.data.esi = static_cast<uint8_t>(n);
        m.data.payload = std::string_view(reinterpret_cast<const char*>(ptrs[n]), cfg_.frame_size);
      }
      Emit(m, recv->second.addr, Transport::kStream, out);
    }
    if (in_flight == 0) r.uni_progress = now;  // the stall clock starts with the first frame in flight
    r.unicast_frames += count;
    r.uni_sent += count;
    unicast_sent_[{r.id, j.block}] = r.uni_sent;
    stats_.unicast_frames += count;
  }
  return false;
}

uint64_t Sender::UnicastWindow(const ReceiverInfo& r) const {
  return std::max<uint64_t>(kUnicastMinWindow, static_cast<uint64_t>(r.uni_rate * kUnicastWindowTime / 1e6));
}

void Sender::OnUnicastAck(Micros now, ReceiverInfo& r, uint64_t acked) {
  if (acked <= r.uni_acked) return;
  bool busy = r.uni_sent > r.uni_acked;  // frames were in flight all along: a rate sample
  if (busy && r.uni_rate_at > 0 && now > r.uni_rate_at) {
    double inst = double(acked - r.uni_rate_acked) * 1e6 / double(now - r.uni_rate_at);
    r.uni_rate = r.uni_rate == 0 ? inst : 0.7 * r.uni_rate + 0.3 * inst;
  }
  r.uni_rate_at = now;
  r.uni_rate_acked = acked;
  r.uni_acked = acked;
  r.uni_progress = now;
}

void Sender::SendQuery(Micros now, proto::Effects* out) {
  (void)now;
  ++stats_.queries;
  std::vector<std::string> open, settled;
  std::vector<const ReceiverInfo*> unicast_to;
  for (auto& [id, r] : recv_) {
    if (r.state != RecvState::kIncomplete) {
      settled.push_back(id);
      continue;
    }
    r.unanswered = r.answered ? 0 : r.unanswered + 1;
    r.answered = false;
    open.push_back(id);
  }
  Message m = Base(Type::kQuery);
  m.query.seq = ++query_seq_;
  bool known_set = !cfg_.receivers.empty();
  if (!known_set) {
    // Unknown members: everyone who has not completed answers.
    m.query.mode = QueryMode::kAllButListed;
    m.query.ids = settled;
    Emit(m, cfg_.group, Transport::kDatagram, out);
    return;
  }
  if (open.empty()) return;
  bool all_heard = std::all_of(open.begin(), open.end(), [&](const std::string& id) { return recv_[id].heard; });
  if (open.size() * 2 > recv_.size() || !all_heard) {
    // More than half silent (or some never heard): one multicast query with
    // the shorter of the two lists.
    if (open.size() <= settled.size()) {
      m.query.mode = QueryMode::kOnlyListed;
      m.query.ids = open;
    } else {
      m.query.mode = QueryMode::kAllButListed;
      m.query.ids = settled;
    }
    Emit(m, cfg_.group, Transport::kDatagram, out);
    return;
  }
  for (const auto& id : open) {
    m.query.mode = QueryMode::kOnlyListed;
    m.query.ids = {id};
    Emit(m, recv_[id].addr, Transport::kDatagram, out);
  }
}

void Sender::FailIncomplete(const std::string& why, proto::Effects* out) {
  for (auto& [id, r] : recv_) {
    if (r.state != RecvState::kIncomplete) continue;
    r.state = RecvState::kFailed;
    r.reason = why;
    out->events.push_back("failed " + id + ": " + why);
  }
}

void Sender::Evaluate(Micros now, proto::Effects* out) {
  bool stalled = now - last_progress_ > cfg_.stall_timeout;
  for (auto& [id, r] : recv_) {
    if (r.state != RecvState::kIncomplete) continue;
    if (r.unanswered >= cfg_.max_queries || stalled) {
      r.state = RecvState::kFailed;
      r.reason = stalled ? "no progress for " + std::to_string(cfg_.stall_timeout / proto::kSeconds) + " s"
                 : r.heard ? "silent after " + std::to_string(cfg_.max_queries) + " queries"
                           : "never heard from";
      out->events.push_back("failed " + id + ": " + r.reason);
    }
  }
  // With a list, only listed receivers count as complete (others that joined
  // are waited for while they receive, but do not stand in for a listed one).
  int complete = 0, open = 0;
  for (auto& [id, r] : recv_) {
    bool listed = cfg_.receivers.empty() || std::find(cfg_.receivers.begin(), cfg_.receivers.end(), id) != cfg_.receivers.end();
    if (r.state == RecvState::kComplete && listed) ++complete;
    if (r.state == RecvState::kIncomplete) ++open;
  }
  int target = !cfg_.receivers.empty() ? static_cast<int>(cfg_.receivers.size()) : cfg_.expect;
  int rounds = static_cast<int>(stats_.queries);
  if (target > 0) {
    if (complete >= target && open == 0) return Finish(now, Outcome::kAllDone, out);
    if (!cfg_.receivers.empty() ? open > 0 : (open > 0 || (rounds < cfg_.max_queries && !stalled))) return;
  } else {
    // Unknown group: settle once everyone heard has settled and a few queries went unanswered by others.
    if (open > 0 || (rounds < 3 && !stalled)) return;
    if (recv_.empty() && rounds < cfg_.max_queries && !stalled) return;
    if (!recv_.empty() && complete == static_cast<int>(recv_.size())) return Finish(now, Outcome::kAllDone, out);
  }
  if (cfg_.quorum > 0 && complete >= cfg_.quorum) return Finish(now, Outcome::kQuorum, out);
  Finish(now, Outcome::kFailed, out);
}

void Sender::Finish(Micros now, Outcome o, proto::Effects* out) {
  if (outcome_ != Outcome::kRunning) return;
  outcome_ = o;
  // Linger answers late NACKs by unicast; when every receiver has the object
  // nobody can send one, so waiting would only lengthen the session.
  bool all_settled = std::all_of(recv_.begin(), recv_.end(),
                                 [](const auto& e) { return e.second.state == RecvState::kComplete; });
  // Known receivers (a list, or --expect N) that all reported complete:
  // nobody is left to NACK, so close at once (docs/protocol/mcast.md).
  bool known_group = !cfg_.receivers.empty() || cfg_.expect > 0;
  finish_at_ = o == Outcome::kAllDone && all_settled && known_group ? now : now + cfg_.linger;
  repairs_.clear();
  pending_.clear();
  Message m = Base(Type::kClose);
  m.close.outcome = o == Outcome::kAllDone ? 0 : o == Outcome::kQuorum ? 1 : 2;
  Emit(m, cfg_.group, Transport::kDatagram, out);
  Emit(m, cfg_.group, Transport::kDatagram, out);
  out->events.push_back(std::string("outcome ") + OutcomeName(o));
}

void Sender::AdjustRate(Micros now, proto::Effects* out) {
  next_rate_check_ = now + kRateCheck;
  uint64_t frame_bits = (kDataHeaderSize + cfg_.frame_size + (key_ ? kTagSize : 0) + kWireOverhead) * 8;
  size_t group = 0;
  for (auto& [id, r] : recv_)
    if (r.state == RecvState::kIncomplete && !r.slow) ++group;
  if (cfg_.receivers.empty() && cfg_.expect > static_cast<int>(recv_.size()))
    group += static_cast<size_t>(cfg_.expect) - recv_.size();  // expected, not heard yet
  RateDecision d = rc_.Tick(now, frame_bits, group);
  std::vector<double> losses;
  for (auto& [id, r] : recv_)
    if (r.heard && r.state == RecvState::kIncomplete && now - r.last_heard < 5 * kRateCheck) losses.push_back(r.loss);
  std::sort(losses.begin(), losses.end());
  double median = losses.empty() ? 0 : losses[losses.size() / 2];
  // A receiver far behind the others is finished by unicast instead of
  // slowing everyone down: one whose own link queues while the group's does
  // not (the rate control names it), or one that loses most of what is sent.
  median_loss_ = losses.size() >= 2 ? median : 1.0;
  auto flag = [&](ReceiverInfo& r, const char* why) {
    if (r.slow || r.state != RecvState::kIncomplete) return;
    r.slow = true;
    rc_.Forget(r.id);
    // Repairs queued so far were sized for it too: drop them; the others'
    // next reports ask again for what they still need.
    repairs_.clear();
    pending_.clear();
    out->events.push_back("slow " + r.id + ": finishing it by unicast (" + why + ")");
  };
  for (const std::string& id : d.slow) flag(Info(id), "its own link queues");
  if (losses.size() >= 2)
    for (auto& [id, r] : recv_)
      if (r.loss > kSlowLoss && r.loss > 3 * median) flag(r, "loses most frames");
  rate_ = rc_.rate();
  // Name the rate when it moved by a tenth since it was last named.
  uint64_t diff = rate_ > rate_said_ ? rate_ - rate_said_ : rate_said_ - rate_;
  if (diff * 10 > rate_said_) {
    rate_said_ = rate_;
    out->events.push_back("rate " + std::to_string(rate_));
  }
}

void Sender::OnNack(Micros now, ReceiverInfo& r, uint32_t b, int need, uint8_t seen_pass, proto::Effects* out) {
  (void)out;
  if (!tail_ && b >= next_block_) return;  // not sent yet: it is coming
  BlockState& bs = blocks_[b];
  auto key = std::make_pair(r.id, b);
  bool late = outcome_ != Outcome::kRunning;
  if (late || r.slow || (bs.pass >= cfg_.max_passes && !pending_.count(b))) {
    // Once per evidence: a block queued is not queued again (its need is
    // updated); one sent is sent again only when the receiver's report shows
    // every frame sent up to it arrived and still lacks the block.
    auto it = std::find_if(unicast_.begin(), unicast_.end(),
                           [&](const UnicastJob& j) { return j.id == r.id && j.block == b; });
    if (it != unicast_.end()) {
      it->need = need;
      return;
    }
    auto sent = unicast_sent_.find(key);
    if (sent != unicast_sent_.end() && sent->second > r.uni_acked) return;  // on its way
    unicast_.push_back({r.id, b, need});
    return;
  }
  // A receiver losing most frames while the others do not is about to be
  // named slow: its needs would size every repair round.
  if (r.loss > kSlowLoss && r.loss > 3 * median_loss_) return;
  // Margin for the receiver's own loss rate so the repair usually lands in one round.
  int want = need + static_cast<int>(std::ceil(need * std::min(r.loss, 0.5) / (1 - std::min(r.loss, 0.5))));
  auto p = pending_.find(b);
  if (p != pending_.end()) {
    // Aggregation: one round serves the neediest receiver. A report that has
    // not seen the previous round overstates its need: it waits for the next.
    if (seen_pass + 1 >= bs.pass) p->second = std::max(p->second, want);
    return;
  }
  Micros holdoff = 2 * NackPeriod() + 20 * kMillis;
  if (seen_pass < bs.pass && now - bs.last_repair < holdoff) return;  // the last round is still on its way
  ++bs.pass;
  pending_[b] = want;
  repairs_.push_back(b);
}

void Sender::OnStatus(Micros now, const proto::Address& from, const Message& msg, proto::Effects* out) {
  const StatusReport& s = msg.status;
  if (s.id.empty()) return;
  bool to_backup = msg.flags & kFlagBackup;
  if (!active_) {
    // A standby backup: only reports addressed to a backup matter.
    if (!to_backup) return;
    ReceiverInfo& r = Info(s.id);
    r.addr = from;
    if (now - primary_heard_ < cfg_.primary_timeout) {
      if (now - last_alert_ > proto::kSeconds) {
        last_alert_ = now;
        out->alerts.push_back("alert: NACK from " + s.id + " while primary " + cfg_.backup_for + " is alive");
      }
      Message a = Base(Type::kAnswer);
      a.answer.code = AnswerCode::kWait;
      a.answer.nack_period_ms = static_cast<uint16_t>(NackPeriod() / kMillis);
      Emit(a, from, Transport::kDatagram, out);
      return;
    }
    if (probe_deadline_ == kNever) SendProbe(now, true, out);
    return;
  }
  ReceiverInfo& r = Info(s.id);
  r.addr = from;
  r.heard = true;
  r.last_heard = now;
  r.answered = true;
  r.unanswered = 0;
  if (s.have_bytes > r.have_bytes) {
    r.have_bytes = s.have_bytes;
    last_progress_ = now;
  }
  OnUnicastAck(now, r, s.unicast);
  if (s.heard + s.lost >= 16) r.loss = 0.6 * r.loss + 0.4 * (double(s.lost) / double(s.heard + s.lost));
  if (r.state != RecvState::kIncomplete) return;
  if (s.state == RecvState::kIncomplete && !r.slow)
    rc_.OnReport(now, s.id, s.heard, s.lost, static_cast<Micros>(s.qdelay_us));
  else
    rc_.Forget(s.id);
  if (hash_ && s.state == RecvState::kIncomplete && s.have_bytes >= cfg_.size && s.nacks.empty()) {
    // It holds every byte and waits for the hash: the announcement carrying
    // it was lost. Send one straight to it.
    Micros& t = hash_pushed_[s.id];
    if (t == 0 || now - t >= NackPeriod()) {
      t = now;
      SendAnnounce(now, out, &from);
    }
  }
  if (s.state == RecvState::kComplete) {
    r.state = RecvState::kComplete;
    last_progress_ = now;
    out->events.push_back("complete " + s.id);
    Evaluate(now, out);  // everyone may be done before the data pass is (they held it already)
    return;
  }
  if (s.state == RecvState::kFailed) {
    r.state = RecvState::kFailed;
    r.reason = s.reason.empty() ? "failed" : s.reason;
    out->events.push_back("failed " + s.id + ": " + r.reason);
    Evaluate(now, out);  // everyone may be done before the data pass is (they held it already)
    return;
  }
  ++r.nacks;
  bool dont_have = false;
  for (const NackRun& run : s.nacks) {
    ++stats_.nack_runs;
    if (run.first >= blocks_.size()) {
      dont_have = true;
      continue;
    }
    uint32_t end = static_cast<uint32_t>(std::min<uint64_t>(uint64_t(run.first) + run.count, blocks_.size()));
    int need = std::min<int>(run.need, static_cast<int>(kMaxSymbols));
    for (uint32_t b = run.first; b < end; ++b) OnNack(now, r, b, need, run.seen_pass, out);
  }
  if (dont_have || outcome_ != Outcome::kRunning || r.slow) {
    Message a = Base(Type::kAnswer);
    a.answer.code = dont_have ? AnswerCode::kDontHave : AnswerCode::kUnicast;
    a.answer.nack_period_ms = static_cast<uint16_t>(NackPeriod() / kMillis);
    Emit(a, from, Transport::kDatagram, out);
  }
}

void Sender::TakeOver(Micros now, proto::Effects* out) {
  active_ = true;
  tail_ = true;  // no state from the primary: serve what receivers NACK
  out->events.push_back("takeover: primary " + cfg_.backup_for + " is down");
  next_announce_ = now;
  data_start_ = now;
  next_send_ = now;
  next_query_ = now + NackPeriod() / 2;
  last_progress_ = now;
}

void Sender::SendProbe(Micros now, bool for_nack, proto::Effects* out) {
  probe_nonce_ = static_cast<uint32_t>(rng_());
  probe_for_nack_ = for_nack;
  Message p = Base(Type::kProbe);
  p.probe.nonce = probe_nonce_;
  p.probe.sender_id = cfg_.backup_for;
  Emit(p, cfg_.group, Transport::kDatagram, out);
  probe_deadline_ = now + cfg_.probe_timeout;
  out->events.push_back("probing primary " + cfg_.backup_for);
}

void Sender::BackupTick(Micros now, proto::Effects* out) {
  if (probe_deadline_ != kNever && now >= probe_deadline_) {
    probe_deadline_ = kNever;
    if (now - primary_heard_ >= cfg_.primary_timeout) return TakeOver(now, out), Pump(now, out);
  }
  // A primary silent for primary_timeout is probed even without NACKs: it
  // may have died after the last data frame, with receivers that need only
  // to be asked (or finished) and so never NACK.
  if (probe_deadline_ == kNever && now - primary_heard_ >= cfg_.primary_timeout) SendProbe(now, false, out);
  out->wake_at = probe_deadline_ != kNever ? probe_deadline_ : primary_heard_ + cfg_.primary_timeout;
}

void Sender::OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) {
  Message m;
  if (Parse(bytes, key_, &m) != ParseResult::kOk) return Pump(now, out);
  bool from_backup = m.flags & kFlagBackup;
  switch (m.type) {
    case Type::kStatus:
      if (ready_ && m.session == session_) OnStatus(now, from, m, out);
      break;
    case Type::kWant:
      OnWant(now, from, m, out);
      break;
    case Type::kProbe:
      if (cfg_.backup_for.empty() && m.probe.sender_id == cfg_.id && !finished_) {
        Message r = Base(Type::kProbeReply);
        r.probe = m.probe;
        Emit(r, from, Transport::kDatagram, out);
      }
      break;
    case Type::kProbeReply:
      if (!cfg_.backup_for.empty() && m.probe.sender_id == cfg_.backup_for && m.probe.nonce == probe_nonce_) {
        primary_heard_ = now;
        probe_deadline_ = kNever;
        if (probe_for_nack_)
          out->alerts.push_back("alert: receivers miss answers but primary " + cfg_.backup_for + " is alive");
      }
      break;
    case Type::kAnnounce:
      if (!cfg_.backup_for.empty() && !from_backup && m.announce.sender_id == cfg_.backup_for) {
        primary_heard_ = now;
        probe_deadline_ = kNever;
        if (active_ && outcome_ == Outcome::kRunning) {
          active_ = false;
          repairs_.clear();
          pending_.clear();
          unicast_.clear();
          out->events.push_back("handback: primary " + cfg_.backup_for + " is back");
        }
      }
      break;
    case Type::kClose:
      if (!cfg_.backup_for.empty() && !from_backup && m.session == session_ && !active_ && !finished_) {
        finished_ = true;
        // The session's outcome is the primary's.
        outcome_ = m.close.outcome == 0 ? Outcome::kAllDone : m.close.outcome == 1 ? Outcome::kQuorum : Outcome::kFailed;
        out->events.push_back("primary finished");
      }
      break;
    default:
      break;
  }
  Pump(now, out);
}

void Sender::Pump(Micros now, proto::Effects* out) {
  if (finished_) {
    out->wake_at = kNever;
    return;
  }
  if (!ready_ && outcome_ == Outcome::kRunning) {
    // Waiting for the first bytes of a growing source (the session id covers them).
    if (!Prepare(now, out)) {
      if (outcome_ == Outcome::kRunning) {
        if (now - last_progress_ > cfg_.stall_timeout) {
          std::string why = "no bytes of " + cfg_.name + " for " + std::to_string(cfg_.stall_timeout / proto::kSeconds) + " s";
          FailIncomplete(why, out);
          out->alerts.push_back("error: " + why);
          Finish(now, Outcome::kFailed, out);
          return Pump(now, out);
        }
        out->wake_at = now + kSourcePoll;
        return;
      }
    } else if (active_) {
      BeginSession(now, out);
    }
  }
  if (!active_) {
    RefreshSource(now, out);
    return BackupTick(now, out);
  }
  if (outcome_ != Outcome::kRunning) {
    bool more = SendUnicast(now, out);
    if (now >= finish_at_ && unicast_.empty()) {
      finished_ = true;
      out->events.push_back("finished");
      out->wake_at = kNever;
      return;
    }
    // Jobs held back by a full window go when a report acknowledges frames.
    out->wake_at = more ? now : unicast_.empty() ? finish_at_ : std::max(finish_at_, now + kRateCheck);
    return;
  }
  RefreshSource(now, out);
  if (outcome_ != Outcome::kRunning) return Pump(now, out);
  if (now >= next_announce_) {
    SendAnnounce(now, out);
    // Several announcements before the first data frame, so one lost
    // announcement does not cost a receiver the whole first pass.
    next_announce_ = now < data_start_ ? std::min(data_start_, now + cfg_.announce_lead / 4 + 1)
                                       : now + cfg_.announce_interval;
  }
  bool unicast_more = SendUnicast(now, out);
  bool waited_for_source = source_wait_;
  source_wait_ = false;
  if (now >= data_start_) {
    Micros burst = std::min<Micros>(kBurstTime, static_cast<Micros>(kBurstBytes * 8 * 1'000'000 / std::max<uint64_t>(rate_, 1000)));
    if (next_send_ < now - burst) {
      if ((!repairs_.empty() || !tail_) && !waited_for_source) stats_.pacing_lost += now - burst - next_send_;
      next_send_ = now - burst;
    }
    for (int sent = 0; sent < 512 && next_send_ <= now + kPaceAhead && outcome_ == Outcome::kRunning; ++sent)
      if (!SendOneFrame(now, out)) break;
  }
  if (outcome_ == Outcome::kRunning && now >= next_rate_check_) AdjustRate(now, out);
  if (outcome_ == Outcome::kRunning && tail_ && now >= next_query_) {
    Evaluate(now, out);
    if (outcome_ == Outcome::kRunning) {
      SendQuery(now, out);
      next_query_ = now + std::max(cfg_.query_interval, 3 * NackPeriod());
    }
  }
  if (outcome_ != Outcome::kRunning) return Pump(now, out);
  Micros w = std::min(next_announce_, next_rate_check_);
  // Wake when the next frame is due and send then all those due in the next
  // kPaceAhead: a batch per wake-up, not one frame.
  if (!repairs_.empty() || !tail_) {
    Micros due = std::max(next_send_, data_start_);
    // Stopped because a growing source has not the next block yet: look
    // again after kSourcePoll, not at the (past) pacing slot -- that would
    // spin on the source until its writer catches up.
    if (source_wait_) due = std::max(due, now + kSourcePoll);
    w = std::min(w, due);
  }
  if (unicast_more) w = now;
  else if (!unicast_.empty()) w = std::min(w, now + kRateCheck);  // held back by windows: reports open them
  if (tail_) w = std::min(w, next_query_);
  if (source_wait_ || !hash_) w = std::min(w, now + kSourcePoll);  // a growing source, a hash to come
  out->wake_at = w;
}

}  // namespace cm::mcast
