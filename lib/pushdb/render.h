// What `cm-push status`, `cm-push history` and the final report print: a
// fixed-width table for people, or one JSON object (util/json.h) for
// machines. Times are UTC: "2024-05-01 12:00:09" in tables, RFC 3339 with
// milliseconds ("2024-05-01T12:00:09.250Z") in JSON, "-" / null when unset.
// Pure functions of their arguments; every output ends with a newline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pushdb/job_types.h"

namespace cm::pushdb {

// The version of every JSON document cm-push writes (`"v"`: the report, the
// --json events, status, history, servers). docs/JSON.md is the schema.
constexpr int kJsonSchema = 1;

// A job header (kind, name, serials, state, times, pid, summary, counts) and
// one row per server: SITE SERVER STATE SERIAL UPDATED ERROR.
std::string RenderStatusHuman(const JobStatusView& v);
// {"v":1, "job": {...}, "servers": [{"site","server","state","serial","error","updated"}...]}
std::string RenderStatusJson(const JobStatusView& v);

// One row per job, as given (History returns newest first):
// JOB KIND NAME SERIALS STATE STARTED DURATION SERVERS SUMMARY.
std::string RenderHistoryHuman(const std::vector<JobRecord>& jobs);
// {"v":1, "jobs": [{...}...]}, each as "job" in RenderStatusJson.
std::string RenderHistoryJson(const std::vector<JobRecord>& jobs);

// Which server runs which release (`cm-push servers`):
// SITE SERVER RELEASE SERIAL JOB LAST-SEEN LAST ERROR.
std::string RenderServerTableHuman(const std::vector<ServerRow>& rows);
// {"v":1, "servers": [{"site","server","release","serial","live_job","last_seen","last_state","last_error","last_job"}...]}
std::string RenderServerTableJson(const std::vector<ServerRow>& rows);

// Building blocks, exposed for the tool's other reports.
// "2024-05-01 12:00:09" (UTC), "-" for 0.
std::string FormatTimeHuman(int64_t unix_ms);
// "2024-05-01T12:00:09.250Z", "" for 0.
std::string FormatTimeRfc3339(int64_t unix_ms);
// "850ms", "9.1s", "2m05s", "1h02m".
std::string FormatDuration(int64_t ms);
// Columns separated by two spaces, each as wide as its widest cell; no
// trailing blanks. Rows shorter than the header are padded with "".
std::string RenderTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
// The job object of the JSON reports.
std::string JobJson(const JobRecord& job);

}  // namespace cm::pushdb
