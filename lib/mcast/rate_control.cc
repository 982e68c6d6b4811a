#include "mcast/rate_control.h"

#include <algorithm>
#include <cmath>

namespace cm::mcast {

namespace {
constexpr double kStartupGain = 1.5;   // per epoch until the first congestion
constexpr double kIncrease = 0.03;     // per uncongested epoch after start-up
constexpr double kDrainGain = 0.9;     // after a cut on a known delivered rate: drain the queue at this
constexpr double kCruiseGain = 1.0;    // ... then send at this times the delivered rate
constexpr double kProbe = 0.01;        // first steps above it, per epoch
constexpr int kMaxDrain = 4;           // epochs the drain may last
constexpr double kCutMin = 0.8;        // a congested epoch cuts the rate to no less than this
constexpr double kCutMax = 0.9;        // ... and to no more than this
constexpr int kHoldEpochs = 2;         // after a cut: the queue drains, feedback catches up
constexpr int kSlowEpochs = 2;         // own congestion this long: a slow receiver
constexpr double kLossJump = 0.1;      // loss this far above the random loss counts as congestion
constexpr uint32_t kJumpFrames = 100;  // frames an epoch needs for that (and 4x as many learnt)
constexpr uint32_t kMinFrames = 32;    // frames an epoch's loss estimate needs
constexpr double kMaxRandomLoss = 0.5;  // more loss than this is congestion
}  // namespace

RateControl::RateControl(RateConfig cfg) : cfg_(cfg) {
  cfg_.cap_bps = std::max(cfg_.cap_bps, cfg_.floor_bps);
  rate_ = cfg_.start_bps == 0 ? cfg_.cap_bps : std::clamp(cfg_.start_bps, cfg_.floor_bps, cfg_.cap_bps);
  starting_ = rate_ < cfg_.cap_bps;
}

void RateControl::OnReport(Micros now, const std::string& id, uint32_t heard, uint32_t lost, Micros qdelay) {
  Peer& p = peers_[id];
  if (p.slow) return;
  // The first report's counts cover a time we did not see begin: they are
  // left out of the delivered rate, not of the loss.
  if (p.last_report >= 0) {
    p.span += now - p.last_report;
    p.span_heard += heard;
  }
  p.last_report = now;
  p.heard += heard;
  p.lost += lost;
  if (heard > 0) p.qdelay = p.qdelay < 0 ? qdelay : std::min(p.qdelay, qdelay);
}

void RateControl::Forget(const std::string& id) {
  auto it = peers_.find(id);
  if (it != peers_.end()) it->second.slow = true;  // kept so later reports are ignored
}

RateDecision RateControl::Tick(Micros now, uint64_t frame_bits, size_t group) {
  RateDecision d;
  if (now < next_tick_) return d;
  next_tick_ = now + cfg_.epoch;
  struct Seen {
    Peer* p;
    Micros qdelay;
    uint32_t heard, lost;
    bool congested;
    double loss;
    double delivered;  // bits/s corrected for random loss; < 0: unknown
  };
  std::vector<Seen> seen;
  for (auto& [id, p] : peers_) {
    if (p.slow || (p.heard == 0 && p.lost == 0)) continue;
    Seen s{&p, p.qdelay, p.heard, p.lost, false, -1, -1};
    uint32_t n = p.heard + p.lost;
    if (n >= kMinFrames) s.loss = double(p.lost) / double(n);
    // Delay over the target, or most frames lost (a bottleneck whose buffer
    // is too small to show delay, sent far more than it carries).
    if (p.qdelay > cfg_.target || s.loss > kMaxRandomLoss) s.congested = true;
    if (s.loss >= 0 && p.base_loss >= 0 && n >= kJumpFrames && p.base_frames >= 4 * kJumpFrames) {
      double sd = std::sqrt(std::max(p.base_loss * (1 - p.base_loss), 0.0) / double(n));
      if (s.loss > p.base_loss + std::max(kLossJump, 4 * sd)) s.congested = true;
    }
    if (p.span > 0) {
      // Corrected by the random loss once it is known from enough frames (as
      // for the loss jump): a loss learnt from an early epoch's few frames
      // can be several points high, and an estimate that high keeps the
      // rate above the link, its queue never draining.
      double bl = p.base_frames >= 4 * kJumpFrames ? std::clamp(p.base_loss, 0.0, 0.9) : 0.0;
      s.delivered = double(p.span_heard) * double(frame_bits) * 1e6 / double(p.span) / (1 - bl);
    }
    seen.push_back(s);
  }
  for (auto& [id, p] : peers_) {  // a new epoch
    p.heard = p.lost = p.span_heard = 0;
    p.qdelay = -1;
    p.span = 0;
  }
  if (seen.empty()) return d;
  // Out of the receivers heard lately, not only this epoch's: one receiver
  // alone in an epoch (the others' reports fell in the next) is no majority.
  size_t active = 0;
  for (auto& [id, p] : peers_)
    if (!p.slow && p.last_report >= 0 && now - p.last_report <= 3 * cfg_.epoch) ++active;
  active = std::max({active, seen.size(), group});
  size_t congested = static_cast<size_t>(std::count_if(seen.begin(), seen.end(), [](const Seen& s) { return s.congested; }));
  bool jam = congested > active / 2;
  size_t building = static_cast<size_t>(
      std::count_if(seen.begin(), seen.end(), [&](const Seen& s) { return s.congested || s.qdelay > cfg_.target / 2; }));
  // Learn each receiver's random loss while the path is clear; name the
  // receivers congested alone (their own link is slower than the group's).
  for (Seen& s : seen) {
    if (!jam && !s.congested && s.loss >= 0 && s.qdelay >= 0 && s.qdelay <= cfg_.target / 2) {
      // Every clear epoch's frames count alike (a mean, not a moving one:
      // random loss does not change with the rate).
      s.p->base_lost += s.lost;
      s.p->base_frames += s.heard + s.lost;
      s.p->base_loss = double(s.p->base_lost) / double(s.p->base_frames);
    }
    // Alone: congested while another receiver, heard in the same epoch, was not.
    // An epoch in which only congested receivers reported (the others'
    // reports fell in the next) neither counts nor resets the run.
    bool alone = !jam && s.congested && congested < seen.size();
    bool unknown = !jam && s.congested && congested == seen.size();
    if (!unknown) s.p->own_congestion = alone ? s.p->own_congestion + 1 : 0;
  }
  if (seen.size() >= 2 || peers_.size() >= 2) {
    for (auto& [id, p] : peers_) {
      if (!p.slow && p.own_congestion >= kSlowEpochs) {
        p.slow = true;
        d.slow.push_back(id);
      }
    }
  }
  uint64_t before = rate_;
  if (draining_) {
    // Sending under the delivered rate until every receiver heard lately
    // shows no queue (or the drain ran its course), then at it.
    bool drained = !jam && std::all_of(seen.begin(), seen.end(),
                                       [&](const Seen& s) { return s.qdelay >= 0 && s.qdelay <= cfg_.target / 2; });
    if (drained || ++drain_epochs_ >= drain_len_) {
      draining_ = false;
      cruising_ = true;
      rate_ = static_cast<uint64_t>(std::min(drain_est_ * kCruiseGain, double(cfg_.cap_bps)));
      clear_epochs_ = 0;
      hold_until_ = now + cfg_.epoch;
    }
  } else if (jam) {
    ++congested_epochs_;
    clear_epochs_ = 0;
    std::vector<double> del;
    for (const Seen& s : seen)
      if (s.delivered > 0) del.push_back(s.delivered);
    double est = 0;
    if (del.size() * 2 > active) {  // from most of them (not one slow one alone)
      // The upper median of what the receivers got: the shared bottleneck
      // delivers the same to all; one that gets less sits behind a narrower
      // link of its own, one that got more measured a burst (a short span).
      std::sort(del.begin(), del.end());
      est = del[del.size() / 2];
    }
    if (est > 0 && (starting_ || now >= hold_until_) && est * kDrainGain < double(rate_)) {
      // What the receivers got while the bottleneck queued is its rate: send
      // under it until the queue it holds has drained, then at it.
      // (At the first congestion the start-up overshot by up to a step per
      // epoch of feedback delay; the queue is at its fullest.)
      starting_ = false;
      draining_ = true;
      drain_epochs_ = 0;
      drain_est_ = est;
      // Long enough to drain the queue the receivers reported (their upper
      // median), plus what the rate above the estimate added since (about an
      // epoch of feedback delay): the reports that it drained lag by as much.
      std::vector<Micros> qs;
      for (const Seen& s : seen)
        if (s.qdelay >= 0) qs.push_back(s.qdelay);
      std::sort(qs.begin(), qs.end());
      double q = qs.empty() ? 0 : double(qs[qs.size() / 2]);
      q += std::max(0.0, double(rate_) / est - 1) * double(cfg_.epoch);
      double per_epoch = (1 - kDrainGain) * double(cfg_.epoch);
      drain_len_ = std::clamp(static_cast<int>(std::ceil(q / per_epoch)), 1, kMaxDrain);
      rate_ = static_cast<uint64_t>(est * kDrainGain);
    } else if (starting_) {
      starting_ = false;
      rate_ = static_cast<uint64_t>(double(rate_) * 0.5);
      hold_until_ = now + kHoldEpochs * cfg_.epoch;
    } else if (now >= hold_until_) {
      // Far above what arrives (the rate grew where nothing pushed back, or
      // the path changed): straight down to the delivered rate, at most
      // halving per cut.
      double lo = double(rate_) * (est > 0 && est < double(rate_) * kCutMin ? 0.5 : kCutMin), hi = double(rate_) * kCutMax;
      rate_ = static_cast<uint64_t>(est > 0 ? std::clamp(est * 0.95, lo, hi) : lo);
      hold_until_ = now + kHoldEpochs * cfg_.epoch;
    }
  } else if (starting_ && building > active / 2) {
    // Start-up steps only on a clear path: most receivers reporting a queue
    // over half the target (not yet congested) means the rate is near the
    // link, so it waits for the next epoch's reports instead of overshooting
    // by another step. (So the first epoch may step too: its reports, however
    // early, show the queue a start rate above the link builds. A receiver
    // behind its own slow link, queueing alone, does not stop the others'.)
  } else if (now >= hold_until_) {
    // Clear epochs in a row grow the step (from the 8th, up to 3x): a rate cut far below
    // the link by a noisy estimate climbs back in seconds, not tens.
    ++clear_epochs_;
    // Just under a measured delivered rate, probe above it gently: 1 % per
    // epoch for 8 epochs, then growing with the clear epochs in a row (up to
    // the 3-9 % below): a slow probe builds a small queue before it shows.
    double step = kIncrease * std::clamp(double(clear_epochs_) / 8, 1.0, 3.0);
    if (cruising_) step = std::min(step, kProbe * std::max(1.0, double(clear_epochs_) / 8));
    double r = double(rate_) * (starting_ ? kStartupGain : 1 + step);
    rate_ = r >= double(cfg_.cap_bps) ? cfg_.cap_bps : static_cast<uint64_t>(r);
    if (rate_ >= cfg_.cap_bps) starting_ = false;
    // Ticks come about an epoch apart, so this allows one step per epoch;
    // it only stops a tick that comes early from stepping twice.
    if (starting_) hold_until_ = now + cfg_.epoch;
  }
  rate_ = std::clamp(rate_, cfg_.floor_bps, cfg_.cap_bps);
  d.changed = rate_ != before;
  return d;
}

}  // namespace cm::mcast
