#include "push/messages.h"

#include "util/json.h"

namespace cm::push {
namespace {

template <typename E, size_t N>
std::optional<E> ParseName(std::string_view name, const char* const (&names)[N]) {
  for (size_t i = 0; i < N; ++i)
    if (name == names[i]) return static_cast<E>(i);
  return std::nullopt;
}

// Indexed by the enums' values; the state names are stored in the database.
constexpr const char* kServerStateNames[] = {"pending",   "fetching", "received",   "staged",
                                             "committed", "failed",   "rolled-back"};
constexpr const char* kKindNames[] = {"stage", "commit"};
constexpr const char* kViaNames[] = {"", "multicast", "unicast", "leader", "ccm"};

Result<JsonValue> Object(std::string_view json, const char* what) {
  auto v = ParseJson(json);
  if (!v.ok()) return Error(Code::kCorrupt, std::string(what) + ": " + v.status().message());
  if (!v->is_object()) return Error(Code::kCorrupt, std::string(what) + ": not a JSON object");
  return v;
}

bool IsHashHex(std::string_view h) {
  if (h.size() != 64) return false;
  for (char c : h)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

Status Need(bool ok, const char* what, const char* field) {
  if (ok) return Status::Ok();
  return Error(Code::kCorrupt, std::string(what) + ": missing or bad \"" + field + "\"");
}

Status Kind(const JsonValue& v, const char* what, TransferKind* out) {
  auto k = ParseTransferKind(v.Str("kind", "stage"));
  CM_RETURN_IF_ERROR(Need(k.has_value(), what, "kind"));
  *out = *k;
  return Status::Ok();
}

std::string EncodeSealed(const Sealed& x) { return JsonObject().Str("body", x.body).Str("auth", x.auth).Build(); }

Sealed SealedFromJson(const JsonValue& v) {
  if (!v.is_object()) return {};
  return Sealed{v.Str("body"), v.Str("auth")};
}

}  // namespace

const char* ServerStateName(ServerState s) { return kServerStateNames[static_cast<int>(s)]; }
std::optional<ServerState> ParseServerState(std::string_view n) {
  return ParseName<ServerState>(n, kServerStateNames);
}
const char* TransferKindName(TransferKind k) { return kKindNames[static_cast<int>(k)]; }
std::optional<TransferKind> ParseTransferKind(std::string_view n) { return ParseName<TransferKind>(n, kKindNames); }
const char* ViaName(Via v) { return kViaNames[static_cast<int>(v)]; }
Via ParseVia(std::string_view n) { return ParseName<Via>(n, kViaNames).value_or(Via::kNone); }

std::string EncodeError(std::string_view message) { return JsonObject().Str("error", message).Build(); }
std::string EncodeDuplicate(std::string_view message) {
  return JsonObject().Str("error", message).Bool("duplicate", true).Build();
}
bool IsDuplicateAnswer(int status, std::string_view body) {
  if (status != 409) return false;
  auto v = ParseJson(body);
  return v.ok() && v->is_object() && v->Bool("duplicate");
}
std::string EncodeAck() { return JsonObject().Bool("ok", true).Build(); }

std::string Encode(const FetchOrder& o) {
  JsonArray members;
  for (const auto& m : o.members) {
    JsonObject mo;
    mo.Str("name", m.name).Str("url", m.url);
    if (!m.expect.body.empty() || !m.expect.auth.empty()) mo.Raw("expect", EncodeSealed(m.expect));
    members.Raw(mo.Build());
  }
  return JsonObject()
      .Int("v", kProtocolVersion)
      .Uint("serial", o.serial)
      .Str("job", o.job)
      .Str("kind", TransferKindName(o.kind))
      .Uint("size", o.size)
      .Str("source", o.source)
      .Str("source_name", o.source_name)
      .Str("ccm", o.ccm)
      .Str("ccm_id", o.ccm_id)
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
  CM_RETURN_IF_ERROR(Kind(*v, "fetch order", &o.kind));
  o.size = v->Uint("size");
  o.source = v->Str("source");
  o.source_name = v->Str("source_name");
  o.ccm = v->Str("ccm");
  o.ccm_id = v->Str("ccm_id");
  o.relay = v->Str("relay");
  o.site = v->Str("site");
  o.group = v->Str("group");
  o.serve = v->Bool("serve", true);
  o.stream = v->Bool("stream", true);
  for (const auto& m : (*v)["members"].items()) {
    Member mem{m.Str("name"), m.Str("url"), SealedFromJson(m["expect"])};
    CM_RETURN_IF_ERROR(Need(!mem.name.empty() && !mem.url.empty(), "fetch order", "members"));
    o.members.push_back(std::move(mem));
  }
  CM_RETURN_IF_ERROR(Need(o.serial > 0, "fetch order", "serial"));
  CM_RETURN_IF_ERROR(Need(!o.source.empty(), "fetch order", "source"));
  return o;
}

std::string Encode(const Expect& e) {
  return JsonObject()
      .Int("v", kProtocolVersion)
      .Uint("serial", e.serial)
      .Str("job", e.job)
      .Str("kind", TransferKindName(e.kind))
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
  CM_RETURN_IF_ERROR(Kind(*v, "expect", &e.kind));
  e.size = v->Uint("size");
  e.name = v->Str("name");
  e.leader = v->Str("leader");
  e.leader_url = v->Str("leader_url");
  e.group = v->Str("group");
  CM_RETURN_IF_ERROR(Need(e.serial > 0, "expect", "serial"));
  CM_RETURN_IF_ERROR(Need(!e.leader_url.empty(), "expect", "leader_url"));
  return e;
}

std::string Encode(const ServerResult& r) {
  JsonObject o;
  o.Str("name", r.name).Str("state", ServerStateName(r.state)).Str("error", r.error).Str("via", ViaName(r.via));
  if (r.apply_exit != 0) o.Int("apply_exit", r.apply_exit);
  if (!r.release.empty()) o.Str("release", r.release);
  if (!r.manifest.empty()) o.Str("manifest", r.manifest);
  return o.Build();
}

Result<ServerResult> ParseServerResult(const JsonValue& v) {
  ServerResult r;
  r.name = v.Str("name");
  auto st = ParseServerState(v.Str("state"));
  r.error = v.Str("error");
  r.via = ParseVia(v.Str("via"));
  r.release = v.Str("release");
  r.manifest = v.Str("manifest");
  CM_RETURN_IF_ERROR(Need(r.manifest.empty() || IsHashHex(r.manifest), "server result", "manifest"));
  int64_t code = v.Int("apply_exit", 0);
  CM_RETURN_IF_ERROR(Need(!r.name.empty(), "server result", "name"));
  CM_RETURN_IF_ERROR(Need(st == ServerState::kStaged || st == ServerState::kCommitted || st == ServerState::kFailed,
                          "server result", "state"));
  CM_RETURN_IF_ERROR(Need(code >= 0 && code < 256, "server result", "apply_exit"));
  r.state = *st;
  r.apply_exit = static_cast<int>(code);
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

std::string Encode(const Progress& p) {
  return JsonObject()
      .Uint("serial", p.serial)
      .Str("relay", p.relay)
      .Uint("verified", p.verified)
      .Uint("size", p.size)
      .Bool("complete", p.complete)
      .Build();
}

Result<Progress> ParseProgress(std::string_view json) {
  auto v = Object(json, "progress");
  if (!v.ok()) return v.status();
  Progress p{v->Uint("serial"), v->Str("relay"), v->Uint("verified"), v->Uint("size"), v->Bool("complete")};
  CM_RETURN_IF_ERROR(Need(p.serial > 0, "progress", "serial"));
  CM_RETURN_IF_ERROR(Need(!p.relay.empty(), "progress", "relay"));
  return p;
}

std::string Encode(const NextAsk& a) {
  return JsonObject()
      .Uint("serial", a.serial)
      .Str("relay", a.relay)
      .Uint("verified", a.verified)
      .Bool("complete", a.complete)
      .Build();
}

Result<NextAsk> ParseNextAsk(std::string_view json) {
  auto v = Object(json, "next");
  if (!v.ok()) return v.status();
  NextAsk a{v->Uint("serial"), v->Str("relay"), v->Uint("verified"), v->Bool("complete")};
  CM_RETURN_IF_ERROR(Need(a.serial > 0, "next", "serial"));
  CM_RETURN_IF_ERROR(Need(!a.relay.empty(), "next", "relay"));
  return a;
}

std::string Encode(const NextAnswer& a) {
  switch (a.kind) {
    case NextAnswer::Kind::kNext: {
      JsonObject next;
      next.Str("relay", a.relay).Str("url", a.url).Raw("order", Encode(a.order));
      if (!a.sealed.body.empty() || !a.sealed.auth.empty()) next.Raw("sealed", EncodeSealed(a.sealed));
      return JsonObject().Raw("next", next.Build()).Build();
    }
    case NextAnswer::Kind::kRetry:
      return JsonObject().Int("retry_ms", a.retry_ms).Build();
    case NextAnswer::Kind::kNoneLeft:
      break;
  }
  return JsonObject().Bool("none_left", true).Build();
}

Result<NextAnswer> ParseNextAnswer(std::string_view json) {
  auto v = Object(json, "next answer");
  if (!v.ok()) return v.status();
  NextAnswer a;
  if (v->Bool("none_left")) return a;
  const JsonValue& next = (*v)["next"];
  if (next.is_object()) {
    a.kind = NextAnswer::Kind::kNext;
    a.relay = next.Str("relay");
    a.url = next.Str("url");
    auto o = FetchOrderFromJson(next["order"]);
    if (!o.ok()) return o.status();
    a.order = std::move(*o);
    a.sealed = SealedFromJson(next["sealed"]);
    CM_RETURN_IF_ERROR(Need(!a.relay.empty() && !a.url.empty(), "next answer", "next"));
    return a;
  }
  a.kind = NextAnswer::Kind::kRetry;
  a.retry_ms = v->Int("retry_ms", 500);
  CM_RETURN_IF_ERROR(Need(a.retry_ms >= 0, "next answer", "retry_ms"));
  return a;
}

std::string Encode(const SourceFailed& s) {
  return JsonObject()
      .Uint("serial", s.serial)
      .Str("relay", s.relay)
      .Str("source", s.source)
      .Str("source_url", s.source_url)
      .Uint("verified", s.verified)
      .Str("error", s.error)
      .Build();
}

Result<SourceFailed> ParseSourceFailed(std::string_view json) {
  auto v = Object(json, "source-failed");
  if (!v.ok()) return v.status();
  SourceFailed s{v->Uint("serial"), v->Str("relay"), v->Str("source"), v->Str("source_url"), v->Uint("verified"),
                 v->Str("error")};
  CM_RETURN_IF_ERROR(Need(s.serial > 0, "source-failed", "serial"));
  CM_RETURN_IF_ERROR(Need(!s.relay.empty(), "source-failed", "relay"));
  return s;
}

std::string Encode(const SourceAnswer& a) {
  return JsonObject().Str("source", a.source_url).Str("source_name", a.source_name).Build();
}

Result<SourceAnswer> ParseSourceAnswer(std::string_view json) {
  auto v = Object(json, "source answer");
  if (!v.ok()) return v.status();
  SourceAnswer a{v->Str("source"), v->Str("source_name")};
  CM_RETURN_IF_ERROR(Need(!a.source_url.empty(), "source answer", "source"));
  return a;
}

std::string Encode(const NotifyFailed& n) {
  return JsonObject().Uint("serial", n.serial).Str("from", n.from).Str("to", n.to).Str("error", n.error).Build();
}

Result<NotifyFailed> ParseNotifyFailed(std::string_view json) {
  auto v = Object(json, "notify-failed");
  if (!v.ok()) return v.status();
  NotifyFailed n{v->Uint("serial"), v->Str("from"), v->Str("to"), v->Str("error")};
  CM_RETURN_IF_ERROR(Need(n.serial > 0, "notify-failed", "serial"));
  CM_RETURN_IF_ERROR(Need(!n.to.empty(), "notify-failed", "to"));
  return n;
}

std::string Encode(const RelayFailed& f) {
  return JsonObject()
      .Uint("serial", f.serial)
      .Str("relay", f.relay)
      .Str("error", f.error)
      .Int("apply_exit", f.apply_exit)
      .Bool("local", f.local)
      .Build();
}

Result<RelayFailed> ParseRelayFailed(std::string_view json) {
  auto v = Object(json, "relay-failed");
  if (!v.ok()) return v.status();
  RelayFailed f;
  f.serial = v->Uint("serial");
  f.relay = v->Str("relay");
  f.error = v->Str("error");
  int64_t code = v->Int("apply_exit", 0);
  f.local = v->Bool("local", true);
  CM_RETURN_IF_ERROR(Need(f.serial > 0, "relay-failed", "serial"));
  CM_RETURN_IF_ERROR(Need(!f.relay.empty(), "relay-failed", "relay"));
  CM_RETURN_IF_ERROR(Need(code >= 0 && code < 256, "relay-failed", "apply_exit"));
  f.apply_exit = static_cast<int>(code);
  return f;
}

std::string EncodeLiveTree(const LiveTree& t) {
  auto list = [](const std::vector<std::string>& v) {
    JsonArray a;
    for (const auto& p : v) a.Str(p);
    return a.Build();
  };
  JsonObject o;
  o.Str("release", t.release).Uint("release_serial", t.release_serial).Str("manifest", t.manifest);
  o.Str("live_manifest", t.live_manifest).Bool("ok", t.ok);
  o.Raw("changed", list(t.changed)).Raw("missing", list(t.missing)).Raw("extra", list(t.extra));
  o.Bool("truncated", t.truncated);
  if (t.last_serial) o.Uint("last_serial", t.last_serial);
  return o.Build();
}

Result<LiveTree> ParseLiveTree(const JsonValue& v) {
  if (!v.is_object()) return Error(Code::kCorrupt, "live tree: not an object");
  LiveTree t;
  t.release = v.Str("release");
  t.release_serial = v.Uint("release_serial");
  t.manifest = v.Str("manifest");
  t.live_manifest = v.Str("live_manifest");
  t.ok = v.Bool("ok", true);
  t.truncated = v.Bool("truncated");
  t.last_serial = v.Uint("last_serial");
  CM_RETURN_IF_ERROR(Need(t.manifest.empty() || IsHashHex(t.manifest), "live tree", "manifest"));
  CM_RETURN_IF_ERROR(Need(IsHashHex(t.live_manifest), "live tree", "live_manifest"));
  auto list = [&](const char* key, std::vector<std::string>* out) -> Status {
    const auto& items = v[key].items();
    CM_RETURN_IF_ERROR(Need(items.size() <= LiveTree::kMaxLivePaths, "live tree", key));
    for (const auto& p : items) {
      CM_RETURN_IF_ERROR(Need(p.kind() == JsonValue::Kind::kString && !p.AsString().empty(), "live tree", key));
      out->push_back(p.AsString());
    }
    return Status::Ok();
  };
  CM_RETURN_IF_ERROR(list("changed", &t.changed));
  CM_RETURN_IF_ERROR(list("missing", &t.missing));
  CM_RETURN_IF_ERROR(list("extra", &t.extra));
  return t;
}

std::string Encode(const RelayStatus& s) {
  JsonArray transfers;
  for (const auto& t : s.transfers)
    transfers.Raw(JsonObject()
                      .Uint("serial", t.serial)
                      .Str("state", t.state)
                      .Uint("verified", t.verified)
                      .Uint("size", t.size)
                      .Bool("complete", t.complete)
                      .Str("source", t.source)
                      .Build());
  JsonObject o;
  o.Str("name", s.name).Raw("transfers", transfers.Build());
  if (s.site_leader) {
    JsonObject l;
    l.Str("address", s.site_leader->address).Uint("epoch", s.site_leader->epoch);
    if (!s.site_leader->members.empty()) {
      JsonArray m;
      for (const SiteMember& x : s.site_leader->members)
        m.Raw(JsonObject().Str("name", x.name).Str("address", x.address).Build());
      l.Raw("members", m.Build());
    }
    o.Raw("site_leader", l.Build());
  }
  if (s.live) o.Raw("live", EncodeLiveTree(*s.live));
  if (!s.nonce.empty()) o.Str("nonce", s.nonce);
  return o.Build();
}

Result<RelayStatus> ParseRelayStatus(std::string_view json) {
  auto v = Object(json, "relay status");
  if (!v.ok()) return v.status();
  RelayStatus s;
  s.name = v->Str("name");
  for (const auto& t : (*v)["transfers"].items()) {
    TransferStatus ts{t.Uint("serial"), t.Str("state"), t.Uint("verified"), t.Uint("size"), t.Bool("complete"),
                      t.Str("source")};
    CM_RETURN_IF_ERROR(Need(ts.serial > 0, "relay status", "transfers"));
    s.transfers.push_back(std::move(ts));
  }
  const JsonValue& sl = (*v)["site_leader"];
  if (sl.is_object()) {
    SiteLeader l{sl.Str("address"), sl.Uint("epoch"), {}};
    CM_RETURN_IF_ERROR(Need(!l.address.empty(), "relay status", "site_leader"));
    for (const auto& m : sl["members"].items()) {
      CM_RETURN_IF_ERROR(Need(l.members.size() < 1000, "relay status", "site_leader.members"));
      SiteMember x{m.Str("name"), m.Str("address")};
      CM_RETURN_IF_ERROR(Need(!x.name.empty() && !x.address.empty(), "relay status", "site_leader.members"));
      l.members.push_back(std::move(x));
    }
    s.site_leader = std::move(l);
  }
  if ((*v)["live"].is_object()) {
    auto t = ParseLiveTree((*v)["live"]);
    if (!t.ok()) return t.status();
    s.live = std::move(*t);
  }
  s.nonce = v->Str("nonce");
  return s;
}

bool IsStatusNonce(std::string_view nonce) {
  if (nonce.size() < 16 || nonce.size() > 64) return false;
  for (char c : nonce)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

}  // namespace cm::push
