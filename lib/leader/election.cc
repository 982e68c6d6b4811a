#include "leader/election.h"

#include <algorithm>
#include <cmath>

#include "util/json.h"

namespace cm::leader {

using proto::Micros;
using proto::kNever;

const char* StateName(State s) {
  switch (s) {
    case State::kKnown: return "known";
    case State::kUnknown: return "unknown";
    case State::kVoting: return "voting";
    case State::kLeader: return "leader";
    case State::kConceding: return "conceding";
  }
  return "?";
}

Election::Election(Config cfg, Sequencer* sequencer)
    : cfg_(std::move(cfg)), sequencer_(sequencer), rng_(cfg_.rng_seed), control_(cfg_.control) {
  candidate_ = cfg_.admin_priority > 0 &&
               (cfg_.leaders.empty() ||
                std::find(cfg_.leaders.begin(), cfg_.leaders.end(), cfg_.id) != cfg_.leaders.end());
  if (cfg_.static_leader) candidate_ = cfg_.static_leader == cfg_.id;
  SetMeasured(0);
}

void Election::SetMeasured(uint32_t measured) {
  measured_ = std::min<uint32_t>(measured, 0xffff);
  priority_ = std::min<uint32_t>(cfg_.admin_priority, 255) << 16 | measured_;
}

void Election::Sample(const Measurements& m) {
  SetMeasured(damper_.Update(QuantizeSteps(m)) * kMeasuredStep);
}

uint64_t Election::leader() const {
  if (state_ == State::kLeader) return cfg_.id;
  return state_ == State::kKnown ? leader_ : 0;
}

uint64_t Election::committed_seq() const {
  if (state_ == State::kLeader && sequencer_) return std::max(heard_sequence_, sequencer_->HighestSequence());
  return heard_sequence_;
}

std::vector<uint64_t> Election::members() const {
  if (state_ != State::kLeader) return heard_list_;
  std::vector<uint64_t> ids;
  for (const auto& [id, m] : table_) ids.push_back(id);
  return ids;
}

std::vector<Member> Election::member_table() const {
  std::vector<Member> v;
  if (state_ != State::kLeader) return v;
  for (const auto& [id, m] : table_) v.push_back(m);
  return v;
}

bool Election::CanClaim(Micros now) const { return candidate_ && !stopped_ && now >= listen_until_; }

Micros Election::Skew(Micros now) const {
  const Timers& t = cfg_.timers;
  if (now < deposed_until_) return t.deposed_skew;
  constexpr double kMax = double(255u << 16 | 0xffff);
  double weak = 1.0 - priority_ / kMax;
  return t.skew_min + static_cast<Micros>((t.skew_max - t.skew_min) * weak);
}

Micros Election::VoteWindow() {
  const Timers& t = cfg_.timers;
  if (t.vote_max <= t.vote_min) return t.vote_min;
  return std::uniform_int_distribution<Micros>(t.vote_min, t.vote_max)(rng_);
}

int Election::LossDeadIntervals(int base) const {
  const Timers& t = cfg_.timers;
  // The estimate is noisy (a run of received beats pulls it down): plan for
  // two standard deviations of the EWMA above it.
  return LossRun(loss_, t.loss_weight, base, t.dead_intervals_max, t.dead_miss_target);
}

int Election::Peers() const {
  const int others = static_cast<int>(leader_members_) - (registered_ ? 2 : 1);
  return std::max(others, 0);
}

Micros Election::GroupDead(Micros interval) const {
  const Timers& t = cfg_.timers;
  return t.interval > 0 ? t.group_dead * interval / t.interval : t.group_dead;
}

Micros Election::DeadAfter(Micros heard_at) const {
  const Micros interval = leader_interval_ > 0 ? leader_interval_ : cfg_.timers.interval;
  if (group_evidence()) return heard_at + GroupDead(interval) + Skew(heard_at);
  const int dead = LossDeadIntervals(leader_dead_intervals_ > 0 ? leader_dead_intervals_ : cfg_.timers.dead_intervals);
  return heard_at + dead * interval + Skew(heard_at);
}

int Election::ClaimCopies(bool vouched) const {
  // A claim of a live leader wins only if every copy's answer is lost: the
  // leader's (the copy or its Alive lost: q = 1 - (1-p)^2 each) and every
  // voucher's (which also needs to have heard a heartbeat the claimant
  // missed: it missed the same two with p^2).
  const Timers& t = cfg_.timers;
  // The estimate itself (at least loss_weight), not its upper bound: the
  // bound is for the rare event of a run of misses, this is a product of
  // many independent chances (and with the bound, 16 copies would often not
  // do at 20% loss: the window would grow by a heartbeat).
  const double p = std::max(loss_, t.loss_weight);
  const double q = 1 - (1 - p) * (1 - p);
  const int vouchers = vouched ? std::min(Peers(), t.vouchers) : 0;
  for (int c = std::max(t.claim_sends, 1); c <= std::max(t.claim_sends, t.claim_sends_max); ++c) {
    const double qc = std::pow(q, c);
    const double voucher_fails = 1 - (1 - p * p) * (1 - qc);
    if (qc * std::pow(voucher_fails, vouchers) < t.vote_fail_target) return c;
  }
  return 0;
}

Message Election::ClaimMsg() const {
  Message m = Base(MsgType::kClaim);
  m.leader = claim_preempt_ ? leader_ : suspect_.id;
  m.beat = claim_preempt_ ? evidence_beat_ : suspect_beat_;
  m.preempt = claim_preempt_;
  return m;
}

Micros Election::ExpiryOf(const Member& m) const {
  const Timers& t = cfg_.timers;
  if (t.member_refresh <= 0) return t.member_expiry;
  // The member's own estimate, or the group's (all members' registrations)
  // when higher: a member whose few registrations all arrived may still lose
  // the next ones at the group's rate.
  const double w = std::max(t.loss_weight, 1.0 / double(std::max<uint64_t>(1, m.regs_seen)));
  // No loss seen yet is not no loss: the group's estimate is at least its
  // own weight (about one loss in as many registrations as it remembers),
  // so a few refreshes lost in a row at an unmeasured 10% do not drop a
  // live member (without loss a dead one goes after 4 refreshes, not 3).
  const double gw = std::max(GroupLossWeight(), 1.0 / double(std::max<uint64_t>(1, regs_seen_)));
  const double q = std::max(LossUpper(m.loss, w), LossUpper(std::max(reg_loss_, gw), gw));
  // The group's evidence: a refresh of the member counts if the leader hears
  // it, or a peer hears it and the leader that peer's next Register (its
  // digest), so a refresh goes unseen with qg = q * (1 - (1-q)^2)^R, R the
  // peers whose digests the leader reads (this member not counted).
  const int self_reporter = m.digest_at >= now_ - t.member_expiry ? 1 : 0;
  const int peers = std::clamp(reporters_ - self_reporter, 0, kMaxReporters);
  const double qg = q * std::pow(1 - (1 - q) * (1 - q), peers);
  const int cap = static_cast<int>(t.member_expiry_max / t.member_refresh);
  const int k = LossRun(qg, 0, 1, cap, t.member_miss_target);
  const Micros e = std::max(t.member_expiry, k * t.member_refresh + t.member_refresh / 2);
  return std::min(e, std::max(t.member_expiry, t.member_expiry_max));
}

double Election::GroupLossWeight() const {
  // About loss_weight per member: the group's estimate remembers ~20
  // registrations of each member, not ~20 registrations in all.
  return cfg_.timers.loss_weight / double(std::max<size_t>(1, table_.size() - 1));
}

Micros Election::member_expiry(uint64_t id) const {
  auto it = table_.find(id);
  return it == table_.end() || state_ != State::kLeader ? 0 : ExpiryOf(it->second);
}

void Election::CountBeat(const Message& m) {
  if (m.beat == 0) {  // a v1 leader: nothing to count
    beat_leader_ = 0;
    return;
  }
  if (m.sender != beat_leader_ || m.epoch != beat_epoch_) {
    beat_leader_ = m.sender;
    beat_epoch_ = m.epoch;
    last_beat_ = m.beat;
    return;
  }
  if (m.beat <= last_beat_) return;  // a duplicate or a late one
  // A long gap is an outage rather than loss: count at most the cap.
  const uint64_t missed = std::min<uint64_t>(m.beat - last_beat_ - 1, uint64_t(cfg_.timers.dead_intervals_max));
  // EWMA; over the first beats a plain average, so the estimate is quick to learn.
  auto observe = [&](double lost) {
    ++beats_seen_;
    const double w = std::max(cfg_.timers.loss_weight, 1.0 / double(beats_seen_));
    loss_ += w * (lost - loss_);
  };
  for (uint64_t i = 0; i < missed; ++i) observe(1);
  observe(0);
  last_beat_ = m.beat;
}

Micros Election::NextClaimRepeat() const {
  // The copies go out over the first three quarters of the voting window;
  // the last quarter is for the answers to the last ones.
  const int n = claim_copies_;
  if (state_ != State::kVoting || vote_end_ == kNever || claims_sent_ >= n) return kNever;
  return claim_sent_ + claim_spread_ * claims_sent_ / n;
}

Micros Election::AnswerSpacing() const {
  // At most one answer (Alive, vouch, counter-claim) per copy of a claim:
  // the copies come at most claim_sends_max per three quarters of a window.
  const Timers& t = cfg_.timers;
  return std::min(t.interval / 200, t.vote_min / (2 * std::max(t.claim_sends_max, 1)));
}

bool Election::Defer(Micros now, Micros* due, bool* deferred) const {
  // A deadline this node wakes up for late (its host was busy): datagrams
  // that arrived meanwhile may still wait in its socket (a live leader's
  // answer to our claim, a heartbeat), and the timer may run before they
  // are read. Give them a quarter of a voting window, once.
  const Micros late = cfg_.timers.vote_min / 10;
  if (*deferred || *due == kNever || now - *due <= late) return false;
  *deferred = true;
  *due = now + std::max<Micros>(cfg_.timers.vote_min / 4, 1);
  return true;
}

Message Election::Base(MsgType t) const {
  Message m;
  m.type = t;
  m.sender = cfg_.id;
  m.epoch = state_ == State::kLeader ? epoch_ : max_epoch_;
  m.priority = priority_;
  m.addr = cfg_.self;
  return m;
}

void Election::Send(const Message& m, proto::Effects* out) {
  const GroupKey* key = cfg_.key ? &*cfg_.key : nullptr;
  counter_ = std::max(counter_ + 1, static_cast<uint64_t>(std::max<Micros>(0, now_ + cfg_.wall_offset)));
  out->sends.push_back({control_, Encode(m, key, counter_), proto::Transport::kDatagram});
}

void Election::SetState(Micros now, State s, proto::Effects* out) {
  (void)now;
  if (s == state_) return;
  const bool was_leader = state_ == State::kLeader;
  if (state_ == State::kKnown) {
    // Kept while a successor is elected: a vouch for it restores it.
    suspect_ = {leader_, leader_epoch_, leader_prio_, leader_addr_};
    suspect_beat_ = evidence_beat_;
  }
  state_ = s;
  if (s == State::kKnown || s == State::kLeader) hidden_suspicion_ = false;
  out->events.push_back(std::string("state ") + StateName(s));
  if (was_leader) {
    out->events.push_back("demoted epoch=" + std::to_string(epoch_));
    table_.clear();
    list_at_ = report_at_ = next_alive_ = kNever;
    contest_by_ = 0;
    handover_to_ = 0;
    if (sequencer_) sequencer_->OnLeadership(false, epoch_);
  }
}

void Election::Start(Micros now, proto::Effects* out) {
  now_ = now;
  started_ = now;
  const Timers& t = cfg_.timers;
  listen_until_ = cfg_.listen_first ? now + t.DeadInterval() : now;
  state_ = State::kUnknown;
  out->events.push_back("state unknown");
  if (cfg_.static_leader == cfg_.id) {
    BecomeLeader(now, out);
  } else {
    // The strongest of nodes started together claims first.
    claim_at_ = listen_until_ + Skew(now);
  }
  Schedule(out);
}

bool Election::ReplayOk(Micros now, uint64_t sender, uint64_t counter) {
  if (cfg_.replay_window > 0) {
    // The counter is the sender's wall clock: outside the window it is a
    // replay (or a badly skewed clock), even from a sender never heard.
    const int64_t wall = now + cfg_.wall_offset;
    const int64_t sent = counter > uint64_t(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(counter);
    if (sent < wall - cfg_.replay_window || sent > wall + cfg_.replay_window) return false;
  }
  auto [it, fresh] = replay_.try_emplace(sender, counter, 1);
  if (fresh) return true;
  auto& [high, bits] = it->second;
  if (counter > high) {
    uint64_t shift = counter - high;
    bits = shift >= 64 ? 1 : (bits << shift) | 1;
    high = counter;
    return true;
  }
  uint64_t back = high - counter;
  if (back >= 64 || (bits >> back & 1)) return false;
  bits |= uint64_t{1} << back;
  return true;
}

void Election::OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) {
  (void)from;
  if (stopped_) return;
  now_ = now;
  const GroupKey* key = cfg_.key ? &*cfg_.key : nullptr;
  auto d = Decode(bytes, key);
  if (!d || (key && !ReplayOk(now, d->msg.sender, d->counter))) {
    ++rejected_;
    Schedule(out);
    return;
  }
  const Message& m = d->msg;
  if (m.sender == cfg_.id || m.sender == 0) {
    Schedule(out);
    return;
  }
  if (m.priority > kMaxPriority || m.epoch > kMaxEpoch || (max_epoch_ > 0 && m.epoch > max_epoch_ + kMaxEpochJump)) {
    ++rejected_;
    if (now - last_bounds_alert_ >= 10 * proto::kSeconds) {
      last_bounds_alert_ = now;
      out->alerts.push_back("refused a message from " + std::to_string(m.sender) + ": priority " +
                            std::to_string(m.priority) + " / epoch " + std::to_string(m.epoch) +
                            " out of bounds (highest epoch seen " + std::to_string(max_epoch_) + ")");
    }
    Schedule(out);
    return;
  }
  max_epoch_ = std::max(max_epoch_, m.epoch);
  if (state_ == State::kLeader && m.epoch > epoch_) {
    // Someone knows a later term (a healed partition): lead above it at once.
    epoch_ = max_epoch_ = m.epoch + 1;
    MembershipChanged(now, out);
    if (m.type != MsgType::kAlive && handover_to_ == 0 && now - last_alive_sent_ >= cfg_.timers.interval / 10)
      SendAlive(now, out);
  }
  switch (m.type) {
    case MsgType::kAlive: OnAlive(now, m, out); break;
    case MsgType::kClaim: OnClaim(now, m, out); break;
    case MsgType::kResign: OnResign(now, m, out); break;
    case MsgType::kRegister: OnRegister(now, m, out); break;
    case MsgType::kMembers: OnMembers(now, m, out); break;
    case MsgType::kVouch: OnVouch(now, m, out); break;
    case MsgType::kMove:
      if (state_ == State::kKnown && m.sender == leader_ && m.channel.IsMulticast() && m.channel != control_) {
        control_ = m.channel;
        out->groups.push_back({proto::GroupChange::Kind::kJoin, control_});
        out->events.push_back("channel " + control_.ToString());
      }
      break;
  }
  Tick(now, out);
}

void Election::Follow(Micros now, const Message& m, proto::Effects* out) {
  // Back to the leader just suspected (its answer to our claim): the same
  // leader, still registered.
  const uint64_t prev = state_ == State::kKnown ? leader_ : suspect_.id;
  const uint64_t prev_epoch = state_ == State::kKnown ? leader_epoch_ : suspect_.epoch;
  const bool changed = prev != m.sender || prev_epoch != m.epoch;
  if (prev != m.sender) {
    registered_ = false;
    heard_list_.clear();
    heard_regs_.clear();
    register_at_ = now + std::uniform_int_distribution<Micros>(0, cfg_.timers.register_backoff)(rng_);
  }
  SetState(now, State::kKnown, out);
  leader_ = m.sender;
  leader_prio_ = m.priority;
  leader_epoch_ = m.epoch;
  leader_addr_ = m.addr;
  last_alive_ = heard_at_ = now;
  heard_sequence_ = std::max(heard_sequence_, m.sequence);
  CountBeat(m);
  evidence_beat_ = changed ? m.beat : std::max(evidence_beat_, m.beat);
  leader_members_ = m.member_count;
  leader_interval_ = m.interval_us ? m.interval_us : cfg_.timers.interval;
  leader_dead_intervals_ = m.dead_intervals;
  dead_at_ = DeadAfter(now);
  dead_deferred_ = suspicion_ = false;
  claim_at_ = vote_end_ = concede_until_ = kNever;
  if (changed) out->events.push_back("leader " + std::to_string(leader_) + " epoch=" + std::to_string(leader_epoch_));
  // Pre-empt a weaker leader once allowed; back off while claims go unheard.
  if (cfg_.preempt && CanClaim(now) && SelfStronger(leader_prio_, leader_)) {
    if (preempt_at_ == kNever)
      preempt_at_ = std::max(now + Skew(now) + preempt_backoff_, started_ + cfg_.preempt_delay);
  } else {
    preempt_at_ = kNever;
  }
}

void Election::OnAlive(Micros now, const Message& m, proto::Effects* out) {
  switch (state_) {
    case State::kLeader:
      if (!SelfStronger(m.priority, m.sender) && cfg_.static_leader != cfg_.id) {
        StepDown(now, out);
        Follow(now, m, out);
        return;
      }
      if (handover_to_ != 0 && m.sender != handover_to_) {
        // A weaker node took our silence for death and leads: the handover
        // has gone wrong; lead on, audibly (it steps down for our Alive).
        out->events.push_back("handover to " + std::to_string(handover_to_) + " abandoned: leader " +
                              std::to_string(m.sender) + " heard");
        handover_to_ = 0;
        no_handover_until_ = now + 10 * cfg_.timers.DeadInterval();
      }
      // We out-rank it: assert at once with an epoch above both.
      if (contest_by_ != m.sender) {
        contest_by_ = m.sender;
        contest_since_ = now;
        contest_evidence_ = false;
      }
      contest_last_ = now;
      if (m.epoch >= epoch_) {
        epoch_ = m.epoch + 1;
        max_epoch_ = std::max(max_epoch_, epoch_);
        MembershipChanged(now, out);
      }
      // It keeps leading and members follow it: our heartbeats do not get
      // out. Stop competing; pre-empt later with back-off.
      if (contest_evidence_ && cfg_.static_leader != cfg_.id && now - contest_since_ >= cfg_.timers.DeadInterval()) {
        out->events.push_back("unheard: yielding to " + std::to_string(m.sender));
        preempt_backoff_ = std::max(preempt_backoff_ * 2, cfg_.timers.DeadInterval());
        preempt_backoff_ = std::min(preempt_backoff_, 4 * cfg_.timers.DeadInterval());
        StepDown(now, out);
        Follow(now, m, out);
        return;
      }
      if (handover_to_ == 0 && now - last_alive_sent_ >= cfg_.timers.interval / 10) SendAlive(now, out);
      return;
    case State::kVoting:
      if (!SelfStronger(m.priority, m.sender)) {
        Follow(now, m, out);
      } else if (now > claim_sent_ + cfg_.timers.vote_min / 2) {
        vote_contested_ = true;  // a weaker leader did not hear our claim
        concede_to_ = m.sender;
        leader_prio_ = m.priority;
      }
      return;
    case State::kKnown:
      if (m.sender == leader_ || m.epoch > leader_epoch_ ||
          (m.epoch == leader_epoch_ && Stronger(m.priority, m.sender, leader_prio_, leader_))) {
        Follow(now, m, out);
      }
      return;
    case State::kUnknown:
    case State::kConceding:
      Follow(now, m, out);
      return;
  }
}

void Election::OnClaim(Micros now, const Message& m, proto::Effects* out) {
  const bool stronger = !SelfStronger(m.priority, m.sender);
  switch (state_) {
    case State::kLeader:
      // A stronger claim takes over, unless it only suspects this leader dead
      // and pre-emption is off: then the answer below tells it otherwise.
      if (stronger && cfg_.static_leader != cfg_.id && m.preempt && m.leader == cfg_.id && now >= no_handover_until_) {
        // A stronger node pre-empts us: hand over without a gap. Keep the
        // leadership, silent (a heartbeat would contest its claim), until
        // its first Leader Alive (OnAlive steps down then); resume if none
        // comes within its window and a dead interval.
        if (handover_to_ != m.sender) out->events.push_back("handing over to " + std::to_string(m.sender));
        handover_to_ = m.sender;
        handover_until_ = now + cfg_.timers.vote_max + cfg_.timers.interval + cfg_.timers.DeadInterval();
        next_alive_ = handover_until_;
      } else if (stronger && cfg_.static_leader != cfg_.id && (cfg_.preempt || m.preempt || m.leader != cfg_.id)) {
        StepDown(now, out);
        Concede(now, m.sender, m.priority, out);
      } else if (handover_to_ != 0 && !stronger) {
        // Someone takes our silence for death: lead on, audibly.
        out->events.push_back("handover to " + std::to_string(handover_to_) + " abandoned: claim by " +
                              std::to_string(m.sender));
        handover_to_ = 0;
        no_handover_until_ = now + 10 * cfg_.timers.DeadInterval();
        SendAlive(now, out);
      } else if (handover_to_ == 0 && now - last_alive_sent_ >= AnswerSpacing()) {
        // We are alive and out-rank the claimant: answer each copy of its
        // claim (they are spread over its voting window), so under loss one
        // answer most likely gets through.
        SendAlive(now, out);
      }
      return;
    case State::kVoting:
      if (stronger) {
        Concede(now, m.sender, m.priority, out);
      } else if (now - last_claim_answer_ >= AnswerSpacing()) {
        // Answer each copy of a weaker claim (apart from our own repeats):
        // it concedes if any answer gets through.
        last_claim_answer_ = now;
        Send(ClaimMsg(), out);
      }
      return;
    case State::kKnown:
      // A suspicion of our leader, and we heard a newer heartbeat of it:
      // vouch that it lives.
      if (!m.preempt && m.leader != 0 && m.leader == leader_) {
        if (beat_leader_ == leader_ && beat_epoch_ == leader_epoch_ && last_beat_ > m.beat &&
            now - heard_at_ < GroupDead(leader_interval_)) {
          SendVouch(now, m, out);
          return;
        }
        // A peer vouched for a newer one already (a copy of an answered claim).
        if (m.beat < evidence_beat_) return;
      }
      // The leader looks alive (to us, or to the group: our own timer has not
      // run out): it answers the claim itself.
      if (now - last_alive_ < (group_evidence() ? GroupDead(leader_interval_) : cfg_.timers.interval * 3 / 2)) return;
      // We suspect it too: not shown until it resolves, as our own suspicion.
      hidden_suspicion_ = group_evidence();
      [[fallthrough]];
    case State::kUnknown:
      // A weaker claim means nobody leads: a stronger candidate answers with
      // its own claim even while it still listens after a start (otherwise
      // whoever started first would win over stronger nodes started later).
      if (stronger || !candidate_ || stopped_) {
        Concede(now, m.sender, m.priority, out);
      } else {
        Claim(now, out);
      }
      return;
    case State::kConceding:
      if (Stronger(m.priority, m.sender, concede_prio_, concede_to_)) {
        concede_to_ = m.sender;
        concede_prio_ = m.priority;
      }
      return;
  }
}

void Election::OnResign(Micros now, const Message& m, proto::Effects* out) {
  if (state_ != State::kKnown || m.sender != leader_) return;
  SetState(now, State::kUnknown, out);
  suspect_.id = 0;  // it left: nothing to vouch for
  leader_ = 0;
  dead_at_ = kNever;
  claim_at_ = CanClaim(now) ? now + Skew(now) : listen_until_;
}

void Election::OnRegister(Micros now, const Message& m, proto::Effects* out) {
  if (state_ == State::kKnown) {
    // A peer registering with our leader: the next Register's digest says so.
    if (m.leader == leader_ && std::binary_search(heard_list_.begin(), heard_list_.end(), m.sender))
      heard_regs_.insert(m.sender);
    return;
  }
  if (state_ != State::kLeader) return;
  if (m.leader != cfg_.id) {
    if (m.leader == contest_by_ && now >= contest_since_) contest_evidence_ = true;
    return;
  }
  auto [it, fresh] = table_.try_emplace(m.sender);
  Member& mem = it->second;
  if (m.reg_count > 0) {
    if (mem.reg_count > 0 && m.reg_count > mem.reg_count) {
      // Registrations lost on the way (an outage counts at most 16).
      const uint64_t missed = std::min<uint64_t>(m.reg_count - mem.reg_count - 1, 16);
      auto observe = [&](double lost) {
        ++mem.regs_seen;
        ++regs_seen_;
        const double w = std::max(cfg_.timers.loss_weight, 1.0 / double(mem.regs_seen));
        mem.loss += w * (lost - mem.loss);
        reg_loss_ += std::max(GroupLossWeight(), 1.0 / double(regs_seen_)) * (lost - reg_loss_);
      };
      for (uint64_t i = 0; i < missed; ++i) observe(1);
      observe(0);
    }
    mem.reg_count = m.reg_count;  // also a restarted member's new count
  }
  mem.id = m.sender;
  mem.addr = m.addr;
  mem.last_heard = now;
  const bool facts_changed = mem.facts.name != m.name;
  mem.facts.name = m.name;
  mem.facts.free_disk_mb = m.free_disk_mb;
  mem.facts.cpu_permille = m.cpu_permille;
  ReadDigest(now, m, &mem);
  if (fresh) {
    out->events.push_back("member-join " + std::to_string(m.sender));
    MembershipChanged(now, out);
  } else if (facts_changed) {
    MembershipChanged(now, out);
  }
}

void Election::ReadDigest(Micros now, const Message& m, Member* reporter) {
  // The members this one heard register since its previous Register: each
  // is alive as of now on the group's evidence (heard at most one refresh
  // ago). Read against the list it names; an unknown list is skipped.
  if (m.list_hash == 0) return;
  auto list = std::find_if(sent_lists_.rbegin(), sent_lists_.rend(), [&](const auto& l) { return l.first == m.list_hash; });
  if (list == sent_lists_.rend() || list->second.size() != m.heard.size()) return;
  reporter->digest_at = now;
  for (size_t i = 0; i < m.heard.size(); ++i) {
    if (!m.heard[i]) continue;
    const uint64_t id = list->second[i];
    if (id == m.sender || id == cfg_.id) continue;
    auto it = table_.find(id);
    if (it != table_.end()) it->second.peer_heard = std::max(it->second.peer_heard, now);
  }
}

void Election::CountReporters(Micros now) {
  reporters_ = 0;
  for (const auto& [id, mem] : table_)
    if (id != cfg_.id && mem.digest_at >= now - cfg_.timers.member_expiry) ++reporters_;
}

void Election::SendMembers(proto::Effects* out) {
  Message m = Base(MsgType::kMembers);
  for (const auto& [id, mem] : table_) m.members.push_back(id);
  const uint64_t h = ListHash(m.members);
  if (sent_lists_.empty() || sent_lists_.back().first != h) {
    if (sent_lists_.size() >= kListsKept) sent_lists_.erase(sent_lists_.begin());
    sent_lists_.emplace_back(h, m.members);
  }
  Send(m, out);
  out->events.push_back("members " + std::to_string(m.members.size()));
}

void Election::OnMembers(Micros now, const Message& m, proto::Effects* out) {
  (void)out;
  if (state_ != State::kKnown || m.sender != leader_) return;
  heard_list_ = m.members;
  const bool listed = std::binary_search(heard_list_.begin(), heard_list_.end(), cfg_.id);
  registered_ = listed;
  if (!listed && register_at_ == kNever)
    register_at_ = now + std::uniform_int_distribution<Micros>(0, cfg_.timers.register_backoff)(rng_);
}

void Election::Claim(Micros now, proto::Effects* out, bool preempt) {
  // Peers vouch only for the leader they follow: for a suspicion of the
  // leader this node followed until now. A claim after conceding or
  // without a leader (one may lead that this node has not heard yet) is
  // answered by that leader alone: it needs copies enough on its own.
  const bool vouched = (state_ == State::kKnown || suspicion_) && !preempt;
  suspicion_ = false;
  SetState(now, State::kVoting, out);
  claim_preempt_ = preempt;
  claim_at_ = kNever;
  preempt_at_ = kNever;
  claim_sent_ = last_claim_sent_ = now;
  claims_sent_ = 1;
  const Micros window = VoteWindow();
  vote_end_ = now + window;
  claim_spread_ = window * 3 / 4;
  vote_deferred_ = false;
  // Under loss a live leader's answers (and its vouchers') may all be lost:
  // send as many copies as it takes; if no number will do, wait for the
  // leader's next heartbeat too.
  claim_copies_ = ClaimCopies(vouched);
  if (claim_copies_ == 0) {
    claim_copies_ = std::max(cfg_.timers.claim_sends, cfg_.timers.claim_sends_max);
    vote_end_ += cfg_.timers.interval;
  }
  vote_contested_ = false;
  Send(ClaimMsg(), out);
}

void Election::SendVouch(Micros now, const Message& claim, proto::Effects* out) {
  // In a large group only about `vouchers` peers answer one claim: those
  // the hash of (peer, claimant, beat) picks.
  const int peers = Peers();
  if (peers > cfg_.timers.vouchers) {
    uint64_t h = cfg_.id * 0x9e3779b97f4a7c15ull ^ (claim.sender + claim.beat * 0xbf58476d1ce4e5b9ull);
    h ^= h >> 31;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 29;
    if (h % static_cast<uint64_t>(peers) >= static_cast<uint64_t>(cfg_.timers.vouchers)) return;
  }
  if (now - last_vouch_sent_ < AnswerSpacing()) return;
  last_vouch_sent_ = now;
  Message v = Base(MsgType::kVouch);
  v.epoch = leader_epoch_;
  v.leader = leader_;
  v.beat = last_beat_;
  v.age_us = static_cast<uint64_t>(now - heard_at_);
  Send(v, out);
}

void Election::OnVouch(Micros now, const Message& m, proto::Effects* out) {
  const Micros age = static_cast<Micros>(std::min<uint64_t>(m.age_us, uint64_t{1} << 40));
  const Micros heard_at = now - age;
  switch (state_) {
    case State::kKnown:
      // Someone else's claim was answered: the evidence keeps us waiting too.
      if (m.leader == leader_ && m.epoch == leader_epoch_ && m.beat > evidence_beat_) {
        evidence_beat_ = m.beat;
        last_alive_ = std::max(last_alive_, heard_at);
        dead_at_ = std::max(dead_at_, DeadAfter(heard_at));
      }
      return;
    case State::kUnknown:
    case State::kVoting:
    case State::kConceding: {
      if (m.leader == 0 || m.leader != suspect_.id || m.epoch != suspect_.epoch || m.beat <= suspect_beat_) return;
      if (state_ == State::kVoting && claim_preempt_) return;
      // A stronger candidate that pre-empts anyway lets its claim run.
      if (cfg_.preempt && CanClaim(now) && SelfStronger(suspect_.prio, suspect_.id)) return;
      if (DeadAfter(heard_at) <= now) return;  // heard, but too long ago
      Restore(now, heard_at, m.beat, out);
      return;
    }
    case State::kLeader:
      return;
  }
}

void Election::Restore(Micros now, Micros heard_at, uint64_t beat, proto::Effects* out) {
  out->events.push_back("vouched " + std::to_string(suspect_.id) + " beat=" + std::to_string(beat));
  const LeaderRef was = suspect_;
  SetState(now, State::kKnown, out);
  leader_ = was.id;
  leader_epoch_ = was.epoch;
  leader_prio_ = was.prio;
  leader_addr_ = was.addr;
  last_alive_ = heard_at;
  evidence_beat_ = beat;
  dead_at_ = DeadAfter(heard_at);
  dead_deferred_ = suspicion_ = false;
  claim_at_ = vote_end_ = concede_until_ = kNever;
}

void Election::Concede(Micros now, uint64_t to, uint32_t prio, proto::Effects* out) {
  SetState(now, State::kConceding, out);
  suspicion_ = false;
  concede_to_ = to;
  concede_prio_ = prio;
  concede_until_ = now + cfg_.timers.DeadInterval();
  claim_at_ = vote_end_ = preempt_at_ = kNever;
}

void Election::BecomeLeader(Micros now, proto::Effects* out) {
  SetState(now, State::kLeader, out);
  epoch_ = max_epoch_ = std::max(max_epoch_, epoch_) + 1;
  claim_at_ = vote_end_ = concede_until_ = preempt_at_ = dead_at_ = register_at_ = kNever;
  preempt_backoff_ = 0;
  leader_ = suspect_.id = 0;
  contest_by_ = 0;
  handover_to_ = 0;
  table_.clear();
  sent_lists_.clear();
  reporters_ = 0;
  reg_loss_ = 0;
  regs_seen_ = 0;
  Member self;
  self.id = cfg_.id;
  self.addr = cfg_.self;
  self.facts = facts_;
  self.last_heard = now;
  table_[cfg_.id] = self;
  heard_list_.clear();
  out->events.push_back("elected epoch=" + std::to_string(epoch_));
  if (sequencer_) sequencer_->OnLeadership(true, epoch_);
  SendAlive(now, out);
  MembershipChanged(now, out);
}

void Election::StepDown(Micros now, proto::Effects* out) {
  deposed_until_ = now + 10 * cfg_.timers.DeadInterval();
  SetState(now, State::kUnknown, out);
}

void Election::SendAlive(Micros now, proto::Effects* out) {
  Message m = Base(MsgType::kAlive);
  m.interval_us = static_cast<uint32_t>(cfg_.timers.interval);
  m.dead_intervals = static_cast<uint8_t>(cfg_.timers.dead_intervals);
  m.member_count = static_cast<uint32_t>(table_.size());
  m.sequence = sequencer_ ? sequencer_->HighestSequence() : 0;
  m.beat = ++beat_;
  Send(m, out);
  if (move_repeats_ > 0) {
    --move_repeats_;
    Message mv = Base(MsgType::kMove);
    mv.channel = move_to_;
    Send(mv, out);
    if (move_repeats_ == 0) {
      control_ = move_to_;
      out->groups.push_back({proto::GroupChange::Kind::kJoin, control_});
      out->events.push_back("channel " + control_.ToString());
    }
  }
  last_alive_sent_ = now;
  next_alive_ = now + cfg_.timers.interval;
}

void Election::MembershipChanged(Micros now, proto::Effects* out) {
  (void)out;
  list_at_ = now + cfg_.timers.list_quiet;
  if (cfg_.ccm) report_at_ = std::min(report_at_, now + cfg_.timers.interval / 10);
}

void Election::Resign(Micros now, proto::Effects* out) {
  now_ = now;
  if (state_ == State::kLeader) {
    Send(Base(MsgType::kResign), out);
    SetState(now, State::kUnknown, out);
  }
  stopped_ = true;
  out->wake_at = kNever;
}

void Election::MoveChannel(Micros now, proto::Address channel, proto::Effects* out) {
  (void)now;
  if (state_ != State::kLeader || !channel.IsMulticast()) return;
  move_to_ = channel;
  move_repeats_ = 3;  // announced with the next three heartbeats, then moved
  Schedule(out);
}

void Election::OnTimer(Micros now, proto::Effects* out) {
  if (stopped_) return;
  now_ = now;
  Tick(now, out);
}

void Election::Tick(Micros now, proto::Effects* out) {
  const Timers& t = cfg_.timers;
  switch (state_) {
    case State::kKnown:
      if (now >= dead_at_ && Defer(now, &dead_at_, &dead_deferred_)) break;
      if (now >= dead_at_) {
        dead_deferred_ = false;
        suspicion_ = true;
        hidden_suspicion_ = group_evidence();
        out->events.push_back("leader-dead " + std::to_string(leader_));
        SetState(now, State::kUnknown, out);
        leader_ = 0;
        dead_at_ = kNever;
        claim_at_ = CanClaim(now) ? now : listen_until_;
      } else if (now >= preempt_at_) {
        if (CanClaim(now)) {
          preempt_backoff_ = std::min(std::max(preempt_backoff_ * 2, t.DeadInterval()), 4 * t.DeadInterval());
          Claim(now, out, /*preempt=*/true);
          // The incumbent must fall silent for a whole heartbeat interval:
          // a leader that cannot hear our claim keeps heartbeating.
          vote_end_ += t.interval;
        } else {
          preempt_at_ = kNever;
        }
      }
      break;
    case State::kUnknown:
      if (now >= claim_at_) {
        claim_at_ = kNever;
        if (CanClaim(now)) Claim(now, out);
      }
      break;
    case State::kVoting:
      if (now < vote_end_ && now >= NextClaimRepeat()) {
        ++claims_sent_;
        last_claim_sent_ = now;
        Send(ClaimMsg(), out);
      }
      if (now >= vote_end_ && Defer(now, &vote_end_, &vote_deferred_)) break;
      if (now >= vote_end_) {
        vote_end_ = kNever;
        if (vote_contested_) {
          // A leader kept heartbeating through our claim: it cannot hear us.
          // Follow it and pre-empt again after a back-off.
          SetState(now, State::kKnown, out);
          leader_ = concede_to_;
          last_alive_ = now;
          dead_at_ = now + t.DeadInterval();
          preempt_at_ = now + preempt_backoff_;
        } else {
          BecomeLeader(now, out);
        }
      }
      break;
    case State::kConceding:
      if (now >= concede_until_) {
        concede_until_ = kNever;
        hidden_suspicion_ = false;  // no leader for a whole conceding period: show it
        SetState(now, State::kUnknown, out);
        claim_at_ = CanClaim(now) ? now : listen_until_;
        if (CanClaim(now)) Claim(now, out);
      }
      break;
    case State::kLeader:
      if (contest_by_ && now - contest_last_ > t.DeadInterval()) contest_by_ = 0;
      if (handover_to_ && now >= handover_until_) {
        out->events.push_back("handover to " + std::to_string(handover_to_) + " did not happen: leading on");
        handover_to_ = 0;
        // A pre-emption that cannot complete: the next ones take over at once, as without handover.
        no_handover_until_ = now + 10 * t.DeadInterval();
      }
      CountReporters(now);
      for (auto it = table_.begin(); it != table_.end();) {
        if (it->first != cfg_.id && now - LastEvidence(it->second) > ExpiryOf(it->second)) {
          out->events.push_back("member-leave " + std::to_string(it->first));
          it = table_.erase(it);
          MembershipChanged(now, out);
        } else {
          ++it;
        }
      }
      if (now >= next_alive_) SendAlive(now, out);
      if (now >= list_at_) {
        SendMembers(out);
        list_at_ = now + t.list_period;
      }
      if (now >= report_at_) {
        report_at_ = kNever;
        // The report JSON alone: the edge (lib/leaderrun) POSTs it to the
        // CCM with a CM-Auth stamp made from the group key.
        out->sends.push_back({*cfg_.ccm, ReportJson(), proto::Transport::kReport});
      }
      break;
  }
  // Member side of registration (refresh doubles as liveness).
  if (state_ == State::kKnown && now >= register_at_) {
    Message m = Base(MsgType::kRegister);
    m.leader = leader_;
    m.name = facts_.name;
    m.free_disk_mb = facts_.free_disk_mb;
    m.cpu_permille = facts_.cpu_permille;
    m.beat = evidence_beat_;
    m.reg_count = ++reg_sent_;
    // The digest: which members of the leader's last list this node heard
    // register since its previous Register (the leader's evidence that they
    // live, besides its own).
    if (!heard_list_.empty()) {
      m.list_hash = ListHash(heard_list_);
      m.heard.resize(std::min(heard_list_.size(), kMaxMembersOnWire));
      for (size_t i = 0; i < m.heard.size(); ++i) m.heard[i] = heard_regs_.count(heard_list_[i]) != 0;
    }
    heard_regs_.clear();
    Send(m, out);
    register_at_ = now + t.member_refresh;
  }
  Schedule(out);
}

void Election::Schedule(proto::Effects* out) const {
  if (stopped_) {
    out->wake_at = kNever;
    return;
  }
  Micros w = kNever;
  switch (state_) {
    case State::kKnown: w = std::min(dead_at_, preempt_at_); break;
    case State::kUnknown: w = claim_at_; break;
    case State::kVoting: w = std::min(vote_end_, NextClaimRepeat()); break;
    case State::kConceding: w = concede_until_; break;
    case State::kLeader: {
      w = std::min({next_alive_, list_at_, report_at_});
      for (const auto& [id, mem] : table_)
        if (id != cfg_.id) w = std::min(w, LastEvidence(mem) + ExpiryOf(mem) + 1);
      break;
    }
  }
  if (state_ == State::kKnown) w = std::min(w, register_at_);
  out->wake_at = w;
}

std::string Election::ReportJson() const {
  JsonArray members;
  for (const auto& [id, m] : table_) {
    members.Raw(JsonObject()
                    .Uint("id", id)
                    .Str("address", m.addr.ToString())
                    .Str("name", m.facts.name)
                    .Uint("free_disk_mb", m.facts.free_disk_mb)
                    .Uint("cpu_permille", m.facts.cpu_permille)
                    .Build());
  }
  return JsonObject()
      .Str("type", "segment-report")
      .Str("segment", cfg_.segment)
      .Uint("leader", cfg_.id)
      .Str("leader_address", cfg_.self.ToString())
      .Uint("epoch", epoch_)
      .Str("location", facts_.location)
      .Uint("free_disk_mb", facts_.free_disk_mb)
      .Uint("cpu_permille", facts_.cpu_permille)
      .Uint("priority", priority_)
      .Raw("members", members.Build())
      .Build();
}

}  // namespace cm::leader
