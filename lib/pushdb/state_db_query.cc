// StateDb's read-only queries.
#include <algorithm>

#include "pushdb/sql.h"
#include "pushdb/state_db.h"

namespace cm::pushdb {

namespace {

constexpr char kJobColumns[] =
    "SELECT j.id, j.name, j.kind, j.serials, j.state, j.queued_ms, j.started_ms, j.finished_ms,"
    " j.controller_pid, j.controller_start, j.options, j.summary, j.release, j.invocation,"
    " (SELECT count(*) FROM server_status s WHERE s.job = j.id),"
    " (SELECT count(*) FROM server_status s WHERE s.job = j.id"
    "    AND s.state IN ('staged', 'committed', 'rolled-back')),"
    " (SELECT count(*) FROM server_status s WHERE s.job = j.id AND s.state = 'failed')"
    " FROM jobs j ";

Result<JobRecord> ReadJobRow(const Stmt& st, const std::string& db_path) {
  JobRecord r;
  r.id = st.Int(0);
  r.name = st.Text(1);
  auto kind = ParseJobKind(st.Text(2));
  auto serials = DecodeSerials(st.Text(3));
  auto state = ParseJobState(st.Text(4));
  if (!kind || !serials || !state)
    return Error(Code::kCorrupt, db_path + ": job " + std::to_string(r.id) + " has a malformed row");
  r.kind = *kind;
  r.serials = std::move(*serials);
  r.state = *state;
  r.queued_ms = st.Int(5);
  r.started_ms = st.IsNull(6) ? 0 : st.Int(6);
  r.finished_ms = st.IsNull(7) ? 0 : st.Int(7);
  r.controller = Controller{st.Int(8), static_cast<uint64_t>(st.Int(9))};
  r.options = st.Text(10);
  r.summary = st.Text(11);
  r.release = st.Text(12);
  r.invocation = st.Text(13);
  r.servers = static_cast<int>(st.Int(14));
  r.servers_ok = static_cast<int>(st.Int(15));
  r.servers_failed = static_cast<int>(st.Int(16));
  return r;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Result<std::vector<JobRecord>> StateDb::QueryJobs(std::string_view tail, const std::function<void(Stmt&)>& bind) {
  CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(std::string(kJobColumns) + std::string(tail)));
  bind(st);
  std::vector<JobRecord> out;
  for (;;) {
    CM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    CM_ASSIGN_OR_RETURN(JobRecord r, ReadJobRow(st, sql_->path()));
    out.push_back(std::move(r));
  }
}

Result<JobRecord> StateDb::QueryOneJob(std::string_view tail, const std::function<void(Stmt&)>& bind,
                                       const std::string& not_found) {
  CM_ASSIGN_OR_RETURN(auto jobs, QueryJobs(tail, bind));
  if (jobs.empty()) return Error(Code::kNotFound, not_found);
  return std::move(jobs.front());
}

Result<JobStatusView> StateDb::JobStatus(int64_t job) {
  Txn txn(sql_.get());  // one snapshot for the job and its rows
  CM_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kRead));
  JobStatusView v;
  CM_ASSIGN_OR_RETURN(v.job, QueryOneJob("WHERE j.id = ?", [&](Stmt& st) { st.Bind(1, job); },
                                         "no job " + std::to_string(job)));
  CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(
      "SELECT site, server, state, serial, error, updated_ms FROM server_status"
      " WHERE job = ? ORDER BY site, server"));
  st.Bind(1, job);
  for (;;) {
    CM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ServerStatusRow r;
    r.site = st.Text(0);
    r.server = st.Text(1);
    auto state = ParseServerState(st.Text(2));
    if (!state) return Error(Code::kCorrupt, path() + ": server " + r.server + " has an unknown state");
    r.state = *state;
    r.serial = static_cast<uint64_t>(st.Int(3));
    r.error = st.Text(4);
    r.updated_ms = st.Int(5);
    v.servers.push_back(std::move(r));
  }
  CM_RETURN_IF_ERROR(txn.Commit());
  return v;
}

Result<JobRecord> StateDb::LatestJob() {
  return QueryOneJob("ORDER BY j.id DESC LIMIT 1", [](Stmt&) {}, "no jobs yet");
}

Result<JobRecord> StateDb::FindJob(std::string_view ref) {
  if (AllDigits(ref)) {
    int64_t id = std::stoll(std::string(ref));
    return QueryOneJob("WHERE j.id = ?", [&](Stmt& st) { st.Bind(1, id); }, "no job " + std::string(ref));
  }
  return QueryOneJob("WHERE j.name = ? ORDER BY j.id DESC LIMIT 1", [&](Stmt& st) { st.Bind(1, ref); },
                     "no job named " + std::string(ref));
}

Result<std::vector<JobRecord>> StateDb::History(int limit) {
  return QueryJobs("ORDER BY j.id DESC LIMIT ?", [&](Stmt& st) { st.Bind(1, int64_t{limit > 0 ? limit : -1}); });
}

Result<std::vector<ServerRow>> StateDb::ServerTable() {
  CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(
      "SELECT server, site, live_serial, live_job, last_seen_ms, live_release, last_job, last_state, last_error,"
      " live_manifest FROM servers ORDER BY site, server"));
  std::vector<ServerRow> out;
  for (;;) {
    CM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    ServerRow r;
    r.server = st.Text(0);
    r.site = st.Text(1);
    r.live_serial = static_cast<uint64_t>(st.Int(2));
    r.live_job = st.IsNull(3) ? 0 : st.Int(3);
    r.last_seen_ms = st.IsNull(4) ? 0 : st.Int(4);
    r.live_release = st.Text(5);
    r.last_job = st.IsNull(6) ? 0 : st.Int(6);
    r.last_state = st.Text(7);
    r.last_error = st.Text(8);
    r.live_manifest = st.Text(9);
    out.push_back(std::move(r));
  }
}

}  // namespace cm::pushdb
