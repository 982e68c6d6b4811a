#include "push/scheduler.h"

#include <algorithm>

namespace cm::push {

const char* PhaseName(RelayPhase p) {
  switch (p) {
    case RelayPhase::kWaiting: return "waiting";
    case RelayPhase::kFetching: return "fetching";
    case RelayPhase::kComplete: return "complete";
    case RelayPhase::kFailed: return "failed";
  }
  return "?";
}

Result<Scheduler> Scheduler::Create(uint64_t size, uint64_t chunk_size, std::vector<std::string> relays,
                                    SchedulerOptions options) {
  if (size == 0 || chunk_size == 0) return Error(Code::kUsage, "scheduler: size and chunk size must be > 0");
  if (options.relay_children < 1 || options.ccm_children < 1 || options.notify_retries < 0)
    return Error(Code::kUsage, "scheduler: relay_children and ccm_children must be >= 1");
  if (options.stall_timeout <= 0 || options.retry_interval <= 0 || options.notify_backoff < 0)
    return Error(Code::kUsage, "scheduler: stall_timeout and retry_interval must be > 0");
  Scheduler s(size, chunk_size, options);
  for (std::string& name : relays) {
    if (name.empty()) return Error(Code::kUsage, "scheduler: empty relay name");
    if (s.by_name_.count(name)) return Error(Code::kUsage, "scheduler: duplicate relay " + name);
    s.by_name_[name] = s.relays_.size();
    s.order_.push_back(s.relays_.size());
    RelayState r;
    r.name = std::move(name);
    s.relays_.push_back(std::move(r));
    s.src_.push_back(kCcm);
  }
  s.star_ = s.relays_.size() <= options.star_max;
  return s;
}

int Scheduler::ccm_capacity() const {
  return star_ ? std::max<int>(1, static_cast<int>(order_.size())) : opt_.ccm_children;
}

int Scheduler::Index(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? kNone : static_cast<int>(it->second);
}

const RelayState* Scheduler::Find(const std::string& name) const {
  int i = Index(name);
  return i < 0 ? nullptr : &relays_[i];
}

std::vector<const RelayState*> Scheduler::relays() const {
  std::vector<const RelayState*> out;
  for (size_t i : order_) out.push_back(&relays_[i]);
  return out;
}

// Holds enough to hand bytes onward (slots and suspicion are checked apart).
bool Scheduler::MayServe(int s) const {
  const RelayState& r = relays_[s];
  if (r.phase == RelayPhase::kComplete) return true;
  return opt_.pipeline && r.phase == RelayPhase::kFetching && r.verified >= std::min(chunk_size_, size_);
}

// Relay `s` holds bytes a relay with `verified` bytes still lacks.
bool Scheduler::Ahead(int s, uint64_t verified) const {
  return relays_[s].phase == RelayPhase::kComplete || (opt_.pipeline && relays_[s].verified > verified);
}

bool Scheduler::SourceAhead(int r) const {
  int s = src_[r];
  if (s == kCcm) return true;
  return relays_[s].phase == RelayPhase::kComplete || relays_[s].verified > relays_[r].verified;
}

// Whether `node` is `root` or fetches, directly or not, from `root`.
bool Scheduler::InSubtree(int node, int root) const {
  int cur = node;
  for (size_t guard = 0; guard <= relays_.size(); ++guard) {
    if (cur == root) return true;
    if (relays_[cur].phase != RelayPhase::kFetching || src_[cur] == kCcm) return false;
    cur = src_[cur];
  }
  return true;  // a cycle: never expected; treat as "in the subtree" so nothing joins it
}

int Scheduler::BestSource(int r, int exclude) const {
  int best = kCcm;
  for (size_t i : order_) {
    const int s = static_cast<int>(i);
    const RelayState& c = relays_[s];
    if (s == r || s == exclude || c.suspect || c.children >= opt_.relay_children) continue;
    if (!MayServe(s) || !Ahead(s, relays_[r].verified) || InSubtree(s, r)) continue;
    const bool complete = c.phase == RelayPhase::kComplete;
    const bool better = best == kCcm || (complete && relays_[best].phase != RelayPhase::kComplete) ||
                        (c.phase == relays_[best].phase && c.verified > relays_[best].verified);
    if (better) best = s;
  }
  if (best != kCcm && relays_[best].phase == RelayPhase::kComplete) return best;
  if (ccm_children_ < ccm_capacity()) return kCcm;
  return best;
}

void Scheduler::Detach(int r) {
  RelayState& x = relays_[r];
  if (x.phase == RelayPhase::kFetching) {
    if (src_[r] == kCcm) {
      --ccm_children_;
    } else {
      --relays_[src_[r]].children;
    }
  }
  src_[r] = kCcm;
  x.source.clear();
  x.over_limit = false;
}

Order Scheduler::Place(Micros now, int r, int source) {
  Detach(r);
  RelayState& x = relays_[r];
  x.phase = RelayPhase::kFetching;
  src_[r] = source;
  ++x.epoch;
  x.placed_at = now;
  x.stall_since = now;
  x.confirmed = false;
  if (source == kCcm) {
    x.over_limit = ccm_children_ >= ccm_capacity();
    ++ccm_children_;
  } else {
    x.source = relays_[source].name;
    ++relays_[source].children;
  }
  return Order{x.name, x.source, x.epoch};
}

void Scheduler::Record(Micros now, int r, uint64_t verified, bool complete) {
  RelayState& x = relays_[r];
  uint64_t v = complete ? size_ : std::min(verified, size_);
  x.suspect = false;  // it spoke: it is alive
  if (v > x.verified) {
    const uint64_t old = x.verified;
    x.verified = v;
    x.stall_since = now;
    x.confirmed = true;
    // Children that had caught up see their source ahead again from now on.
    if (x.children > 0) {
      for (size_t c = 0; c < relays_.size(); ++c)
        if (src_[c] == r && relays_[c].phase == RelayPhase::kFetching && relays_[c].verified >= old)
          relays_[c].stall_since = now;
    }
  }
  if (x.verified >= size_ && x.phase != RelayPhase::kComplete) {
    Detach(r);
    x.phase = RelayPhase::kComplete;
    x.confirmed = true;
  }
}

void Scheduler::Reparent(Micros now, int from, std::vector<Order>* out) {
  if (relays_[from].children == 0) return;
  for (size_t i : order_) {
    const int c = static_cast<int>(i);
    if (c == from || src_[c] != from || relays_[c].phase != RelayPhase::kFetching) continue;
    out->push_back(Place(now, c, BestSource(c, from)));
  }
}

void Scheduler::Fail(Micros now, int r, std::string reason, std::vector<Order>* out) {
  Detach(r);
  relays_[r].phase = RelayPhase::kFailed;
  relays_[r].failure = std::move(reason);
  Reparent(now, r, out);
}

void Scheduler::NotifyFailed(Micros now, int r, std::vector<Order>* out) {
  RelayState& x = relays_[r];
  ++x.notify_failures;
  if (x.notify_failures > opt_.notify_retries) {
    Fail(now, r, "unreachable", out);
    return;
  }
  Detach(r);
  x.phase = RelayPhase::kWaiting;
  x.not_before = now + opt_.notify_backoff * x.notify_failures;
  Reparent(now, r, out);  // a waiting relay has no children
}

void Scheduler::Fill(Micros now, std::vector<Order>* out) {
  for (size_t i : order_) {
    if (ccm_children_ >= ccm_capacity()) return;
    const RelayState& r = relays_[i];
    if (r.phase == RelayPhase::kWaiting && r.not_before <= now) out->push_back(Place(now, static_cast<int>(i), kCcm));
  }
}

bool Scheduler::MayNeedPlacing() const {
  for (size_t i : order_) {
    const RelayState& r = relays_[i];
    if (r.phase == RelayPhase::kWaiting || (r.phase == RelayPhase::kFetching && !r.confirmed)) return true;
  }
  return false;
}

std::vector<Order> Scheduler::Start(Micros now) {
  std::vector<Order> out;
  Fill(now, &out);
  return out;
}

Answer Scheduler::OnNext(Micros now, const std::string& relay, uint64_t verified) {
  const int r = Index(relay);
  if (r < 0 || relays_[r].phase == RelayPhase::kFailed) return NoneLeft{};
  Record(now, r, verified, false);
  if (!MayNeedPlacing()) return NoneLeft{};
  if (!MayServe(r) || relays_[r].children >= opt_.relay_children) return RetryIn{opt_.retry_interval};
  Micros soonest = proto::kNever;
  for (size_t i : order_) {
    const int w = static_cast<int>(i);
    if (relays_[w].phase != RelayPhase::kWaiting) continue;
    if (relays_[w].not_before > now) {
      soonest = std::min(soonest, relays_[w].not_before);
      continue;
    }
    if (!Ahead(r, relays_[w].verified) || InSubtree(r, w)) continue;
    Order o = Place(now, w, r);
    return Next{o.relay, o.epoch};
  }
  if (soonest == proto::kNever) return RetryIn{opt_.retry_interval};
  return RetryIn{std::clamp<Micros>(soonest - now, 1, opt_.retry_interval)};
}

std::vector<Order> Scheduler::OnProgress(Micros now, const std::string& relay, uint64_t verified, bool complete) {
  std::vector<Order> out;
  const int r = Index(relay);
  if (r < 0 || relays_[r].phase == RelayPhase::kFailed) return out;
  Record(now, r, verified, complete);
  Fill(now, &out);
  return out;
}

std::vector<Order> Scheduler::OnNotifyFailed(Micros now, const std::string& source, const std::string& relay) {
  std::vector<Order> out;
  const int r = Index(relay);
  if (r < 0 || relays_[r].phase != RelayPhase::kFetching || relays_[r].source != source) return out;
  NotifyFailed(now, r, &out);
  Fill(now, &out);
  return out;
}

Result<Order> Scheduler::OnSourceFailed(Micros now, const std::string& relay, const std::string& source,
                                        uint64_t verified) {
  const int r = Index(relay);
  if (r < 0) return Error(Code::kNotFound, "scheduler: unknown relay " + relay);
  RelayState& x = relays_[r];
  if (x.phase == RelayPhase::kFailed) return Error(Code::kFailure, "scheduler: relay " + relay + " is " + x.failure);
  Record(now, r, verified, false);
  if (x.phase == RelayPhase::kComplete) return Error(Code::kUsage, "scheduler: relay " + relay + " is complete");
  if (x.phase == RelayPhase::kFetching && x.source != source) return Order{x.name, x.source, x.epoch};
  const int s = source.empty() ? kCcm : Index(source);
  if (s >= 0 && s != r) relays_[s].suspect = true;
  return Place(now, r, BestSource(r, s));
}

std::vector<Order> Scheduler::OnRelayFailed(Micros now, const std::string& relay) {
  std::vector<Order> out;
  const int r = Index(relay);
  if (r < 0 || relays_[r].phase == RelayPhase::kFailed) return out;
  Fail(now, r, "dead", &out);
  Fill(now, &out);
  return out;
}

Result<std::vector<Order>> Scheduler::ReplaceRelay(Micros now, const std::string& old_relay,
                                                   const std::string& new_relay) {
  if (new_relay.empty()) return Error(Code::kUsage, "scheduler: empty relay name");
  const int oi = Index(old_relay);
  if (oi < 0) return Error(Code::kNotFound, "scheduler: unknown relay " + old_relay);
  auto pos = std::find(order_.begin(), order_.end(), static_cast<size_t>(oi));
  if (pos == order_.end() || !relays_[oi].replaced_by.empty())
    return Error(Code::kUsage, "scheduler: relay " + old_relay + " was already replaced");
  if (const int ni = Index(new_relay); ni >= 0) {
    if (std::find(order_.begin(), order_.end(), static_cast<size_t>(ni)) != order_.end())
      return Error(Code::kUsage, "scheduler: relay " + new_relay + " is already in the job");
  }
  std::vector<Order> out;
  const RelayPhase was = relays_[oi].phase;
  if (was != RelayPhase::kFailed) Fail(now, oi, "replaced by " + new_relay, &out);
  relays_[oi].replaced_by = new_relay;
  RelayState fresh;
  fresh.name = new_relay;
  fresh.placed_at = now;
  const int ni = static_cast<int>(relays_.size());
  relays_.push_back(std::move(fresh));
  src_.push_back(kCcm);
  by_name_[new_relay] = static_cast<size_t>(ni);
  *pos = static_cast<size_t>(ni);
  if (was != RelayPhase::kWaiting) out.push_back(Place(now, ni, BestSource(ni, kNone)));
  Fill(now, &out);
  return out;
}

std::vector<Order> Scheduler::OnTimer(Micros now) {
  std::vector<Order> out;
  for (size_t i : order_) {
    const int r = static_cast<int>(i);
    const RelayState& x = relays_[r];
    if (x.phase != RelayPhase::kFetching || !SourceAhead(r) || now - x.stall_since < opt_.stall_timeout) continue;
    if (x.confirmed) {
      Fail(now, r, "stalled", &out);
    } else {
      NotifyFailed(now, r, &out);  // never started: the notification was probably lost
    }
  }
  Fill(now, &out);
  return out;
}

Micros Scheduler::NextWake() const {
  Micros wake = proto::kNever;
  const bool ccm_free = ccm_children_ < ccm_capacity();
  for (size_t i : order_) {
    const RelayState& r = relays_[i];
    if (r.phase == RelayPhase::kFetching && SourceAhead(static_cast<int>(i)))
      wake = std::min(wake, r.stall_since + opt_.stall_timeout);
    if (r.phase == RelayPhase::kWaiting && ccm_free) wake = std::min(wake, r.not_before);
  }
  return wake;
}

bool Scheduler::Done() const {
  for (size_t i : order_) {
    RelayPhase p = relays_[i].phase;
    if (p == RelayPhase::kWaiting || p == RelayPhase::kFetching) return false;
  }
  return true;
}

}  // namespace cm::push
