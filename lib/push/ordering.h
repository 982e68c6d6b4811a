// Orders the site leaders for the tree scheduler (lib/push/scheduler.h) from
// the facts they reported: best first. Pure and deterministic: the same facts
// and options always give the same order.
//
// 1. Admin override: leaders named in OrderingOptions::admin_order, by leader
//    name or by site, come first, in the order of that list (a leader matched
//    by several entries takes the earliest; leaders matched by one entry are
//    ordered among themselves as in 2).
// 2. The rest by score, highest first:
//      expected rate = rate x reliability x (0.5 + 0.5 x idle CPU)
//    (an unknown rate counts as the median of the known rates), quantized to
//    5 % steps so that measurement noise does not reorder near-equal leaders;
//    ties go to the leader nearer the CCM's time zone (around the clock), then
//    to the name.
// Duplicate names: the first occurrence counts, later ones are dropped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cm::push {

struct LeaderFacts {
  std::string name;   // the leader (relay) name the scheduler uses
  std::string site;
  uint32_t cpu_permille = 1000;  // idle CPU: 1000 = all idle, 0 = saturated; larger values count as 1000
  double rate_bps = 0;           // measured in earlier transfers to this leader; 0 = unknown
  double reliability = 1;        // fraction of its past transfers that completed (0..1); 1 = unknown
  int tz_offset_minutes = 0;     // from UTC (location)
};

struct OrderingOptions {
  std::vector<std::string> admin_order;  // leader names or site names, first first
  int ccm_tz_offset_minutes = 0;         // the CCM's own time zone (nearer leaders win ties)
};

struct LeaderOrder {
  std::vector<std::string> names;            // every leader once, best first
  std::vector<std::string> unmatched_admin;  // admin_order entries that matched no leader (to warn about)
};

LeaderOrder OrderLeaders(const std::vector<LeaderFacts>& leaders, const OrderingOptions& options = {});

// The score step of one leader (higher is better); `median_rate` stands in for
// an unknown rate. Exposed for tests and for `cm-push` to explain its order.
int64_t ScoreStep(const LeaderFacts& f, double median_rate);

}  // namespace cm::push
