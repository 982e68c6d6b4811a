#include "pushrun/site_probe.h"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "http/client.h"
#include "pushrun/auth_edge.h"
#include "util/cm_auth.h"
#include "util/json_value.h"

namespace cm::pushrun {

bool CheckStatusAnswer(const std::string& server, const std::string& nonce, const std::string* stamp,
                       const std::string& body, const GroupKey& report_key, int64_t now_s, ProbeAnswer* out) {
  if (!stamp) return false;
  cm_auth::Expectation want;
  want.alg = cm_auth::Alg::kMac;
  want.to = cm_auth::kCcmName;
  want.from = server;
  want.report_key = &report_key;
  // The relay stamps its answer with method "ANSWER" (AuthEdge::StampAnswer).
  if (cm_auth::Verify(stamp, "ANSWER", "/v1/status", body, want, now_s, nullptr) != cm_auth::Verdict::kOk) return false;
  auto v = ParseJson(body);
  if (!v.ok() || !v->is_object() || v->Str("nonce") != nonce) return false;
  const JsonValue& sl = (*v)["site_leader"];
  if (!sl.is_object()) return true;
  std::string addr = sl.Str("address");
  if (auto colon = addr.find(':'); colon != std::string::npos) addr.resize(colon);
  if (!push::ParseIpv4(addr)) return true;
  out->leader_address = addr;
  out->epoch = sl.Uint("epoch");
  return true;
}

std::map<std::string, ProbeAnswer> ProbeSites(const push::SitesConfig& sites, const GroupKey& group_key,
                                              const ProbeOptions& o) {
  std::vector<const push::Server*> all;
  for (const auto& site : sites.sites)
    for (const auto& s : site.servers) all.push_back(&s);
  std::map<std::string, ProbeAnswer> out;
  for (const auto* s : all) out[s->name];
  const GroupKey report_key = cm_auth::ReportKey(group_key);
  std::mutex mu;
  std::atomic<size_t> next{0};
  auto work = [&] {
    http::Client client;
    for (size_t i; (i = next++) < all.size();) {
      const push::Server& s = *all[i];
      ProbeAnswer a;
      std::string nonce = NewNonce();
      auto r = client.Call("GET", s.url + "/v1/status?nonce=" + nonce, "", o.timeout);
      if (!r.ok()) {
        a.error = r.status().message();
      } else {
        a.up = true;
        CheckStatusAnswer(s.name, nonce, r->header(cm_auth::kHeaderLower), r->body, report_key, WallSeconds(), &a);
      }
      std::lock_guard<std::mutex> l(mu);
      out[s.name] = std::move(a);
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 0; i < std::min(o.threads, all.size()); ++i) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  return out;
}

std::map<std::string, std::string> ElectedLeaders(const push::SitesConfig& sites,
                                                  const std::map<std::string, ProbeAnswer>& answers) {
  std::map<std::string, std::string> out;
  for (const auto& site : sites.sites) {
    uint64_t best = 0;
    for (const auto& s : site.servers) {
      auto it = answers.find(s.name);
      if (it == answers.end() || it->second.leader_address.empty()) continue;
      const push::Server* l = sites.ServerByAddress(it->second.leader_address);
      if (!l || l->site != site.name) continue;
      auto la = answers.find(l->name);
      if (la == answers.end() || !la->second.up) continue;  // elected but not answering: not first
      if (out[site.name].empty() || it->second.epoch > best) {
        out[site.name] = l->name;
        best = it->second.epoch;
      }
    }
    if (out[site.name].empty()) out.erase(site.name);
  }
  return out;
}

}  // namespace cm::pushrun
