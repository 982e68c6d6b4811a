// New servers from cm-leader membership (pushrun/joined.h).
#include "pushrun/joined.h"

#include <cctype>

#include "util/file_util.h"
#include "util/json.h"
#include "util/json_value.h"

namespace cm::pushrun {

namespace {

std::string RecordPath(const std::string& state_dir) { return state_dir + "/joined.json"; }

// A name a sites file could hold and CM-Auth can carry.
bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

bool Known(const push::SitesConfig& sites, const JoinedServer& j) {
  auto ip = push::ParseIpv4(j.address);
  return sites.FindServer(j.name) || !ip || sites.ServerByIp(*ip);
}

Result<std::vector<JoinedServer>> Load(const std::string& state_dir) {
  std::vector<JoinedServer> v;
  auto text = ReadFileToString(RecordPath(state_dir));
  if (!text.ok()) return v;  // none recorded
  auto j = ParseJson(*text);
  if (!j.ok() || !j->is_object() || j->Int("v") != 1)
    return Error(Code::kCorrupt, RecordPath(state_dir) + ": not a joined-servers record (v 1)");
  for (const auto& s : (*j)["servers"].items()) v.push_back({s.Str("site"), s.Str("name"), s.Str("address")});
  return v;
}

}  // namespace

std::vector<JoinedServer> FindJoiners(const push::SitesConfig& sites, const std::map<std::string, ProbeAnswer>& answers) {
  std::vector<JoinedServer> out;
  for (const auto& site : sites.sites)
    for (const auto& srv : site.servers) {
      auto a = answers.find(srv.name);
      if (a == answers.end()) continue;
      for (const push::SiteMember& m : a->second.members) {
        JoinedServer j{site.name, m.name, m.address};
        if (!ValidName(j.name) || Known(sites, j)) continue;
        bool dup = false;
        for (const auto& o : out) dup = dup || o.name == j.name || o.address == j.address;
        if (!dup) out.push_back(std::move(j));
      }
    }
  return out;
}

Status MergeJoined(push::SitesConfig* sites, const std::string& state_dir) {
  if (state_dir.empty()) return Status::Ok();
  auto rec = Load(state_dir);
  if (!rec.ok()) return rec.status();
  for (const JoinedServer& j : *rec) {
    if (Known(*sites, j)) continue;
    for (auto& site : sites->sites) {
      if (site.name != j.site) continue;
      push::Server s;
      s.name = j.name;
      s.site = site.name;
      s.ip = *push::ParseIpv4(j.address);
      s.address = j.address;
      s.url = "http://" + j.address + ":" + std::to_string(sites->ccm.relay_port);
      s.facts = site.facts;
      site.servers.push_back(std::move(s));
    }
  }
  return Status::Ok();
}

Status RecordJoined(const std::string& state_dir, const std::vector<JoinedServer>& add) {
  if (state_dir.empty() || add.empty()) return Status::Ok();
  auto rec = Load(state_dir);
  if (!rec.ok()) return rec.status();
  for (const JoinedServer& j : add) {
    bool dup = false;
    for (const auto& o : *rec) dup = dup || o.name == j.name;
    if (!dup) rec->push_back(j);
  }
  JsonArray a;
  for (const auto& j : *rec)
    a.Raw(JsonObject().Str("site", j.site).Str("name", j.name).Str("address", j.address).Build());
  return WriteFileAtomic(RecordPath(state_dir), JsonObject().Int("v", 1).Raw("servers", a.Build()).Build() + "\n");
}

}  // namespace cm::pushrun
