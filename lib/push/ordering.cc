#include "push/ordering.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>

namespace cm::push {
namespace {

double MedianKnownRate(const std::vector<LeaderFacts>& leaders) {
  std::vector<double> known;
  for (const LeaderFacts& f : leaders)
    if (f.rate_bps > 0 && std::isfinite(f.rate_bps)) known.push_back(f.rate_bps);
  if (known.empty()) return 1;  // nothing measured: every rate counts the same
  std::sort(known.begin(), known.end());
  size_t m = known.size() / 2;
  return known.size() % 2 ? known[m] : (known[m - 1] + known[m]) / 2;
}

// Minutes between two UTC offsets around the clock (+13:00 and -11:00 are 0 apart).
int TzDistance(int a, int b) {
  int64_t d = std::llabs(static_cast<int64_t>(a) - static_cast<int64_t>(b)) % 1440;
  return static_cast<int>(std::min<int64_t>(d, 1440 - d));
}

}  // namespace

int64_t ScoreStep(const LeaderFacts& f, double median_rate) {
  double rate = f.rate_bps > 0 && std::isfinite(f.rate_bps) ? f.rate_bps : median_rate;
  double rel = std::isfinite(f.reliability) ? std::clamp(f.reliability, 0.0, 1.0) : 1.0;
  double idle = std::min<uint32_t>(f.cpu_permille, 1000) / 1000.0;
  double expected = rate * rel * (0.5 + 0.5 * idle);
  if (!(expected > 0)) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(std::floor(std::log(expected) / std::log(1.05)));
}

LeaderOrder OrderLeaders(const std::vector<LeaderFacts>& leaders, const OrderingOptions& options) {
  std::vector<const LeaderFacts*> uniq;
  std::set<std::string> seen;
  for (const LeaderFacts& f : leaders)
    if (seen.insert(f.name).second) uniq.push_back(&f);

  const size_t kNoEntry = options.admin_order.size();
  struct Key {
    size_t admin;  // index of the first admin entry that matches, kNoEntry if none
    int64_t step;
    int tz_distance;
    const LeaderFacts* f;
  };
  const double median = MedianKnownRate(leaders);
  std::vector<Key> keys;
  LeaderOrder out;
  std::vector<bool> used(options.admin_order.size(), false);
  for (const LeaderFacts* f : uniq) {
    size_t admin = kNoEntry;
    for (size_t i = 0; i < options.admin_order.size(); ++i) {
      const std::string& e = options.admin_order[i];
      if (e == f->name || (!f->site.empty() && e == f->site)) {
        used[i] = true;
        admin = std::min(admin, i);
      }
    }
    keys.push_back({admin, ScoreStep(*f, median), TzDistance(f->tz_offset_minutes, options.ccm_tz_offset_minutes), f});
  }
  std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
    if (a.admin != b.admin) return a.admin < b.admin;
    if (a.step != b.step) return a.step > b.step;
    if (a.tz_distance != b.tz_distance) return a.tz_distance < b.tz_distance;
    return a.f->name < b.f->name;
  });
  for (const Key& k : keys) out.names.push_back(k.f->name);
  for (size_t i = 0; i < used.size(); ++i)
    if (!used[i]) out.unmatched_admin.push_back(options.admin_order[i]);
  return out;
}

}  // namespace cm::push
