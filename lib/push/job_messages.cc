#include "push/job_messages.h"

#include "push/job_chunk.h"

#include <cmath>

#include "util/json.h"
#include "util/json_value.h"

namespace cm::push {
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

// The chunk records' rule (push/job_chunk.h): a job id is also a file name.
bool JobIdOk(const std::string& id) { return IsValidChunkJobId(id); }

// A node reference: -1 (the base) .. kMaxJobServers - 1; -2 (none).
bool RefOk(int64_t r) { return r >= kNoNode && r < static_cast<int64_t>(kMaxJobServers); }

// Rates travel as whole bytes per second (below 2^50).
double Rate(const JsonValue& v, std::string_view key) {
  double r = v.Num(key);
  return std::isfinite(r) && r > 0 ? std::floor(std::min(r, 1e15)) : 0;
}
uint64_t RateOut(double r) { return std::isfinite(r) && r > 0 ? static_cast<uint64_t>(std::min(r, 1e15)) : 0; }

std::string Indexes(const std::vector<PeerIndex>& v) {
  JsonArray a;
  for (PeerIndex p : v) a.Raw(std::to_string(p));
  return a.Build();
}

Status ParseIndexes(const JsonValue& v, const char* what, const char* field, std::vector<PeerIndex>* out) {
  if (v.is_null()) return Status::Ok();
  CM_RETURN_IF_ERROR(Need(v.is_array() && v.items().size() <= kMaxJobServers, what, field));
  for (const JsonValue& x : v.items()) {
    double d = x.AsNumber();
    CM_RETURN_IF_ERROR(Need(x.kind() == JsonValue::Kind::kNumber && d >= 0 && d < kMaxJobServers && d == std::floor(d),
                            what, field));
    out->push_back(static_cast<PeerIndex>(d));
  }
  return Status::Ok();
}

const char* StateText(EntryState s) {
  switch (s) {
    case EntryState::kNew: return "new";
    case EntryState::kInProgress: return "in-progress";
    case EntryState::kDone: return "done";
    case EntryState::kFailed: return "failed";
  }
  return "new";
}

std::optional<EntryState> ParseState(std::string_view s) {
  for (EntryState x : {EntryState::kNew, EntryState::kInProgress, EntryState::kDone, EntryState::kFailed}) {
    if (s == StateText(x)) return x;
  }
  return std::nullopt;
}

}  // namespace

std::string Encode(const JobObject& o) {
  JsonArray servers;
  for (const JobServerInfo& s : o.servers) {
    servers.Raw(JsonObject().Str("name", s.name).Str("site", s.site).Str("url", s.url).Uint("up_bps", RateOut(s.up_bps)).Build());
  }
  return JsonObject()
      .Int("version", kJobProtocolVersion)
      .Str("job", o.job)
      .Str("base_url", o.base_url)
      .Raw("servers", servers.Build())
      .Build();
}

Result<JobObject> ParseJobObject(std::string_view json) {
  auto v = Object(json, "job object");
  if (!v.ok()) return v.status();
  JobObject o{v->Str("job"), v->Str("base_url"), {}};
  CM_RETURN_IF_ERROR(Need(v->Int("version", -1) == kJobProtocolVersion, "job object", "version"));
  CM_RETURN_IF_ERROR(Need(JobIdOk(o.job), "job object", "job"));
  CM_RETURN_IF_ERROR(Need(!o.base_url.empty(), "job object", "base_url"));
  const JsonValue& servers = (*v)["servers"];
  CM_RETURN_IF_ERROR(Need(servers.is_array() && !servers.items().empty() && servers.items().size() <= kMaxJobServers,
                          "job object", "servers"));
  for (const JsonValue& s : servers.items()) {
    CM_RETURN_IF_ERROR(Need(s.is_object(), "job object", "servers"));
    JobServerInfo info{s.Str("name"), s.Str("site"), s.Str("url"), Rate(s, "up_bps")};
    CM_RETURN_IF_ERROR(Need(!info.name.empty() && !info.url.empty(), "job object", "servers"));
    o.servers.push_back(std::move(info));
  }
  return o;
}

