// Job mode's base core (docs/protocol/jobs.md, "The base"): the base's view of
// one job's distribution, from the nodes' progress reports, and the answers
// that need that view — whom an idle source should feed (dynamic switching),
// where a node whose source failed fetches now, which servers were never
// reached (a node died holding their share) and which are down and must be
// repaired and reactivated. The base does not schedule the hops: the nodes
// approach each other with their shares (push/job_node.h); the base only
// answers what one node cannot know. Pure: no clock or I/O; the edge runs
// the probes (GET /v1/status) and reports their outcome.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proto/core.h"
#include "push/fan_plan.h"
#include "push/job_node.h"

namespace cm::push {

struct JobBaseOptions {
  Micros silent_after = 3 * proto::kSeconds;   // no report this long: probe it
  // A server nobody reported is probed (and fed if it is up and not in the
  // job) once the base has reason to think its share was lost: a node that
  // held a share of servers not yet approached was found dead, or no live
  // node holds such a share any more; or this long after the start anyway.
  Micros unheard_grace = 60 * proto::kSeconds;
  Micros orphan_grace = 3 * proto::kSeconds;   // after such a reason, before probing
  Micros probe_interval = 2 * proto::kSeconds; // a down node is probed this often (repair)
  Micros retarget_hold = 3 * proto::kSeconds;  // a node offered a helper is not offered another this long
  Micros settle = 3 * proto::kSeconds;         // a node's rate counts once it has had its source this long
  double switch_gain = 1.5;                    // a helper must promise this times the node's rate
  uint64_t ahead_margin = 256 * 1024;
  double lan_bps = 100e6;
  double base_up_bps = 0;                      // the base's own uplink (0 = not known)
};

struct JobNodeState {
  bool heard = false;      // reported at least once
  bool complete = false;
  bool down = false;       // a probe failed: repair it
  bool orphan = false;     // reachable, not in the job: give it a source
  Micros orphan_since = -1;
  Micros outside_since = -1;  // a probe found it up and not in the job (twice, orphan_grace apart: an orphan)
  uint64_t pos = 0;
  NodeRef source = kNoNode;
  Micros source_since = -1;  // when it reported this source first
  double rx_bps = 0;
  double tx_bps = 0;
  size_t kept = 0;         // servers of its share it has not approached yet
  Micros last_report = -1;
  Micros helped_at = -1;   // last time a helper was sent to it
  Micros relieved_at = -1; // last time it was moved to relieve its source
  double rx_at_help = 0;   // its rate then
  int helps = 0;           // helpers sent to it
  bool capped = false;     // its own link is the limit: a faster source did not make it faster...
  bool below_share = false;  // ...or it gets far less than its source's uplink share
  Micros next_probe = 0;
  bool probing = false;
  int repairs = 0;         // times it was found down and then reactivated
};

class JobBaseCore {
 public:
  JobBaseCore(std::vector<FanPeer> peers, JobBaseOptions opts);

  void Start(Micros now);
  void OnProgress(Micros now, const JobProgressMsg& p);
  // An idle source (`helper`, or kBaseNode for the base's own) asks whom to
  // feed: a server nobody reaches (down and back, or whose approacher
  // died) first, else the slowest live node the helper is ahead of and
  // would feed `switch_gain` times faster; kNoNode when none. `finished`
  // is set when every live server holds the job.
  // A node limited by its own link (a faster source did not make it faster)
  // is offered instead as a relief to a helper that can feed it at its rate,
  // when its source feeds others too.
  struct HelpAnswer {
    NodeRef target = kNoNode;
    bool finished = false;
    bool relieve = false;
    double rate_bps = 0;  // what the base thinks the helper can feed it at
  };
  HelpAnswer OnHelp(Micros now, NodeRef helper, const JobHelpAsk& ask);
  // The base's estimate of a site's upload rate: the most any node of it
  // was seen feeding other sites, else (links taken as symmetric) the most
  // any node of it received from another site; 0 = nothing seen.
  double SiteUpEstimate(const std::string& site) const;
  // The most any node of the site received from another site (a receiver's
  // measure: what a sender wrote counts its socket buffers too, so its
  // early bursts overstate a link); 0 = nothing seen. What the base keeps
  // between jobs (links taken as symmetric).
  double SiteRxEstimate(const std::string& site) const;
  // Where `m.node` fetches now: a complete node of its site, else a complete
  // node elsewhere with the fewest children, else the base.
  NodeRef OnSourceFailed(Micros now, const JobSourceFailedMsg& m);
  void OnUnreachable(Micros now, const JobUnreachableMsg& m);

  // Probes due now (GET /v1/status of each); answer each with OnProbeDone.
  std::vector<PeerIndex> DueProbes(Micros now);
  void OnProbeDone(Micros now, PeerIndex node, bool reachable, bool in_job, uint64_t pos, bool complete);
  Micros NextWake() const;

  bool AllComplete() const;          // every server complete
  bool LiveComplete() const;         // every server not down is complete
  const std::vector<JobNodeState>& nodes() const { return nodes_; }

 private:
  bool InSubtree(PeerIndex node, PeerIndex root) const;  // node fetches (transitively) from root
  bool Live(const JobNodeState& n, Micros now) const;
  size_t ChildrenOf(NodeRef source) const;   // other-site children (all of the base's)
  double SiteTx(const std::string& site) const;
  double BaseTx() const;
  // What `helper` can feed an orphan of another site at (0 = its site's uplink is busy).
  double OrphanRate(NodeRef helper, const std::string& helper_site, const JobHelpAsk& ask) const;  // what the base feeds now (its children's rates)
  bool SiteHolds(const std::string& site, Micros now) const;  // a live node of it holds some of the job  // what its live nodes feed other sites now

  std::vector<FanPeer> peers_;
  JobBaseOptions opts_;
  std::vector<JobNodeState> nodes_;
  std::map<PeerIndex, std::vector<PeerIndex>> children_;  // as reported
  std::map<std::string, double> site_tx_, site_rx_;  // most seen per site (other-site flows)
  // Rates promised by help answers, counted in SiteTx until the helper's
  // reports show them (settle): (site, rate, until).
  struct Reserved {
    std::string site;
    double rate;
    Micros until;
  };
  std::vector<Reserved> reserved_;
  Micros now_ = 0;
  Micros hunt_at_ = proto::kNever;  // probe unheard servers from then on
  std::map<std::string, Micros> entering_;  // site -> until: an orphan of it was given to another site's helper
  Micros started_ = 0;
};

}  // namespace cm::push
