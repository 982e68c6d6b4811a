#include "pushrun/site_probe.h"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "http/client.h"
#include "pushrun/auth_edge.h"
#include "push/messages.h"

namespace cm::pushrun {

bool CheckStatusAnswer(const AuthEdge& auth, const std::string& server, const std::string& nonce,
                       const http::HeaderMap& headers, const std::string& body, ProbeAnswer* out) {
  if (auth.CheckStampedAnswer(headers, server, "/v1/status", body) != push::auth::Verdict::kOk) return false;
  auto st = push::ParseRelayStatus(body);
  if (!st.ok() || st->nonce != nonce) return false;
  if (st->site_leader && push::ParseIpv4(st->site_leader->address)) {
    out->leader_address = st->site_leader->address;
    out->epoch = st->site_leader->epoch;
    out->members = st->site_leader->members;
  }
  out->live = st->live;
  return true;
}

std::map<std::string, ProbeAnswer> ProbeSites(const push::SitesConfig& sites, const AuthEdge& auth,
                                              const ProbeOptions& o) {
  std::vector<const push::Server*> all;
  for (const auto& site : sites.sites)
    for (const auto& s : site.servers) all.push_back(&s);
  std::map<std::string, ProbeAnswer> out;
  for (const auto* s : all) out[s->name];
  std::mutex mu;
  std::atomic<size_t> next{0};
  auto work = [&] {
    http::Client client;
    for (size_t i; (i = next++) < all.size();) {
      const push::Server& s = *all[i];
      ProbeAnswer a;
      std::string nonce = NewNonce();
      auto r = client.Call("GET", s.url + "/v1/status?nonce=" + nonce + (o.live ? "&live=1" : ""), "",
                           o.live ? o.live_timeout : o.timeout);
      if (!r.ok()) {
        a.error = r.status().message();
      } else {
        a.up = true;
        CheckStatusAnswer(auth, s.name, nonce, r->headers, r->body, &a);
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