std::vector<FanPeer> PeersOf(const JobObject& o) {
  std::vector<FanPeer> peers;
  peers.reserve(o.servers.size());
  for (const JobServerInfo& s : o.servers) peers.push_back(FanPeer{s.name, s.site, s.up_bps});
  return peers;
}

bool JobOfferBody::operator==(const JobOfferBody& o) const {
  return job == o.job && from_url == o.from_url && offer.from == o.offer.from && offer.share == o.offer.share &&
         offer.rate_bps == o.offer.rate_bps && offer.from_pos == o.offer.from_pos &&
         offer.from_complete == o.offer.from_complete && offer.relieve == o.offer.relieve;
}

std::string Encode(const JobOfferBody& b) {
  return JsonObject()
      .Str("job", b.job)
      .Int("from", b.offer.from)
      .Str("from_url", b.from_url)
      .Raw("share", Indexes(b.offer.share))
      .Uint("rate_bps", RateOut(b.offer.rate_bps))
      .Uint("from_pos", b.offer.from_pos)
      .Bool("from_complete", b.offer.from_complete)
      .Bool("relieve", b.offer.relieve)
      .Build();
}

Result<JobOfferBody> ParseJobOffer(std::string_view json) {
  auto v = Object(json, "job offer");
  if (!v.ok()) return v.status();
  JobOfferBody b;
  b.job = v->Str("job");
  b.from_url = v->Str("from_url");
  b.offer.from = v->Int("from", kNoNode);
  b.offer.rate_bps = Rate(*v, "rate_bps");
  b.offer.from_pos = v->Uint("from_pos");
  b.offer.from_complete = v->Bool("from_complete");
  b.offer.relieve = v->Bool("relieve");
  CM_RETURN_IF_ERROR(Need(JobIdOk(b.job), "job offer", "job"));
  CM_RETURN_IF_ERROR(Need(RefOk(b.offer.from) && b.offer.from != kNoNode, "job offer", "from"));
  CM_RETURN_IF_ERROR(ParseIndexes((*v)["share"], "job offer", "share", &b.offer.share));
  return b;
}

std::string Encode(OfferAnswer a) {
  const char* t = a == OfferAnswer::kAccepted ? "accepted" : a == OfferAnswer::kSwitched ? "switched" : "declined";
  return JsonObject().Str("answer", t).Build();
}

Result<OfferAnswer> ParseOfferAnswer(std::string_view json) {
  auto v = Object(json, "offer answer");
  if (!v.ok()) return v.status();
  std::string a = v->Str("answer");
  if (a == "accepted") return OfferAnswer::kAccepted;
  if (a == "switched") return OfferAnswer::kSwitched;
  if (a == "declined") return OfferAnswer::kDeclined;
  return Error(Code::kCorrupt, "offer answer: missing or bad \"answer\"");
}

namespace {

bool SameEntries(const std::vector<EntryReport>& a, const std::vector<EntryReport>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].entry != b[i].entry || a[i].state != b[i].state || a[i].error != b[i].error) return false;
  }
  return true;
}

std::string EncodeEntries(const std::vector<EntryReport>& list) {
  JsonArray entries;
  for (const EntryReport& e : list) {
    entries.Raw(JsonObject().Uint("entry", e.entry).Str("state", StateText(e.state)).Str("error", e.error).Build());
  }
  return entries.Build();
}

Status ParseEntries(const JsonValue& entries, const char* what, std::vector<EntryReport>* out) {
  if (entries.is_null()) return Status::Ok();
  CM_RETURN_IF_ERROR(Need(entries.is_array() && entries.items().size() <= kMaxJobServers, what, "entries"));
  for (const JsonValue& e : entries.items()) {
    CM_RETURN_IF_ERROR(Need(e.is_object(), what, "entries"));
    auto st = ParseState(e.Str("state"));
    uint64_t id = e.Uint("entry");
    CM_RETURN_IF_ERROR(Need(st.has_value() && id > 0 && id <= UINT32_MAX, what, "entries"));
    out->push_back(EntryReport{static_cast<uint32_t>(id), *st, e.Str("error")});
  }
  return Status::Ok();
}

