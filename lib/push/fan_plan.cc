#include "push/fan_plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace cm::push {
namespace {

// A child far slower than the fastest one is a leaf: it takes no other site.
constexpr double kLeafFraction = 0.25;

std::vector<PeerIndex> Clean(const std::vector<FanPeer>& peers, std::vector<PeerIndex> share) {
  std::set<PeerIndex> seen;
  std::vector<PeerIndex> out;
  out.reserve(share.size());
  for (PeerIndex p : share) {
    if (p < peers.size() && seen.insert(p).second) out.push_back(p);
  }
  return out;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct SiteGroup {
  std::string site;
  std::vector<PeerIndex> servers;  // share order
  double rate = 0;
};

// The share's other-site servers by site, in first-appearance order, with
// their ranking rates (unmeasured = median of the measured).
std::vector<SiteGroup> Groups(const std::vector<FanPeer>& peers, std::string_view self_site,
                              const std::vector<PeerIndex>& share) {
  std::vector<SiteGroup> groups;
  std::map<std::string, size_t, std::less<>> at;
  for (PeerIndex p : share) {
    const FanPeer& peer = peers[p];
    if (!self_site.empty() && peer.site == self_site) continue;
    auto [it, fresh] = at.try_emplace(peer.site, groups.size());
    if (fresh) groups.push_back(SiteGroup{peer.site, {}, 0});
    SiteGroup& g = groups[it->second];
    g.servers.push_back(p);
    g.rate = std::max(g.rate, peer.up_bps);
  }
  std::vector<double> measured;
  for (const SiteGroup& g : groups) {
    if (g.rate > 0) measured.push_back(g.rate);
  }
  double median = Median(measured);
  for (SiteGroup& g : groups) {
    if (g.rate <= 0) g.rate = median;
  }
  return groups;
}

}  // namespace

double SiteRate(const std::vector<FanPeer>& peers, const std::vector<PeerIndex>& share, std::string_view site) {
  for (const SiteGroup& g : Groups(peers, "", Clean(peers, share))) {
    if (g.site == site) return g.rate;
  }
  return 0;
}

size_t OtherSites(const std::vector<FanPeer>& peers, std::string_view self_site, const std::vector<PeerIndex>& share) {
  std::set<std::string_view> sites;
  for (PeerIndex p : share) {
    if (p >= peers.size()) continue;
    if (!self_site.empty() && peers[p].site == self_site) continue;
    sites.insert(peers[p].site);
  }
  return sites.size();
}

size_t WanFanout(double self_up_bps, double need_bps, size_t max_fanout, size_t sites_left, size_t deep_sites) {
  size_t k = 1;
  if (self_up_bps > 0 && need_bps > 0) {
    // A 20 % margin: feeding one child too many halves every child's rate,
    // one too few only delays a site by a hop, and measured rates err.
    double fit = std::floor(self_up_bps / (need_bps * 1.2));
    if (fit > 1) k = static_cast<size_t>(std::min<double>(fit, static_cast<double>(max_fanout)));
  }
  if (sites_left > deep_sites) k = std::max<size_t>(k, 2);
  return std::max<size_t>(1, std::min(k, std::max<size_t>(max_fanout, 1)));
}

FanSplit SplitShare(const std::vector<FanPeer>& peers, std::string_view self_site, std::vector<PeerIndex> share,
                    size_t lan_slots, size_t wan_slots) {
  share = Clean(peers, std::move(share));
  FanSplit out;
  std::set<PeerIndex> placed;

  // The LAN: site-mates, an equal part of the rest each.
  std::vector<PeerIndex> lan;
  if (!self_site.empty()) {
    for (PeerIndex p : share) {
      if (peers[p].site == self_site) lan.push_back(p);
    }
  }
  size_t nl = std::min(lan_slots, lan.size());
  for (size_t i = 0; i < nl; ++i) out.approaches.push_back(FanApproach{lan[i], {}, true});
  for (size_t i = nl; nl > 0 && i < lan.size(); ++i) out.approaches[(i - nl) % nl].share.push_back(lan[i]);
  if (nl > 0) placed.insert(lan.begin(), lan.end());

  // Other sites, fastest first; the rest shared out by rate.
  std::vector<SiteGroup> groups = Groups(peers, self_site, share);
  std::stable_sort(groups.begin(), groups.end(),
                   [](const SiteGroup& a, const SiteGroup& b) { return a.rate > b.rate; });
  size_t nw = std::min(wan_slots, groups.size());
  size_t first_wan = out.approaches.size();
  double fastest = 0;
  for (size_t i = 0; i < nw; ++i) {
    const SiteGroup& g = groups[i];
    FanApproach a{g.servers.front(), {}, false};
    a.share.assign(g.servers.begin() + 1, g.servers.end());
    out.approaches.push_back(std::move(a));
    placed.insert(g.servers.begin(), g.servers.end());
    fastest = std::max(fastest, g.rate);
  }
  if (nw > 0) {
    std::vector<size_t> load(nw, 0);
    std::vector<bool> leaf(nw, false);
    bool all_leaves = true;
    for (size_t j = 0; j < nw; ++j) {
      leaf[j] = fastest > 0 && groups[j].rate < kLeafFraction * fastest;
      all_leaves = all_leaves && leaf[j];
    }
    for (size_t i = nw; i < groups.size(); ++i) {
      size_t best = nw;
      double best_cost = 0;
      for (size_t j = 0; j < nw; ++j) {
        if (leaf[j] && !all_leaves) continue;
        double rate = groups[j].rate > 0 ? groups[j].rate : 1;
        double cost = static_cast<double>(load[j] + 1) / rate;
        if (best == nw || cost < best_cost) {
          best = j;
          best_cost = cost;
        }
      }
      ++load[best];
      auto& s = out.approaches[first_wan + best].share;
      s.insert(s.end(), groups[i].servers.begin(), groups[i].servers.end());
      placed.insert(groups[i].servers.begin(), groups[i].servers.end());
    }
  }

  for (PeerIndex p : share) {
    if (!placed.count(p)) out.kept.push_back(p);
  }
  return out;
}

}  // namespace cm::push
