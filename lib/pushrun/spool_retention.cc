#include "pushrun/spool_retention.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

namespace cm::pushrun {

namespace {

// "<digits>.cma" or "<digits>.cma.part" -> serial; 0 otherwise.
uint64_t SerialOf(const std::string& name, bool* part) {
  size_t digits = 0;
  while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') ++digits;
  if (digits == 0 || digits > 19) return 0;
  const std::string rest = name.substr(digits);
  if (rest != ".cma" && rest != ".cma.part") return 0;
  *part = rest == ".cma.part";
  return std::stoull(name.substr(0, digits));
}

}  // namespace

std::vector<SpoolFile> ListSpool(const std::string& spool) {
  std::vector<SpoolFile> out;
  DIR* d = opendir(spool.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    SpoolFile f;
    f.serial = SerialOf(e->d_name, &f.part);
    if (f.serial == 0) continue;
    f.path = spool + "/" + e->d_name;
    struct stat st;
    if (lstat(f.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    out.push_back(std::move(f));
  }
  closedir(d);
  return out;
}

RetentionPlan PlanRetention(const std::vector<SpoolFile>& files, int keep) {
  RetentionPlan plan;
  std::map<uint64_t, int64_t> newest;  // serial -> its newest file's mtime
  std::set<uint64_t> complete;
  for (const auto& f : files) {
    auto [it, fresh] = newest.emplace(f.serial, f.mtime_ns);
    if (!fresh) it->second = std::max(it->second, f.mtime_ns);
    if (!f.part) complete.insert(f.serial);
  }
  std::vector<std::pair<int64_t, uint64_t>> order;  // newest first; ties: the larger serial first
  for (const auto& [serial, mtime] : newest) order.push_back({mtime, serial});
  std::sort(order.rbegin(), order.rend());
  for (size_t i = static_cast<size_t>(std::max(keep, 0)); i < order.size(); ++i)
    plan.old_serials.push_back(order[i].second);
  std::reverse(plan.old_serials.begin(), plan.old_serials.end());
  for (const auto& f : files)
    if (f.part && complete.count(f.serial)) plan.stale_parts.push_back(f.path);
  return plan;
}

}  // namespace cm::pushrun