// The job id and the sending node every call to the base names.
Status JobAndNode(const JsonValue& v, const char* what, std::string* job, PeerIndex* node) {
  *job = v.Str("job");
  uint64_t n = v.Uint("node", kMaxJobServers);
  CM_RETURN_IF_ERROR(Need(JobIdOk(*job), what, "job"));
  CM_RETURN_IF_ERROR(Need(n < kMaxJobServers, what, "node"));
  *node = static_cast<PeerIndex>(n);
  return Status::Ok();
}

}  // namespace

bool JobProgressBody::operator==(const JobProgressBody& o) const {
  auto same = [](const JobProgressMsg& a, const JobProgressMsg& b) {
    return a.node == b.node && a.pos == b.pos && a.complete == b.complete && a.source == b.source &&
           a.rx_bps == b.rx_bps && a.tx_bps == b.tx_bps && a.children == b.children && a.kept == b.kept;
  };
  return job == o.job && same(progress, o.progress) && SameEntries(entries, o.entries);
}

std::string Encode(const JobProgressBody& b) {
  const JobProgressMsg& p = b.progress;
  return JsonObject()
      .Str("job", b.job)
      .Uint("node", p.node)
      .Uint("pos", p.pos)
      .Bool("complete", p.complete)
      .Int("source", p.source)
      .Uint("rx_bps", RateOut(p.rx_bps))
      .Uint("tx_bps", RateOut(p.tx_bps))
      .Raw("children", Indexes(p.children))
      .Uint("kept", p.kept)
      .Raw("entries", EncodeEntries(b.entries))
      .Build();
}

Result<JobProgressBody> ParseJobProgress(std::string_view json) {
  auto v = Object(json, "job progress");
  if (!v.ok()) return v.status();
  JobProgressBody b;
  JobProgressMsg& p = b.progress;
  CM_RETURN_IF_ERROR(JobAndNode(*v, "job progress", &b.job, &p.node));
  p.pos = v->Uint("pos");
  p.complete = v->Bool("complete");
  p.source = v->Int("source", kNoNode);
  p.rx_bps = Rate(*v, "rx_bps");
  p.tx_bps = Rate(*v, "tx_bps");
  p.kept = static_cast<size_t>(std::min<uint64_t>(v->Uint("kept"), kMaxJobServers));
  CM_RETURN_IF_ERROR(Need(RefOk(p.source), "job progress", "source"));
  CM_RETURN_IF_ERROR(ParseIndexes((*v)["children"], "job progress", "children", &p.children));
  CM_RETURN_IF_ERROR(ParseEntries((*v)["entries"], "job progress", &b.entries));
  return b;
}

bool JobEntriesBody::operator==(const JobEntriesBody& o) const {
  return job == o.job && node == o.node && SameEntries(entries, o.entries);
}

std::string Encode(const JobEntriesBody& b) {
  return JsonObject().Str("job", b.job).Uint("node", b.node).Raw("entries", EncodeEntries(b.entries)).Build();
}

Result<JobEntriesBody> ParseJobEntries(std::string_view json) {
  auto v = Object(json, "job entries");
  if (!v.ok()) return v.status();
  JobEntriesBody b;
  CM_RETURN_IF_ERROR(JobAndNode(*v, "job entries", &b.job, &b.node));
  CM_RETURN_IF_ERROR(ParseEntries((*v)["entries"], "job entries", &b.entries));
  return b;
}

bool JobHelpBody::operator==(const JobHelpBody& o) const {
  return job == o.job && ask.node == o.ask.node && ask.pos == o.ask.pos && ask.complete == o.ask.complete &&
         ask.rate_bps == o.ask.rate_bps && ask.repair_only == o.ask.repair_only;
}

