// Job mode's fan-out rule (docs/protocol/jobs.md, "Who approaches whom"): a
// node that holds a job's content and a share of servers nobody has
// approached yet decides whom it approaches now and which part of its share
// each of them takes along. Pure: no clock, no I/O; the same inputs give the
// same plan, so every node applies one rule and the shares stay disjoint
// (two nodes never approach the same server).
//
// The rule, in short:
//  - servers of the node's own site (the LAN) first: up to `lan_slots` of
//    them, each taking an equal part of the remaining site-mates;
//  - other sites once each: one entry server per site (the first of that
//    site in the share: the caller puts the site's leader first), the sites
//    in descending order of their measured upload rate (rates not measured
//    count as the median of those that are; with none measured the input
//    order holds); the first `wan_slots` sites are approached, the rest go
//    to them as shares, faster children taking more (a child far slower than
//    the fastest takes none: a slow site stays a leaf);
//  - an entry server's share holds its site-mates and the sites it was given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cm::push {

using PeerIndex = uint32_t;

// A server of the job as the job object lists it.
struct FanPeer {
  std::string name;
  std::string site;
  double up_bps = 0;  // measured upload rate of its site's uplink, bytes/s (0 = not measured)
};

struct FanApproach {
  PeerIndex target = 0;
  std::vector<PeerIndex> share;  // servers it approaches in turn (not including itself)
  bool lan = false;              // same site as the approaching node
  bool operator==(const FanApproach&) const = default;
};

struct FanSplit {
  std::vector<FanApproach> approaches;  // in the order to approach them
  std::vector<PeerIndex> kept;          // not approached now: kept for later slots
};

// The order in which a share's sites are served: a site's rank key (its
// fastest server's up_bps, the median of the measured ones when unmeasured).
double SiteRate(const std::vector<FanPeer>& peers, const std::vector<PeerIndex>& share, std::string_view site);

// How many other-site children a node feeds at once: as many as its uplink
// allows, `self_up_bps` over the rate each child needs (`need_bps`: a live
// stream's rate, or for a file the child's own rate), at least 1 and at most
// `max_fanout`; unknown rates (0) give 1. With more than `deep_sites` sites
// left to serve it is at least 2, so that a chain's depth stays bounded.
size_t WanFanout(double self_up_bps, double need_bps, size_t max_fanout, size_t sites_left, size_t deep_sites = 64);

// The plan for `share` (indexes into `peers`; entries out of range and
// duplicates are dropped). `self_site` "" = the base: every server is
// another site's.
FanSplit SplitShare(const std::vector<FanPeer>& peers, std::string_view self_site, std::vector<PeerIndex> share,
                    size_t lan_slots, size_t wan_slots);

// The number of distinct sites in `share` other than `self_site`.
size_t OtherSites(const std::vector<FanPeer>& peers, std::string_view self_site, const std::vector<PeerIndex>& share);

}  // namespace cm::push
