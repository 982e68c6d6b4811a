#include "push/job_node.h"

#include <algorithm>
#include <set>

namespace cm::push {
namespace {
constexpr double kRateSmoothing = 0.5;  // weight of a new per-child rate sample
}  // namespace

JobNodeCore::JobNodeCore(std::vector<FanPeer> peers, NodeRef self, double up_bps, JobNodeOptions opts) :
    peers_(std::move(peers)), self_(self), up_bps_(up_bps), opts_(opts) {
  if (Root()) {
    in_job_ = true;
    for (PeerIndex i = 0; i < peers_.size(); ++i) kept_.push_back(i);
  }
}

std::string JobNodeCore::Site() const {
  return self_ >= 0 && static_cast<size_t>(self_) < peers_.size() ? peers_[self_].site : std::string();
}

bool JobNodeCore::SameSite(PeerIndex p) const {
  std::string site = Site();
  return !site.empty() && p < peers_.size() && peers_[p].site == site;
}

size_t JobNodeCore::ActiveWan() const {
  size_t n = 0;
  for (const auto& [p, c] : children_) n += !c.lan && !c.done;
  return n;
}

size_t JobNodeCore::ActiveLan() const {
  size_t n = 0;
  for (const auto& [p, c] : children_) n += c.lan && !c.done;
  return n;
}

double JobNodeCore::TxWan() const {
  double sum = 0;
  for (const auto& [p, c] : children_) {
    if (!c.lan && c.active && !c.done) sum += c.rate;
  }
  return sum;
}

double JobNodeCore::OfferRate(bool lan) const {
  if (lan) return opts_.lan_bps;
  if (up_bps_ <= 0) return 0;
  // The uplink shared with one more child, or what is left of it if more.
  double share = up_bps_ / static_cast<double>(ActiveWan() + 1);
  return std::max(share, up_bps_ - TxWan());
}

void JobNodeCore::MergeShare(const std::vector<PeerIndex>& share) {
  std::set<PeerIndex> have(kept_.begin(), kept_.end());
  for (PeerIndex p : share) {
    if (p >= peers_.size() || static_cast<NodeRef>(p) == self_ || children_.count(p)) continue;
    if (have.insert(p).second) kept_.push_back(p);
  }
}

uint64_t JobNodeCore::NewCall(JobCall call, JobNodeActions* out) {
  call.id = next_call_++;
  pending_[call.id] = Pending{call.kind, call.to};
  out->calls.push_back(std::move(call));
  return next_call_ - 1;
}

void JobNodeCore::StartFetch(Micros now, NodeRef source, JobNodeActions* out) {
  source_ = source;
  fetching_ = true;
  source_lost_ = false;
  ask_source_at_ = proto::kNever;
  samples_.clear();
  samples_.emplace_back(now, pos_);
  rx_bps_ = 0;
  out->fetch = JobFetch{source, pos_};
  out->stop_fetch = false;
}

void JobNodeCore::Restore(uint64_t pos, bool complete) {
  pos_ = std::max(pos_, pos);
  complete_ = complete_ || complete;
}

void JobNodeCore::OnLocalAppend(Micros now, uint64_t pos, bool complete, JobNodeActions* out) {
  out->Clear();
  pos_ = std::max(pos_, pos);
  complete_ = complete_ || complete;
  Settle(now, out);
}

OfferAnswer JobNodeCore::OnOffer(Micros now, const JobOfferMsg& offer, JobNodeActions* out) {
  out->Clear();
  OfferAnswer answer = OfferAnswer::kDeclined;
  if (Root()) return answer;
  MergeShare(offer.share);
  if (!in_job_) {
    in_job_ = true;
    StartFetch(now, offer.from, out);
    answer = OfferAnswer::kAccepted;
  } else if (complete_) {
    answer = OfferAnswer::kDeclined;
  } else if (offer.from == source_ && fetching_) {
    answer = OfferAnswer::kAccepted;  // a repeat
  } else if (offer.from >= 0 && children_.count(static_cast<PeerIndex>(offer.from))) {
    answer = OfferAnswer::kDeclined;  // our own child: a cycle
  } else if (!fetching_) {
    StartFetch(now, offer.from, out);  // lost our source: anyone will do
    answer = OfferAnswer::kAccepted;
  } else {
    bool ahead = offer.from_complete || offer.from_pos > pos_ + opts_.ahead_margin;
    // Only against a rate measured on the current source (over half a
    // window at least): a fresh fetch's rate is not known yet.
    bool measured = samples_.size() >= 2 && samples_.back().first - samples_.front().first >= opts_.rate_window / 2;
    bool settled = (switches_ == 0 || now - switched_at_ >= opts_.switch_hold) && (measured || offer.relieve);
    bool faster = offer.relieve ? offer.rate_bps >= 0.9 * rx_bps_ : offer.rate_bps > opts_.switch_gain * rx_bps_;
    if (ahead && settled && faster) {
      StartFetch(now, offer.from, out);
      ++switches_;
      switched_at_ = now;
      answer = OfferAnswer::kSwitched;
    }
  }
  Settle(now, out);
  return answer;
}

void JobNodeCore::OnFetchProgress(Micros now, uint64_t pos, bool complete, bool ended, JobNodeActions* out) {
  out->Clear();
  pos_ = std::max(pos_, pos);
  samples_.emplace_back(now, pos_);
  while (samples_.size() > 2 && samples_[1].first <= now - opts_.rate_window) samples_.erase(samples_.begin());
  if (samples_.size() >= 2 && samples_.back().first - samples_.front().first >= opts_.rate_window / 2) {
    double dt = static_cast<double>(samples_.back().first - samples_.front().first) / proto::kSeconds;
    rx_bps_ = static_cast<double>(samples_.back().second - samples_.front().second) / dt;
  }
  if (complete) {
    complete_ = true;
    fetching_ = false;
  } else if (ended && fetching_) {
    fetching_ = false;
    source_lost_ = true;
    JobCall c;
    c.kind = JobCall::Kind::kSourceFailed;
    c.source_failed = JobSourceFailedMsg{static_cast<PeerIndex>(self_), source_, pos_};
    NewCall(std::move(c), out);
  }
  Settle(now, out);
}

void JobNodeCore::OnChildProgress(Micros now, PeerIndex child, uint64_t pos, bool complete, bool gone,
                                  JobNodeActions* out) {
  out->Clear();
  if (child < peers_.size()) {
    auto it = children_.find(child);
    if (it == children_.end() && !gone) {
      // Someone the base sent to us (a repair) or a target whose answer is
      // still on its way.
      Child c;
      c.lan = SameSite(child);
      c.offering = false;
      it = children_.emplace(child, std::move(c)).first;
    }
    if (it != children_.end()) {
      Child& c = it->second;
      if (c.seen_at >= 0 && now > c.seen_at && pos >= c.pos) {
        double dt = static_cast<double>(now - c.seen_at) / proto::kSeconds;
        double sample = static_cast<double>(pos - c.pos) / dt;
        c.rate = c.rate <= 0 ? sample : (1 - kRateSmoothing) * c.rate + kRateSmoothing * sample;
      }
      c.seen_at = now;
      c.pos = std::max(c.pos, pos);
      c.active = !gone;
      if (complete) c.done = true;
      if (gone && !c.done && !c.offering) children_.erase(it);  // it left us (switched) or failed
    }
    double tx = TxWan();
    if (tx > up_bps_) up_bps_ = tx;  // measured: we did feed that much
  }
  Settle(now, out);
}

void JobNodeCore::OnCallDone(Micros now, const JobCallResult& r, JobNodeActions* out) {
  out->Clear();
  auto pit = pending_.find(r.id);
  if (pit == pending_.end()) {
    Settle(now, out);
    return;
  }
  Pending p = pit->second;
  pending_.erase(pit);
  switch (p.kind) {
    case JobCall::Kind::kOffer: {
      auto it = p.target >= 0 ? children_.find(static_cast<PeerIndex>(p.target)) : children_.end();
      if (it == children_.end()) break;
      Child& c = it->second;
      c.offering = false;
      if (!r.ok) {
        // Unreachable: its share comes back to us; the base repairs it later.
        std::vector<PeerIndex> back = std::move(c.share);
        children_.erase(it);
        MergeShare(back);
        JobCall u;
        u.kind = JobCall::Kind::kUnreachable;
        u.unreachable = JobUnreachableMsg{self_, static_cast<PeerIndex>(p.target)};
        NewCall(std::move(u), out);
      } else if (r.offer == OfferAnswer::kDeclined) {
        if (!c.active) children_.erase(it);  // it has a source (it took the share)
      } else if (!c.done) {
        c.active = true;
      }
      break;
    }
    case JobCall::Kind::kHelp:
      help_pending_ = false;
      if (r.ok && r.finished && !Root()) help_done_ = true;  // the base keeps repairing
      if (r.ok && r.target >= 0 && static_cast<size_t>(r.target) < peers_.size() && r.target != self_ &&
          !(children_.count(static_cast<PeerIndex>(r.target)) && children_[r.target].offering)) {
        // A child we still list is offered again: the base knows it is not
        // fetching from us (it restarted, or its connection died unseen).
        PeerIndex t = static_cast<PeerIndex>(r.target);
        Child c;
        c.lan = SameSite(t);
        children_[t] = c;
        JobCall o;
        o.kind = JobCall::Kind::kOffer;
        o.to = t;
        o.offer = JobOfferMsg{self_, {}, std::max(OfferRate(c.lan), r.rate_bps), pos_, complete_, r.relieve};
        NewCall(std::move(o), out);
      } else {
        next_help_ = now + opts_.help_interval;
      }
      break;
    case JobCall::Kind::kSourceFailed:
      if (!source_lost_ || complete_) break;
      if (r.ok && r.source != kNoNode && r.source != self_) {
        StartFetch(now, r.source, out);
      } else {
        ask_source_at_ = now + opts_.help_interval;
      }
      break;
    case JobCall::Kind::kProgress:
    case JobCall::Kind::kUnreachable:
      break;
  }
  Settle(now, out);
}

void JobNodeCore::OnTimer(Micros now, JobNodeActions* out) {
  out->Clear();
  if (source_lost_ && !complete_ && now >= ask_source_at_) {
    ask_source_at_ = proto::kNever;
    JobCall c;
    c.kind = JobCall::Kind::kSourceFailed;
    c.source_failed = JobSourceFailedMsg{static_cast<PeerIndex>(self_), source_, pos_};
    NewCall(std::move(c), out);
  }
  Settle(now, out);
}

void JobNodeCore::Approach(Micros now, JobNodeActions* out) {
  (void)now;
  if (!in_job_ || kept_.empty() || (pos_ == 0 && !complete_)) return;
  size_t lan_slots = opts_.lan_fanout > ActiveLan() ? opts_.lan_fanout - ActiveLan() : 0;
  double need = opts_.need_bps;
  if (need <= 0) {
    for (PeerIndex p : kept_) {
      if (!SameSite(p)) need = std::max(need, peers_[p].up_bps);
    }
  }
  size_t k = WanFanout(up_bps_, need, opts_.max_wan_fanout, OtherSites(peers_, Site(), kept_), opts_.deep_sites);
  size_t wan_slots = k > ActiveWan() ? k - ActiveWan() : 0;
  if (lan_slots == 0 && wan_slots == 0) return;
  FanSplit split = SplitShare(peers_, Site(), kept_, lan_slots, wan_slots);
  kept_ = std::move(split.kept);
  for (FanApproach& a : split.approaches) {
    Child c;
    c.lan = a.lan;
    c.share = a.share;
    children_[a.target] = c;
    JobCall o;
    o.kind = JobCall::Kind::kOffer;
    o.to = a.target;
    o.offer = JobOfferMsg{self_, std::move(a.share), OfferRate(a.lan), pos_, complete_};
    NewCall(std::move(o), out);
  }
}

void JobNodeCore::MaybeHelp(Micros now, JobNodeActions* out) {
  if ((!opts_.help && !Root()) || !in_job_ || help_pending_ || help_done_ || now < next_help_ || (pos_ == 0 && !complete_)) return;
  if (OtherSites(peers_, Site(), kept_) > 0) return;  // our own share comes first
  // Spare upload: what is left of a measured uplink, or (not measured) only
  // while feeding no other site; the base estimates the rate then.
  double rate = 0;
  if (up_bps_ > 0) {
    rate = up_bps_ - TxWan();
    if (rate < 0.2 * up_bps_ && !Root()) return;  // the base asks anyway: repairs
  } else if (ActiveWan() > 0 && !Root()) {
    return;
  }
  help_pending_ = true;
  next_help_ = now + opts_.help_interval;
  JobCall h;
  h.kind = JobCall::Kind::kHelp;
  h.help = JobHelpAsk{Root() ? 0 : static_cast<PeerIndex>(self_), pos_, complete_, rate, !opts_.help};
  NewCall(std::move(h), out);
}

void JobNodeCore::Report(Micros now, JobNodeActions* out) {
  if (Root() || !in_job_) return;
  bool due = now >= next_report_ || (complete_ && !reported_complete_);
  if (!due) return;
  next_report_ = now + opts_.report_interval;
  reported_complete_ = complete_;
  JobCall c;
  c.kind = JobCall::Kind::kProgress;
  c.progress.node = static_cast<PeerIndex>(self_);
  c.progress.pos = pos_;
  c.progress.complete = complete_;
  c.progress.source = fetching_ || complete_ ? source_ : kNoNode;
  c.progress.rx_bps = rx_bps_;
  c.progress.tx_bps = TxWan();
  for (const auto& [p, ch] : children_) {
    if (ch.active && !ch.done) c.progress.children.push_back(p);
  }
  c.progress.kept = kept_.size();
  NewCall(std::move(c), out);
}

void JobNodeCore::Settle(Micros now, JobNodeActions* out) {
  Approach(now, out);
  MaybeHelp(now, out);
  Report(now, out);
  Micros wake = proto::kNever;
  if (in_job_ && !Root()) wake = std::min(wake, next_report_);
  if ((opts_.help || Root()) && in_job_ && !help_pending_ && !help_done_ && (pos_ > 0 || complete_)) wake = std::min(wake, std::max(next_help_, now + 1));
  if (source_lost_) wake = std::min(wake, ask_source_at_);
  out->wake_at = wake;
}

JobNodeView JobNodeCore::View() const {
  JobNodeView v;
  v.pos = pos_;
  v.complete = complete_;
  v.source = source_;
  v.rx_bps = rx_bps_;
  for (const auto& [p, c] : children_) v.children += c.active && !c.done;
  v.kept = kept_.size();
  v.switches = switches_;
  v.in_job = in_job_;
  return v;
}

}  // namespace cm::push
