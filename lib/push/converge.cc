#include "push/converge.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "delta/manifest.h"

namespace cm::push {

const std::string& EmptyManifestHex() {
  static const std::string hex = ToHex(delta::ManifestHash(delta::Manifest{}));
  return hex;
}

ConvergePlan PlanConvergence(const std::vector<ServerTree>& servers, const std::string& want,
                             const std::function<bool(const std::string&)>& known, const std::string& also_ready) {
  ConvergePlan plan;
  std::map<std::tuple<CatchUp, std::string, std::vector<std::string>>, size_t> index;
  auto add = [&](CatchUp kind, std::string from, std::vector<std::string> unknown, const std::string& server) {
    auto key = std::make_tuple(kind, from, unknown);
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, plan.groups.size()).first;
      plan.groups.push_back(CatchUpGroup{kind, std::move(from), std::move(unknown), {}, 0});
    }
    plan.groups[it->second].servers.push_back(server);
  };
  auto last = [&](size_t group, const ServerTree& s) {
    plan.groups[group].last_serial = std::max(plan.groups[group].last_serial, s.live->last_serial);
  };
  for (const auto& s : servers) {
    if (!s.answered || !s.live) {
      plan.unknown.push_back(s.server);
      continue;
    }
    const LiveTree& t = *s.live;
    if (t.live_manifest == want || (!also_ready.empty() && t.live_manifest == also_ready)) {
      plan.ready.push_back(s.server);
      continue;
    }
    // The tree to start from: the release's recorded manifest, or the empty
    // tree for a root that runs nothing (a new server).
    std::string from = t.release.empty() ? EmptyManifestHex() : t.manifest;
    if (t.release.empty() && (!t.changed.empty() || !t.extra.empty())) from.clear();  // files in no release
    const bool from_known = !from.empty() && (from == EmptyManifestHex() || known(from));
    if (!from_known || t.truncated) {
      add(CatchUp::kReplicate, "", {}, s.server);
      last(index[std::make_tuple(CatchUp::kReplicate, std::string(), std::vector<std::string>())], s);
      continue;
    }
    std::vector<std::string> unknown;
    if (!t.ok) {
      unknown.insert(unknown.end(), t.changed.begin(), t.changed.end());
      unknown.insert(unknown.end(), t.missing.begin(), t.missing.end());
      unknown.insert(unknown.end(), t.extra.begin(), t.extra.end());
      std::sort(unknown.begin(), unknown.end());
      unknown.erase(std::unique(unknown.begin(), unknown.end()), unknown.end());
    }
    auto key = std::make_tuple(CatchUp::kSync, from, unknown);
    add(CatchUp::kSync, from, std::move(unknown), s.server);
    last(index[key], s);
  }
  return plan;
}

}  // namespace cm::push
