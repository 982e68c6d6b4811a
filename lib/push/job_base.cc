#include "push/job_base.h"

#include <algorithm>

namespace cm::push {
namespace {
const char* const kBaseSite = "\001" "base";  // the base's reservations (no site has this name)
// Within this of its source's position a node is caught up with it (the
// edge moves up to a few seconds' worth per request).
constexpr uint64_t kCaughtUp = 8 << 20;
}  // namespace

JobBaseCore::JobBaseCore(std::vector<FanPeer> peers, JobBaseOptions opts) :
    peers_(std::move(peers)), opts_(opts), nodes_(peers_.size()) {}

void JobBaseCore::Start(Micros now) {
  started_ = now;
  for (JobNodeState& n : nodes_) n.next_probe = now;
}

bool JobBaseCore::Live(const JobNodeState& n, Micros now) const {
  return n.heard && !n.down && now - n.last_report <= opts_.silent_after;
}

void JobBaseCore::OnProgress(Micros now, const JobProgressMsg& p) {
  if (p.node >= nodes_.size()) return;
  JobNodeState& n = nodes_[p.node];
  n.heard = true;
  n.down = false;
  n.orphan = false;
  n.outside_since = -1;
  n.pos = std::max(n.pos, p.pos);
  n.complete = n.complete || p.complete;
  if (n.source != p.source || n.source_since < 0) n.source_since = now;
  n.source = p.source;
  n.rx_bps = p.rx_bps;
  // Caught up with a source that is still receiving: its source's intake is
  // the limit, not its own link.
  bool starved = p.source >= 0 && static_cast<size_t>(p.source) < nodes_.size() && !nodes_[p.source].complete &&
                 n.pos + 2 * opts_.ahead_margin >= nodes_[p.source].pos;
  bool was_helped = n.helped_at >= 0 && now - n.helped_at >= opts_.retarget_hold && n.rx_bps > 0 &&
                    n.rx_bps < 1.2 * n.rx_at_help;
  n.last_report = now;
  n.next_probe = now + opts_.silent_after;
  n.tx_bps = p.tx_bps;
  n.kept = p.kept;
  children_[p.node] = p.children;
  const std::string& site = peers_[p.node].site;
  site_tx_[site] = std::max(site_tx_[site], p.tx_bps);
  bool wan_fed = p.source == kBaseNode ||
                 (p.source >= 0 && static_cast<size_t>(p.source) < peers_.size() && peers_[p.source].site != site);
  if (wan_fed) site_rx_[site] = std::max(site_rx_[site], p.rx_bps);
  n.below_share = false;
  if (wan_fed && !starved && !n.complete && p.rx_bps > 0) {
    // What it could get from its source's uplink: its own rate and what is spare.
    double src_up = p.source == kBaseNode ? opts_.base_up_bps : SiteUpEstimate(peers_[p.source].site);
    double src_tx = p.source == kBaseNode ? BaseTx() : SiteTx(peers_[p.source].site);
    double avail = src_up - src_tx + p.rx_bps;
    n.below_share = src_up > 0 && p.rx_bps < 0.6 * avail;
  }
  // A faster source did not make it faster, and its source has uplink to
  // spare: its own link is the limit.
  if (was_helped && (n.below_share || n.helps >= 2)) n.capped = true;  // twice helped, no faster: its own link
  if (starved) n.capped = false;
  for (PeerIndex c : p.children) {
    if (c < nodes_.size() && !nodes_[c].heard) nodes_[c].next_probe = std::max(nodes_[c].next_probe, now + opts_.orphan_grace);
  }
}

size_t JobBaseCore::ChildrenOf(NodeRef source) const {
  if (source >= 0) {
    auto it = children_.find(static_cast<PeerIndex>(source));
    if (it == children_.end() || static_cast<size_t>(source) >= peers_.size()) return 0;
    size_t n = 0;
    for (PeerIndex c : it->second) n += c < peers_.size() && peers_[c].site != peers_[source].site;
    return n;
  }
  size_t n = 0;
  for (const JobNodeState& s : nodes_) n += s.source == source && !s.complete && !s.down;
  return n;
}

bool JobBaseCore::SiteHolds(const std::string& site, Micros now) const {
  for (PeerIndex i = 0; i < nodes_.size(); ++i) {
    const JobNodeState& n = nodes_[i];
    if (peers_[i].site == site && (n.complete || (n.pos > 0 && Live(n, now)))) return true;
  }
  return false;
}

double JobBaseCore::OrphanRate(NodeRef helper, const std::string& helper_site, const JobHelpAsk& ask) const {
  if (helper < 0) return ask.rate_bps;
  double up = SiteUpEstimate(helper_site);
  if (up <= 0) return ask.rate_bps > 0 ? ask.rate_bps : 1;  // nothing known: let it try
  double spare = up - SiteTx(helper_site);
  return spare >= 0.3 * up ? spare : 0;
}

double JobBaseCore::BaseTx() const {
  double sum = 0;
  for (const JobNodeState& n : nodes_) {
    if (n.source == kBaseNode && !n.complete && !n.down) sum += n.rx_bps;
  }
  return sum;
}

double JobBaseCore::SiteTx(const std::string& site) const {
  double sum = 0;
  for (PeerIndex i = 0; i < nodes_.size(); ++i) {
    if (peers_[i].site == site && !nodes_[i].down) sum += nodes_[i].tx_bps;
  }
  for (const Reserved& r : reserved_) {
    if (r.site == site && r.until > now_) sum += r.rate;
  }
  return sum;
}

bool JobBaseCore::InSubtree(PeerIndex node, PeerIndex root) const {
  // Walk node's sources up; a cycle in stale reports ends the walk.
  NodeRef at = node;
  for (size_t steps = 0; steps <= nodes_.size(); ++steps) {
    if (at == static_cast<NodeRef>(root)) return true;
    if (at < 0 || static_cast<size_t>(at) >= nodes_.size()) return false;
    at = nodes_[at].source;
  }
  return false;
}

double JobBaseCore::SiteUpEstimate(const std::string& site) const {
  auto tx = site_tx_.find(site);
  auto rx = site_rx_.find(site);
  return std::max(tx != site_tx_.end() ? tx->second : 0.0, rx != site_rx_.end() ? rx->second : 0.0);
}

double JobBaseCore::SiteRxEstimate(const std::string& site) const {
  auto rx = site_rx_.find(site);
  return rx != site_rx_.end() ? rx->second : 0.0;
}

JobBaseCore::HelpAnswer JobBaseCore::OnHelp(Micros now, NodeRef helper, const JobHelpAsk& ask) {
  HelpAnswer answer;
  now_ = now;
  std::erase_if(reserved_, [now](const Reserved& r) { return r.until <= now; });
  answer.finished = LiveComplete();
  if (answer.finished) return answer;
  // A server nobody reaches first.
  const std::string helper_site =
      helper >= 0 && static_cast<size_t>(helper) < peers_.size() ? peers_[helper].site : std::string();
  for (PeerIndex i = 0; i < nodes_.size(); ++i) {
    JobNodeState& n = nodes_[i];
    if (n.orphan && static_cast<NodeRef>(i) != helper) {
      // A site needs one feed from outside: while a node of its site holds
      // the job, the orphan is for a helper of its site (for a while).
      const std::string& site = peers_[i].site;
      if (site != helper_site) {
        if (now - n.orphan_since < 2 * opts_.orphan_grace && SiteHolds(site, now)) continue;
        // One feed into a site at a time; its site-mates follow over the LAN.
        auto e = entering_.find(site);
        if (e != entering_.end() && now < e->second) continue;
        // The helper's site must have uplink to spare (it is shared); the
        // base too, unless nobody else took the orphan for a while.
        double spare = OrphanRate(helper, helper_site, ask);
        if (helper >= 0 && spare <= 0) continue;
        if (helper == kBaseNode && opts_.base_up_bps > 0 && ask.rate_bps < 0.3 * opts_.base_up_bps &&
            now - n.orphan_since < 2 * opts_.orphan_grace) {
          continue;
        }
        entering_[site] = now + 2 * opts_.orphan_grace;
        if (helper >= 0) reserved_.push_back(Reserved{helper_site, spare, now + opts_.settle});
      }
      n.orphan = false;
      n.helped_at = now;
      n.next_probe = now + opts_.orphan_grace;
      answer.target = i;
      return answer;
    }
  }
  if (ask.repair_only) return answer;
  // What the helper's site has to spare: its uplink is shared by every node
  // of the site.
  double helper_rate = ask.rate_bps;
  if (helper == kBaseNode) {
    // The base feeds others only with an uplink it knows (configured): what
    // is left of it after its children's reported rates and what it promised
    // lately, and at least a quarter of it. A measured estimate of its own
    // uplink is too noisy to take a node from its source.
    if (opts_.base_up_bps <= 0) return answer;
    helper_rate = opts_.base_up_bps - BaseTx();
    for (const Reserved& r : reserved_) {
      if (r.site == kBaseSite && r.until > now) helper_rate -= r.rate;
    }
    if (helper_rate < 0.25 * opts_.base_up_bps) return answer;
  }
  if (helper >= 0) {
    double up = SiteUpEstimate(helper_site);
    if (up > 0) {
      double spare = up - SiteTx(helper_site);
      helper_rate = helper_rate > 0 ? std::min(helper_rate, spare) : spare;
    }
  }
  NodeRef best = kNoNode;
  double best_rx = 0;
  bool best_relieve = false;
  for (PeerIndex i = 0; i < nodes_.size(); ++i) {
    const JobNodeState& n = nodes_[i];
    if (static_cast<NodeRef>(i) == helper || n.complete || !Live(n, now)) continue;
    if (n.source_since < 0 || now - n.source_since < opts_.settle) continue;  // its rate is not known yet
    if (n.source == helper) continue;
    // A node fed over its LAN is as fast as its site's entry: help that one.
    if (n.source >= 0 && static_cast<size_t>(n.source) < peers_.size() && peers_[n.source].site == peers_[i].site) continue;
    bool relieve = false;
    if (n.capped || n.below_share) {
      // Its own link limits it; relieve its source if that one is busy
      // feeding others too, by a helper at least as fast.
      double src_up = n.source == kBaseNode ? opts_.base_up_bps
                      : n.source >= 0          ? SiteUpEstimate(peers_[n.source].site)
                                               : 0;
      double src_tx = n.source == kBaseNode ? BaseTx() : n.source >= 0 ? SiteTx(peers_[n.source].site) : 0;
      relieve = ChildrenOf(n.source) >= 2 && helper != kBaseNode && helper_rate >= 1.1 * n.rx_bps &&
                !(n.relieved_at >= 0 && now - n.relieved_at < 4 * opts_.retarget_hold) &&
                !(src_up > 0 && src_up - src_tx > 0.5 * n.rx_bps);
      if (!relieve && n.capped) continue;  // a faster source did not help it before
    }
    if (n.helped_at >= 0 && now - n.helped_at < opts_.retarget_hold) continue;
    bool ahead = ask.complete || ask.pos > n.pos + opts_.ahead_margin;
    if (!ahead) continue;
    // A node caught up with a source that still receives runs at that
    // source's intake: only a helper that holds it all, or that itself
    // receives faster, can feed it faster.
    bool caught_up = n.source >= 0 && static_cast<size_t>(n.source) < nodes_.size() && !nodes_[n.source].complete &&
                     n.pos + kCaughtUp >= nodes_[n.source].pos;
    if (caught_up && !ask.complete) continue;
    if (!ask.complete && helper >= 0 && nodes_[helper].rx_bps < opts_.switch_gain * n.rx_bps) continue;
    if (helper >= 0 && InSubtree(static_cast<PeerIndex>(helper), i)) continue;  // it feeds us
    double rate = helper_rate;
    if (!helper_site.empty() && peers_[i].site == helper_site) rate = std::max(rate, opts_.lan_bps);
    if (!relieve && rate <= opts_.switch_gain * n.rx_bps) continue;
    // The slowest; among equals the one ahead (upstream: its subtree gains too).
    bool better = best == kNoNode || n.rx_bps < 0.9 * best_rx ||
                  (n.rx_bps < 1.1 * best_rx && n.pos > nodes_[best].pos);
    if (better) {
      best = i;
      best_rx = n.rx_bps;
      best_relieve = relieve;
    }
  }
  if (best != kNoNode) {
    if (best_relieve) nodes_[best].relieved_at = now;
    nodes_[best].helped_at = now;
    ++nodes_[best].helps;
    nodes_[best].rx_at_help = nodes_[best].rx_bps;
    answer.target = best;
    answer.relieve = best_relieve;
    answer.rate_bps = std::max(helper_rate, 0.0);
    if (helper == kBaseNode) {
      reserved_.push_back(Reserved{kBaseSite, std::max(helper_rate, 0.0), now + opts_.settle});
    } else if (!helper_site.empty() && peers_[best].site != helper_site) {
      reserved_.push_back(Reserved{helper_site, std::max(helper_rate, 0.0), now + opts_.settle});
    }
  }
  return answer;
}

NodeRef JobBaseCore::OnSourceFailed(Micros now, const JobSourceFailedMsg& m) {
  if (m.node >= nodes_.size()) return kBaseNode;
  JobNodeState& me = nodes_[m.node];
  me.heard = true;
  me.last_report = now;
  me.down = false;
  if (m.source >= 0 && static_cast<size_t>(m.source) < nodes_.size()) {
    // Its source may be dead: have a look soon.
    JobNodeState& s = nodes_[m.source];
    s.next_probe = std::min(s.next_probe, now);
  }
  NodeRef best = kBaseNode;
  size_t best_load = 0;
  bool best_local = false;
  for (PeerIndex i = 0; i < nodes_.size(); ++i) {
    const JobNodeState& n = nodes_[i];
    if (i == m.node || static_cast<NodeRef>(i) == m.source || !n.complete || !Live(n, now)) continue;
    bool local = peers_[i].site == peers_[m.node].site;
    size_t load = children_.count(i) ? children_.at(i).size() : 0;
    if (best == kBaseNode || (local && !best_local) || (local == best_local && load < best_load)) {
      best = i;
      best_load = load;
      best_local = local;
    }
  }
  return best;
}

void JobBaseCore::OnUnreachable(Micros now, const JobUnreachableMsg& m) {
  if (m.target >= nodes_.size()) return;
  JobNodeState& n = nodes_[m.target];
  if (n.complete) return;
  n.next_probe = std::min(n.next_probe, now);  // see for ourselves
}

std::vector<PeerIndex> JobBaseCore::DueProbes(Micros now) {
  std::vector<PeerIndex> due;
  // Is a share of servers not yet approached still held by a live node?
  bool held = false, unheard = false;
  for (const JobNodeState& n : nodes_) {
    held = held || (n.kept > 0 && !n.down);
    unheard = unheard || (!n.heard && !n.complete);
  }
  if (unheard && !held && hunt_at_ == proto::kNever) hunt_at_ = now + opts_.orphan_grace;
  bool hunt = now >= hunt_at_ || now - started_ >= opts_.unheard_grace;
  for (PeerIndex i = 0; i < nodes_.size(); ++i) {
    JobNodeState& n = nodes_[i];
    if (n.complete || n.probing || n.orphan || now < n.next_probe) continue;
    if (!n.heard && !hunt) continue;
    if (n.heard && !n.down && now - n.last_report < opts_.silent_after) continue;
    n.probing = true;
    due.push_back(i);
  }
  return due;
}

void JobBaseCore::OnProbeDone(Micros now, PeerIndex node, bool reachable, bool in_job, uint64_t pos, bool complete) {
  if (node >= nodes_.size()) return;
  JobNodeState& n = nodes_[node];
  n.probing = false;
  if (!reachable) {
    if (n.kept > 0 && hunt_at_ == proto::kNever) hunt_at_ = now + opts_.orphan_grace;  // its share is lost
    n.down = true;
    n.next_probe = now + opts_.probe_interval;
    return;
  }
  if (n.down) ++n.repairs;
  n.down = false;
  n.pos = std::max(n.pos, pos);
  n.complete = n.complete || complete;
  if (in_job) {
    n.heard = true;
    n.last_report = now;
    n.next_probe = now + opts_.silent_after;
  } else if (!n.complete) {
    // Up and not in the job: an offer may be on its way; if a second probe
    // still finds it outside, it is an orphan.
    if (n.outside_since < 0) {
      n.outside_since = now;
      n.next_probe = now + opts_.orphan_grace;
      return;
    }
    if (now - n.outside_since < opts_.orphan_grace) {
      n.next_probe = n.outside_since + opts_.orphan_grace;
      return;
    }
    n.outside_since = -1;
    if (!n.orphan) n.orphan_since = now;
    n.orphan = true;  // the next helper (or the base) feeds it
    n.next_probe = now + opts_.orphan_grace;
  }
}

Micros JobBaseCore::NextWake() const {
  Micros w = proto::kNever;
  for (const JobNodeState& n : nodes_) {
    if (!n.complete && !n.probing && !n.orphan) w = std::min(w, n.next_probe);
  }
  return w;
}

bool JobBaseCore::AllComplete() const {
  return std::all_of(nodes_.begin(), nodes_.end(), [](const JobNodeState& n) { return n.complete; });
}

bool JobBaseCore::LiveComplete() const {
  return std::all_of(nodes_.begin(), nodes_.end(), [](const JobNodeState& n) { return n.complete || n.down; });
}

}  // namespace cm::push
