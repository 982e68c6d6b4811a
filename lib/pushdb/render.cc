#include "pushdb/render.h"

#include <time.h>

#include <algorithm>
#include <cstdio>

#include "util/json.h"

namespace cm::pushdb {

namespace {

bool ToUtc(int64_t unix_ms, struct tm* out) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  return gmtime_r(&secs, out) != nullptr;
}

void TimeField(JsonObject* o, const char* key, int64_t ms) {
  if (ms == 0) {
    o->Null(key);
  } else {
    o->Str(key, FormatTimeRfc3339(ms));
  }
}

std::string ServersCell(const JobRecord& j) {
  std::string s = std::to_string(j.servers_ok) + "/" + std::to_string(j.servers);
  if (j.servers_failed > 0) s += " (" + std::to_string(j.servers_failed) + " failed)";
  return s;
}

std::string DurationCell(const JobRecord& j) {
  if (j.started_ms == 0 || j.finished_ms == 0) return "-";
  return FormatDuration(j.finished_ms - j.started_ms);
}

}  // namespace

std::string FormatTimeHuman(int64_t unix_ms) {
  struct tm t;
  if (unix_ms == 0 || !ToUtc(unix_ms, &t)) return "-";
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &t);
  return buf;
}

std::string FormatTimeRfc3339(int64_t unix_ms) {
  struct tm t;
  if (unix_ms == 0 || !ToUtc(unix_ms, &t)) return "";
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(((unix_ms % 1000) + 1000) % 1000));
  return buf;
}

std::string FormatDuration(int64_t ms) {
  if (ms < 0) ms = 0;
  char buf[32];
  if (ms < 1000) {
    snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60'000) {
    snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms / 100) / 10.0);
  } else if (ms < 3'600'000) {
    snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
             static_cast<long long>(ms / 1000 % 60));
  } else {
    snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
             static_cast<long long>(ms / 60'000 % 60));
  }
  return buf;
}

std::string RenderTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string& cell = c < cells.size() ? cells[c] : std::string();
      l += cell;
      if (c + 1 < width.size()) l += std::string(width[c] - cell.size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out;
}

std::string JobJson(const JobRecord& j) {
  JsonArray serials;
  for (uint64_t s : j.serials) serials.Raw(std::to_string(s));
  JsonObject o;
  o.Int("id", j.id).Str("name", j.name).Str("kind", JobKindName(j.kind)).Str("release", j.release);
  o.Raw("serials", serials.Build());
  o.Str("state", JobStateName(j.state));
  TimeField(&o, "queued", j.queued_ms);
  TimeField(&o, "started", j.started_ms);
  TimeField(&o, "finished", j.finished_ms);
  if (j.started_ms != 0 && j.finished_ms != 0) {
    o.Int("duration_ms", j.finished_ms - j.started_ms);
  } else {
    o.Null("duration_ms");
  }
  o.Int("controller_pid", j.controller.pid).Str("options", j.options).Str("summary", j.summary);
  o.Int("server_count", j.servers).Int("servers_ok", j.servers_ok).Int("servers_failed", j.servers_failed);
  return o.Build();
}

std::string RenderStatusHuman(const JobStatusView& v) {
  const JobRecord& j = v.job;
  std::string out = "job " + std::to_string(j.id) + ": " + JobKindName(j.kind) + " " + j.name + ", serials " +
                    FormatSerials(j.serials) + ", " + JobStateName(j.state) + "\n";
  out += "  UTC: queued " + FormatTimeHuman(j.queued_ms) + ", started " + FormatTimeHuman(j.started_ms) +
         ", finished " + FormatTimeHuman(j.finished_ms);
  if (j.started_ms != 0 && j.finished_ms != 0) out += ", took " + DurationCell(j);
  out += "\n";
  out += "  controller pid " + std::to_string(j.controller.pid) + ", servers " + ServersCell(j) + "\n";
  if (!j.summary.empty()) out += "  summary: " + j.summary + "\n";
  std::vector<std::vector<std::string>> rows;
  for (const ServerStatusRow& r : v.servers) {
    rows.push_back({r.site, r.server, ServerStateName(r.state), r.serial ? std::to_string(r.serial) : "-",
                    FormatTimeHuman(r.updated_ms), r.error});
  }
  return out + "\n" + RenderTable({"SITE", "SERVER", "STATE", "SERIAL", "UPDATED", "ERROR"}, rows);
}

std::string RenderStatusJson(const JobStatusView& v) {
  JsonArray servers;
  for (const ServerStatusRow& r : v.servers) {
    JsonObject o;
    o.Str("site", r.site).Str("server", r.server).Str("state", ServerStateName(r.state));
    o.Uint("serial", r.serial).Str("error", r.error);
    TimeField(&o, "updated", r.updated_ms);
    servers.Raw(o.Build());
  }
  return JsonObject().Int("v", kJsonSchema).Raw("job", JobJson(v.job)).Raw("servers", servers.Build()).Build() + "\n";
}

std::string RenderHistoryHuman(const std::vector<JobRecord>& jobs) {
  std::vector<std::vector<std::string>> rows;
  for (const JobRecord& j : jobs) {
    rows.push_back({std::to_string(j.id), JobKindName(j.kind), j.name, FormatSerials(j.serials),
                    JobStateName(j.state), FormatTimeHuman(j.started_ms ? j.started_ms : j.queued_ms),
                    DurationCell(j), ServersCell(j), j.summary});
  }
  return RenderTable({"JOB", "KIND", "NAME", "SERIALS", "STATE", "STARTED", "DURATION", "SERVERS", "SUMMARY"},
                     rows);
}

std::string RenderHistoryJson(const std::vector<JobRecord>& jobs) {
  JsonArray arr;
  for (const JobRecord& j : jobs) arr.Raw(JobJson(j));
  return JsonObject().Int("v", kJsonSchema).Raw("jobs", arr.Build()).Build() + "\n";
}

std::string RenderServerTableHuman(const std::vector<ServerRow>& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const ServerRow& r : rows) {
    cells.push_back({r.site, r.server, r.live_release.empty() ? "-" : r.live_release,
                     r.live_manifest.empty() ? "-" : r.live_manifest.substr(0, 16),
                     r.live_serial ? std::to_string(r.live_serial) : "-", r.live_job ? std::to_string(r.live_job) : "-",
                     FormatTimeHuman(r.last_seen_ms), r.last_state.empty() ? "-" : r.last_state, r.last_error});
  }
  return RenderTable({"SITE", "SERVER", "RELEASE", "MANIFEST", "SERIAL", "JOB", "LAST-SEEN", "LAST", "ERROR"}, cells);
}

std::string RenderServerTableJson(const std::vector<ServerRow>& rows) {
  JsonArray arr;
  for (const ServerRow& r : rows) {
    JsonObject o;
    o.Str("site", r.site).Str("server", r.server).Str("release", r.live_release).Uint("serial", r.live_serial);
    o.Str("manifest", r.live_manifest);
    if (r.live_job) {
      o.Int("live_job", r.live_job);
    } else {
      o.Null("live_job");
    }
    TimeField(&o, "last_seen", r.last_seen_ms);
    o.Str("last_state", r.last_state).Str("last_error", r.last_error);
    if (r.last_job) {
      o.Int("last_job", r.last_job);
    } else {
      o.Null("last_job");
    }
    arr.Raw(o.Build());
  }
  return JsonObject().Int("v", kJsonSchema).Raw("servers", arr.Build()).Build() + "\n";
}

}  // namespace cm::pushdb
