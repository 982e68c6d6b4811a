#include "push/site_report.h"

#include <algorithm>
#include <set>

#include "util/json.h"
#include "util/json_value.h"

namespace cm::push::inline site_collector {

const char* SitePhaseName(SitePhase p) { return p == SitePhase::kStage ? "stage" : "commit"; }

const char* MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kPending: return "pending";
    case MemberState::kStaged: return "staged";
    case MemberState::kCommitted: return "committed";
    case MemberState::kFailed: return "failed";
  }
  return "?";
}

size_t SiteReport::Count(MemberState s) const {
  return static_cast<size_t>(
      std::count_if(members.begin(), members.end(), [s](const MemberResult& m) { return m.state == s; }));
}

std::string SiteReport::ToJson() const {
  JsonArray list;
  for (const MemberResult& m : members) {
    JsonObject o;
    o.Str("name", m.name).Str("state", MemberStateName(m.state));
    if (!m.reason.empty()) o.Str("reason", m.reason);
    list.Raw(o.Build());
  }
  JsonObject o;
  o.Str("site", site).Str("leader", leader).Str("job", job).Uint("serial", serial);
  o.Str("phase", SitePhaseName(phase)).Bool("complete", complete);
  o.Uint("staged", Count(MemberState::kStaged)).Uint("committed", Count(MemberState::kCommitted));
  o.Uint("failed", Count(MemberState::kFailed)).Uint("pending", Count(MemberState::kPending));
  o.Raw("members", list.Build());
  return o.Build();
}

namespace {

Status Bad(const std::string& what) { return Error(Code::kCorrupt, "site report: " + what); }

bool ReadString(const JsonValue& v, std::string_view key, std::string* out) {
  if (v[key].kind() != JsonValue::Kind::kString) return false;
  *out = v[key].AsString();
  return true;
}

}  // namespace

Result<SiteReport> ParseSiteReport(std::string_view json) {
  auto doc = ParseJson(json);
  if (!doc.ok()) return doc.status();
  const JsonValue& v = *doc;
  if (!v.is_object()) return Bad("not an object");
  SiteReport r;
  std::string phase;
  if (!ReadString(v, "site", &r.site) || !ReadString(v, "leader", &r.leader) || !ReadString(v, "job", &r.job) ||
      !ReadString(v, "phase", &phase))
    return Bad("missing site, leader, job or phase");
  if (phase == "stage") {
    r.phase = SitePhase::kStage;
  } else if (phase == "commit") {
    r.phase = SitePhase::kCommit;
  } else {
    return Bad("unknown phase");
  }
  if (v["serial"].kind() != JsonValue::Kind::kNumber || v["complete"].kind() != JsonValue::Kind::kBool)
    return Bad("missing serial or complete");
  r.serial = v.Uint("serial");
  r.complete = v.Bool("complete");
  if (!v["members"].is_array()) return Bad("missing members");
  std::set<std::string, std::less<>> seen;
  for (const JsonValue& m : v["members"].items()) {
    MemberResult res;
    std::string state;
    if (!m.is_object() || !ReadString(m, "name", &res.name) || !ReadString(m, "state", &state) || res.name.empty())
      return Bad("bad member");
    if (!seen.insert(res.name).second) return Bad("duplicate member " + res.name);
    bool known = false;
    for (MemberState s : {MemberState::kPending, MemberState::kStaged, MemberState::kCommitted, MemberState::kFailed})
      if (state == MemberStateName(s)) {
        res.state = s;
        known = true;
      }
    if (!known) return Bad("unknown member state");
    if (m.Has("reason") && !ReadString(m, "reason", &res.reason)) return Bad("bad member reason");
    r.members.push_back(std::move(res));
  }
  return r;
}

SiteCollector::SiteCollector(SiteReport header, const std::vector<std::string>& members, Micros deadline) :
    report_(std::move(header)), deadline_(deadline) {
  report_.members.clear();
  report_.complete = false;
  for (const std::string& m : members) {
    if (index_.count(m)) continue;
    index_[m] = report_.members.size();
    report_.members.push_back(MemberResult{m});
  }
}

SiteCollector::Accept SiteCollector::OnResult(Micros now, std::string_view member, MemberState state,
                                              std::string reason) {
  auto it = index_.find(member);
  if (it == index_.end()) return Accept::kUnknownMember;
  const MemberState success = report_.phase == SitePhase::kStage ? MemberState::kStaged : MemberState::kCommitted;
  if (state != success && state != MemberState::kFailed) return Accept::kWrongPhase;
  MemberResult& m = report_.members[it->second];
  if (m.state != MemberState::kPending) return Accept::kDuplicate;
  m.state = state;
  m.reason = state == MemberState::kFailed ? std::move(reason) : std::string();
  m.at = now;
  ++answered_;
  return Accept::kRecorded;
}

bool SiteCollector::Ready(Micros now) const { return answered_ == report_.members.size() || now >= deadline_; }

Micros SiteCollector::NextWake() const {
  return answered_ == report_.members.size() ? proto::kNever : deadline_;
}

std::vector<std::string> SiteCollector::Missing() const {
  std::vector<std::string> out;
  for (const MemberResult& m : report_.members)
    if (m.state == MemberState::kPending) out.push_back(m.name);
  return out;
}

SiteReport SiteCollector::Report(Micros now) const {
  SiteReport r = report_;
  r.complete = Ready(now);
  if (!r.complete) return r;
  for (MemberResult& m : r.members) {
    if (m.state != MemberState::kPending) continue;
    m.state = MemberState::kFailed;
    m.reason = std::string(kNoReport);
    m.at = now;
  }
  return r;
}

}  // namespace cm::push::inline site_collector