std::string Encode(const JobHelpBody& b) {
  return JsonObject()
      .Str("job", b.job)
      .Uint("node", b.ask.node)
      .Uint("pos", b.ask.pos)
      .Bool("complete", b.ask.complete)
      .Uint("rate_bps", RateOut(b.ask.rate_bps))
      .Bool("repair_only", b.ask.repair_only)
      .Build();
}

Result<JobHelpBody> ParseJobHelp(std::string_view json) {
  auto v = Object(json, "job help");
  if (!v.ok()) return v.status();
  JobHelpBody b;
  PeerIndex node = 0;
  CM_RETURN_IF_ERROR(JobAndNode(*v, "job help", &b.job, &node));
  b.ask = JobHelpAsk{node, v->Uint("pos"), v->Bool("complete"), Rate(*v, "rate_bps"),
                     v->Bool("repair_only")};
  return b;
}

std::string Encode(const JobHelpReply& r) {
  return JsonObject()
      .Int("target", r.target)
      .Bool("finished", r.finished)
      .Bool("relieve", r.relieve)
      .Uint("rate_bps", RateOut(r.rate_bps))
      .Build();
}

Result<JobHelpReply> ParseJobHelpReply(std::string_view json) {
  auto v = Object(json, "job help answer");
  if (!v.ok()) return v.status();
  JobHelpReply r{v->Int("target", kNoNode), v->Bool("finished"), v->Bool("relieve"), Rate(*v, "rate_bps")};
  CM_RETURN_IF_ERROR(Need(RefOk(r.target), "job help answer", "target"));
  return r;
}

bool JobSourceFailedBody::operator==(const JobSourceFailedBody& o) const {
  return job == o.job && msg.node == o.msg.node && msg.source == o.msg.source && msg.pos == o.msg.pos;
}

std::string Encode(const JobSourceFailedBody& b) {
  return JsonObject().Str("job", b.job).Uint("node", b.msg.node).Int("source", b.msg.source).Uint("pos", b.msg.pos).Build();
}

Result<JobSourceFailedBody> ParseJobSourceFailed(std::string_view json) {
  auto v = Object(json, "job source failed");
  if (!v.ok()) return v.status();
  JobSourceFailedBody b;
  PeerIndex node = 0;
  CM_RETURN_IF_ERROR(JobAndNode(*v, "job source failed", &b.job, &node));
  b.msg = JobSourceFailedMsg{node, v->Int("source", kNoNode), v->Uint("pos")};
  CM_RETURN_IF_ERROR(Need(RefOk(b.msg.source), "job source failed", "source"));
  return b;
}

std::string EncodeSourceReply(NodeRef source) { return JsonObject().Int("source", source).Build(); }

Result<NodeRef> ParseSourceReply(std::string_view json) {
  auto v = Object(json, "job source answer");
  if (!v.ok()) return v.status();
  NodeRef s = v->Int("source", kNoNode);
  CM_RETURN_IF_ERROR(Need(RefOk(s), "job source answer", "source"));
  return s;
}

bool JobUnreachableBody::operator==(const JobUnreachableBody& o) const {
  return job == o.job && msg.from == o.msg.from && msg.target == o.msg.target;
}

std::string Encode(const JobUnreachableBody& b) {
  return JsonObject().Str("job", b.job).Int("from", b.msg.from).Uint("target", b.msg.target).Build();
}

Result<JobUnreachableBody> ParseJobUnreachable(std::string_view json) {
  auto v = Object(json, "job unreachable");
  if (!v.ok()) return v.status();
  JobUnreachableBody b;
  b.job = v->Str("job");
  uint64_t target = v->Uint("target", kMaxJobServers);
  b.msg.from = v->Int("from", kNoNode);
  CM_RETURN_IF_ERROR(Need(JobIdOk(b.job), "job unreachable", "job"));
  CM_RETURN_IF_ERROR(Need(target < kMaxJobServers, "job unreachable", "target"));
  CM_RETURN_IF_ERROR(Need(RefOk(b.msg.from) && b.msg.from != kNoNode, "job unreachable", "from"));
  b.msg.target = static_cast<PeerIndex>(target);
  return b;
}

}  // namespace cm::push
