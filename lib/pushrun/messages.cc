#include "pushrun/messages.h"

#include "util/json.h"

namespace cm::pushrun {
namespace {

Result<JsonValue> Object(std::string_view json, const char* what) {
  auto v = ParseJson(json);
  if (!v.ok()) return Error(Code::kCorrupt, std::string(what) + ": " + v.status().message());
  if (!v->is_object()) return Error(Code::kCorrupt, std::string(what) + ": not a JSON object");
  return v;
}

Status Need(bool ok, const char* what, const char* field) {
  if (ok) return Status::Ok();
  return Error(Code::kCorrupt, std::string(what) + ": missing or bad \"" + field + "\"");
}

}  // namespace

std::string Encode(const FetchOrder& o) {
  JsonArray members;
  for (const auto& m : o.members) members.Raw(JsonObject().Str("name", m.name).Str("url", m.url).Build());
  return JsonObject()
      .Int("v", kProtocolVersion)
      .Uint("serial", o.serial)
      .Str("job", o.job)
      .Str("kind", o.kind)
      .Uint("size", o.size)
      .Str("source", o.source)
      .Str("source_name", o.source_name)
      .Str("ccm", o.ccm)
      .Str("relay", o.relay)
      .Str("site", o.site)
      .Str("group", o.group)
      .Raw("members", members.Build())
      .Bool("serve", o.serve)
      .Bool("stream", o.stream)
      .Build();
}

Result<FetchOrder> ParseFetchOrder(std::string_view json) {
  auto v = Object(json, "fetch order");
  if (!v.ok()) return v.status();
  return FetchOrderFromJson(*v);
}

Result<FetchOrder> FetchOrderFromJson(const JsonValue& json) {
  const JsonValue* v = &json;
  if (!v->is_object()) return Error(Code::kCorrupt, "fetch order: not a JSON object");
  FetchOrder o;
  o.serial = v->Uint("serial");
  o.job = v->Str("job");
  o.kind = v->Str("kind", "stage");
  o.size = v->Uint("size");
  o.source = v->Str("source");
  o.source_name = v->Str("source_name");
  o.ccm = v->Str("ccm");
  o.relay = v->Str("relay");
  o.site = v->Str("site");
  o.group = v->Str("group");
  o.serve = v->Bool("serve", true);
  o.stream = v->Bool("stream", true);
  for (const auto& m : (*v)["members"].items()) {
    Member mem{m.Str("name"), m.Str("url")};
    CM_RETURN_IF_ERROR(Need(!mem.name.empty() && !mem.url.empty(), "fetch order", "members"));
    o.members.push_back(std::move(mem));
  }
  CM_RETURN_IF_ERROR(Need(o.serial > 0, "fetch order", "serial"));
  CM_RETURN_IF_ERROR(Need(!o.source.empty(), "fetch order", "source"));
  CM_RETURN_IF_ERROR(Need(o.kind == "stage" || o.kind == "commit", "fetch order", "kind"));
  return o;
}

std::string Encode(const Expect& e) {
  return JsonObject()
      .Int("v", kProtocolVersion)
      .Uint("serial", e.serial)
      .Str("job", e.job)
      .Str("kind", e.kind)
      .Uint("size", e.size)
      .Str("name", e.name)
      .Str("leader", e.leader)
      .Str("leader_url", e.leader_url)
      .Str("group", e.group)
      .Build();
}

Result<Expect> ParseExpect(std::string_view json) {
  auto v = Object(json, "expect");
  if (!v.ok()) return v.status();
  Expect e;
  e.serial = v->Uint("serial");
  e.job = v->Str("job");
  e.kind = v->Str("kind", "stage");
  e.size = v->Uint("size");
  e.name = v->Str("name");
  e.leader = v->Str("leader");
  e.leader_url = v->Str("leader_url");
  e.group = v->Str("group");
  CM_RETURN_IF_ERROR(Need(e.serial > 0, "expect", "serial"));
  CM_RETURN_IF_ERROR(Need(!e.leader_url.empty(), "expect", "leader_url"));
  CM_RETURN_IF_ERROR(Need(e.kind == "stage" || e.kind == "commit", "expect", "kind"));
  return e;
}

std::string Encode(const ServerResult& r) {
  return JsonObject().Str("name", r.name).Str("state", r.state).Str("error", r.error).Str("via", r.via).Build();
}

Result<ServerResult> ParseServerResult(const JsonValue& v) {
  ServerResult r{v.Str("name"), v.Str("state"), v.Str("error"), v.Str("via")};
  CM_RETURN_IF_ERROR(Need(!r.name.empty(), "server result", "name"));
  CM_RETURN_IF_ERROR(
      Need(r.state == "staged" || r.state == "committed" || r.state == "failed", "server result", "state"));
  return r;
}

std::string Encode(const MemberReport& r) {
  return JsonObject().Int("v", kProtocolVersion).Uint("serial", r.serial).Raw("result", Encode(r.result)).Build();
}

Result<MemberReport> ParseMemberReport(std::string_view json) {
  auto v = Object(json, "member report");
  if (!v.ok()) return v.status();
  MemberReport r;
  r.serial = v->Uint("serial");
  CM_RETURN_IF_ERROR(Need(r.serial > 0, "member report", "serial"));
  auto res = ParseServerResult((*v)["result"]);
  if (!res.ok()) return res.status();
  r.result = std::move(*res);
  return r;
}

std::string Encode(const SiteReport& r) {
  JsonArray servers;
  for (const auto& s : r.servers) servers.Raw(Encode(s));
  return JsonObject()
      .Int("v", kProtocolVersion)
      .Uint("serial", r.serial)
      .Str("site", r.site)
      .Str("leader", r.leader)
      .Raw("servers", servers.Build())
      .Build();
}

Result<SiteReport> ParseSiteReport(std::string_view json) {
  auto v = Object(json, "site report");
  if (!v.ok()) return v.status();
  SiteReport r;
  r.serial = v->Uint("serial");
  r.site = v->Str("site");
  r.leader = v->Str("leader");
  CM_RETURN_IF_ERROR(Need(r.serial > 0, "site report", "serial"));
  for (const auto& s : (*v)["servers"].items()) {
    auto res = ParseServerResult(s);
    if (!res.ok()) return res.status();
    r.servers.push_back(std::move(*res));
  }
  return r;
}

}  // namespace cm::pushrun
