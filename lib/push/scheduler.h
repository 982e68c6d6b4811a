// The CCM's tree scheduler for one assignment: decides who fetches from whom
// as copies multiply (docs/protocol/push.md, "Scheduling"). A pure state
// machine: no clock, socket or randomness; the time is passed in and the
// decisions come back as values for the caller to send.
//
// Vocabulary. A relay is a site leader, named by a non-empty string; the CCM is
// the source "" (it holds everything and never fails). A relay is in one phase:
//   waiting   - not placed: no source, no children;
//   fetching  - placed under one source (the CCM or a relay);
//   complete  - holds every byte (verified == size); needs no source;
//   failed    - out of the job for good (reason in RelayState::failure).
// "Verified" is the length of the relay's prefix of checked bytes (a whole
// number of chunks, or `size`). A relay's children are the fetching relays
// whose source it is.
//
// Modes. With <= star_max relays every relay fetches from the CCM (star).
// Otherwise the CCM serves `ccm_children` relays and every relay that may
// serve (pipeline: holds >= 1 verified chunk; store-and-forward: complete)
// asks OnNext for whom to serve next; it gets the first waiting relay in the
// given order. Whenever the CCM has a free slot it takes the first waiting
// relay itself (the Orders returned by most calls), so a relay that comes back
// to the waiting list late is placed even after every asker heard NoneLeft.
//
// Failures. A relay that loses its source asks OnSourceFailed and is moved at
// once; the CCM learns that a relay died from OnRelayFailed (e.g. cm-leader's
// membership report) or from the stall timeout, and re-parents its children;
// a lost notification (OnNotifyFailed, or a placement that never shows
// progress within stall_timeout) sends the relay back to the waiting list
// after a back-off, and after notify_retries such losses fails it.
//
// Invariants (checked by tests/unit/push/scheduler_sim_test.cc):
//  - a relay has at most one source; sources form a forest rooted at the CCM
//    and at complete relays (no cycles); waiting and failed relays have no
//    children;
//  - a relay never has more than relay_children children; the CCM never takes
//    a child from the waiting list beyond ccm_children (star: all relays).
//    The one exception is a rescue: a relay that lost its source and finds no
//    relay further ahead with a free slot goes to the CCM regardless
//    (RelayState::over_limit), because a stranded relay stalls its subtree;
//  - store-and-forward: only complete relays have children; pipeline: only
//    relays holding >= 1 verified chunk;
//  - OnNext answers NoneLeft only when no relay is waiting and every placement
//    is confirmed by progress;
//  - while the sources keep working every live relay ends complete.
//
// Placements carry an epoch (per relay, increasing); a relay ignores a
// placement older than the last one it acted on, so a late notification
// cannot move it back.
//
// Cost: each call is O(relays); re-parenting is O(relays x tree depth) per
// orphan. Not thread-safe. Call Start once, before any other event.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "proto/core.h"
#include "util/status.h"

namespace cm::push {

using proto::Micros;

struct SchedulerOptions {
  size_t star_max = 3;       // <= this many relays: every relay fetches from the CCM
  bool pipeline = true;      // false: store-and-forward (serve only once complete)
  int ccm_children = 1;      // tree mode: relays the CCM serves at once
  int relay_children = 1;    // relays one relay serves at once (1 = a chain)
  // A fetching relay whose verified bytes do not advance for this long while
  // its source is ahead is failed ("stalled"); if it never advanced since it
  // was placed, its notification is taken as lost instead (see notify_retries).
  // Relays must detect a dead source well within this time.
  Micros stall_timeout = 15 * proto::kSeconds;
  int notify_retries = 3;    // a relay whose notification failed more often is failed ("unreachable")
  Micros notify_backoff = 1 * proto::kSeconds;  // times the failure count: wait before re-placing
  Micros retry_interval = 500 * proto::kMillis;  // RetryIn when no better time is known
};

// "Fetch from `source`" for the CCM to POST to `relay` (source "" = the CCM).
struct Order {
  std::string relay;
  std::string source;
  uint64_t epoch = 0;
  bool operator==(const Order&) const = default;
};

// OnNext's answers. Next: notify `relay` to fetch from the asker (with this
// epoch). RetryIn: ask again after `delay`. NoneLeft: nobody will be given out
// any more (the CCM places late stragglers itself).
struct Next {
  std::string relay;
  uint64_t epoch = 0;
};
struct RetryIn {
  Micros delay = 0;
};
struct NoneLeft {};
using Answer = std::variant<Next, RetryIn, NoneLeft>;

enum class RelayPhase { kWaiting, kFetching, kComplete, kFailed };
const char* PhaseName(RelayPhase p);  // "waiting", "fetching", "complete", "failed"

// One relay as the scheduler sees it (read-only for callers; for reports).
struct RelayState {
  std::string name;
  RelayPhase phase = RelayPhase::kWaiting;
  std::string source;          // kFetching only; "" = the CCM
  uint64_t verified = 0;       // last reported, bytes
  uint64_t epoch = 0;          // of the current (or last) placement
  int children = 0;            // relays fetching from this one
  int notify_failures = 0;
  bool over_limit = false;     // a rescue placement at the CCM beyond its limit
  bool confirmed = false;      // advanced since the current placement
  bool suspect = false;        // a child reported it failed; not used as a source until it reports again
  std::string failure;         // kFailed: "dead", "stalled", "unreachable", "replaced by X"
  std::string replaced_by;     // the site's new leader, if replaced
  Micros placed_at = 0;
  Micros stall_since = 0;      // since when it has been behind its source without advancing
  Micros not_before = 0;       // kWaiting after a notify failure: not placed before this
};

class Scheduler {
 public:
  // `relays`: best first, unique, non-empty names. size > 0, chunk_size > 0,
  // relay_children >= 1, ccm_children >= 1, notify_retries >= 0,
  // stall_timeout > 0, retry_interval > 0. Errors: kUsage.
  static Result<Scheduler> Create(uint64_t size, uint64_t chunk_size, std::vector<std::string> relays,
                                  SchedulerOptions options = {});

  // The initial orders: star: every relay from the CCM; tree: the first
  // ccm_children relays.
  std::vector<Order> Start(Micros now);

  // `relay` (holding `verified` bytes) asks whom to serve next. Also counts as
  // a progress report. Unknown or failed askers get NoneLeft.
  Answer OnNext(Micros now, const std::string& relay, uint64_t verified);

  // A progress report (verified bytes; `complete` forces verified = size).
  // Reports never move verified backwards; unknown or failed relays are
  // ignored. Returns the CCM's orders (it may have a free slot now).
  std::vector<Order> OnProgress(Micros now, const std::string& relay, uint64_t verified, bool complete);

  // The notification telling `relay` to fetch from `source` did not get
  // through (sent by `source` after a Next, or by the CCM, source "", after an
  // Order). Ignored unless `relay` is still placed under `source`. The relay
  // goes back to waiting (its children get new sources) or, after
  // notify_retries failures, fails as "unreachable". Returns orders to send.
  std::vector<Order> OnNotifyFailed(Micros now, const std::string& source, const std::string& relay);

  // `relay` lost its source `source` while holding `verified` bytes. Returns
  // its new placement: a live relay further ahead (complete, or verified
  // greater than the relay's in pipeline mode) with a free slot that is not in
  // the relay's own subtree and not `source`, complete relays first, then the
  // CCM if it has a free slot, then partial holders, else the CCM (a rescue).
  // `source` is marked suspect. If the relay has meanwhile been placed under
  // another source, that placement is returned unchanged. Errors: kNotFound
  // (unknown relay), kFailure (the relay was failed), kUsage (it is complete).
  Result<Order> OnSourceFailed(Micros now, const std::string& relay, const std::string& source, uint64_t verified);

  // `relay` is dead (the CCM learned it): failed ("dead"); its children get
  // new sources. Returns the orders. No-op for unknown or failed relays.
  std::vector<Order> OnRelayFailed(Micros now, const std::string& relay);

  // A site's leader changed from `old_relay` to `new_relay`: the new one takes
  // the old one's place in the order; the old one fails ("replaced by ...",
  // unless already failed) and its children get new sources; the new one is
  // placed at the best holder at once (waiting instead if the old one was).
  // `new_relay` may reuse the name of a relay replaced earlier. Errors:
  // kNotFound (old unknown), kUsage (new empty or a live relay's name, or the
  // old one already replaced).
  Result<std::vector<Order>> ReplaceRelay(Micros now, const std::string& old_relay, const std::string& new_relay);

  // Stall detection and delayed placements; call at (or after) NextWake().
  // Afterwards NextWake() > now.
  std::vector<Order> OnTimer(Micros now);
  // When OnTimer next has something to do (may be <= the last event's time,
  // e.g. after OnNext freed the CCM's slot: call OnTimer at once);
  // proto::kNever for nothing.
  Micros NextWake() const;

  // Every relay is complete or failed.
  bool Done() const;

  // Relays in hand-out order (replaced relays are left out: see all()).
  std::vector<const RelayState*> relays() const;
  // Every relay ever known, replaced ones included, in the order first seen.
  const std::vector<RelayState>& all() const { return relays_; }
  const RelayState* Find(const std::string& name) const;
  // Relays the CCM serves now (rescues included).
  int ccm_children() const { return ccm_children_; }
  // The CCM's limit for children taken from the waiting list.
  int ccm_capacity() const;
  bool star() const { return star_; }
  uint64_t size() const { return size_; }
  uint64_t chunk_size() const { return chunk_size_; }
  const SchedulerOptions& options() const { return opt_; }

 private:
  Scheduler(uint64_t size, uint64_t chunk_size, SchedulerOptions options) :
      size_(size), chunk_size_(chunk_size), opt_(options) {}

  static constexpr int kCcm = -1;  // src_ of a relay fetching from the CCM, or of one with no source
  static constexpr int kNone = -2;  // no relay (unknown name; nothing to exclude)
  int Index(const std::string& name) const;  // kNone when unknown
  void Record(Micros now, int r, uint64_t verified, bool complete);
  bool MayServe(int s) const;
  bool Ahead(int s, uint64_t verified) const;
  bool SourceAhead(int r) const;
  bool InSubtree(int node, int root) const;
  int BestSource(int r, int exclude) const;  // kCcm for the CCM
  Order Place(Micros now, int r, int source);
  void Detach(int r);
  void Reparent(Micros now, int from, std::vector<Order>* out);
  void Fail(Micros now, int r, std::string reason, std::vector<Order>* out);
  void NotifyFailed(Micros now, int r, std::vector<Order>* out);
  void Fill(Micros now, std::vector<Order>* out);
  bool MayNeedPlacing() const;

  uint64_t size_;
  uint64_t chunk_size_;
  SchedulerOptions opt_;
  bool star_ = false;
  std::vector<RelayState> relays_;  // every relay ever known
  std::vector<int> src_;            // parallel to relays_: the source's index (kFetching), else kCcm
  std::vector<size_t> order_;       // indexes into relays_, hand-out order
  std::map<std::string, size_t, std::less<>> by_name_;
  int ccm_children_ = 0;
};

}  // namespace cm::push
