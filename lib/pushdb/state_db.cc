#include "pushdb/state_db.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <algorithm>
#include <set>
#include <thread>
#include <utility>

#include "pushdb/controller.h"
#include "pushdb/schema.h"
#include "pushdb/sql.h"

namespace cm::pushdb {

struct StateDb::ActiveJob {
  int64_t id = 0;
  std::string name;
  JobKind kind = JobKind::kPublish;
  JobState state = JobState::kRunning;
  Controller controller;
  std::vector<Target> targets;
};

namespace {

int64_t SystemNowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

Status ValidateSpec(const JobSpec& spec) {
  if (spec.name.empty()) return Error(Code::kUsage, "a job needs a name");
  if (spec.targets.empty()) return Error(Code::kUsage, "job " + spec.name + ": no target servers");
  std::set<std::string_view> seen;
  for (const Target& t : spec.targets) {
    if (t.site.empty() || t.server.empty())
      return Error(Code::kUsage, "job " + spec.name + ": a target with an empty site or server name");
    if (!seen.insert(t.server).second)
      return Error(Code::kUsage, "job " + spec.name + ": server " + t.server + " listed twice");
  }
  return Status::Ok();
}

bool SamePair(const Target& a, const Target& b) { return a.site == b.site && a.server == b.server; }

// The first active job (in `active`, oldest first) that blocks a job with
// `targets`: self_id 0 is a job not yet recorded (every active job is older);
// otherwise queued jobs younger than self_id do not block it. kBusy naming it,
// or Ok when nothing blocks.
template <typename Active>
Status FindBlocker(const std::vector<Active>& active, int64_t self_id, const std::vector<Target>& targets) {
  for (const auto& j : active) {
    if (j.id == self_id) continue;
    if (self_id != 0 && j.state == JobState::kQueued && j.id > self_id) continue;
    const Target* first = nullptr;
    int shared = 0;
    for (const Target& theirs : j.targets)
      for (const Target& mine : targets)
        if (SamePair(theirs, mine)) {
          if (!first) first = &theirs;
          ++shared;
        }
    if (!first) continue;
    std::string msg = "job " + std::to_string(j.id) + " (" + JobKindName(j.kind) + " " + j.name + ", pid " +
                      std::to_string(j.controller.pid) + ") is " + JobStateName(j.state) + " on " +
                      first->site + "/" + first->server;
    if (shared > 1) msg += " and " + std::to_string(shared - 1) + " more server" + (shared > 2 ? "s" : "");
    return Error(Code::kBusy, msg);
  }
  return Status::Ok();
}

Result<std::optional<JobState>> ReadJobState(Sql* sql, int64_t job) {
  CM_ASSIGN_OR_RETURN(Stmt st, sql->Prepare("SELECT state FROM jobs WHERE id = ?"));
  st.Bind(1, job);
  CM_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<JobState>();
  auto state = ParseJobState(st.Text(0));
  if (!state) return Error(Code::kCorrupt, sql->path() + ": job " + std::to_string(job) + " has an unknown state");
  return state;
}

// Switching a new database to WAL (a persistent setting) needs a moment's
// exclusive lock, and SQLite answers BUSY at once instead of calling the busy
// handler when another connection is doing the same; so retry here, within
// the busy timeout.
Status UseWal(Sql* sql, std::chrono::milliseconds busy_timeout) {
  using namespace std::chrono;
  const auto deadline = steady_clock::now() + std::min(busy_timeout, milliseconds(hours(24)));
  for (milliseconds pause(1);; pause = std::min(pause * 2, milliseconds(50))) {
    Status st;
    {
      CM_ASSIGN_OR_RETURN(Stmt q, sql->Prepare("PRAGMA journal_mode = WAL"));
      Result<bool> row = q.Step();
      if (row.ok()) {
        if (*row && q.Text(0) == "wal") return Status::Ok();
        return Error(Code::kIo, sql->path() + ": the file system does not support a WAL journal");
      }
      st = row.status();
    }
    if (st.code() != Code::kBusy || steady_clock::now() >= deadline) return st;
    std::this_thread::sleep_for(pause);
  }
}

Status NoSuchJob(int64_t job) { return Error(Code::kNotFound, "no job " + std::to_string(job)); }

}  // namespace

StateDb::StateDb(std::unique_ptr<Sql> sql, StateDbOptions opts) : sql_(std::move(sql)), opts_(std::move(opts)) {
  if (!opts_.now_ms) opts_.now_ms = SystemNowMs;
  if (!opts_.controller_alive) opts_.controller_alive = ControllerAlive;
}

StateDb::~StateDb() = default;

const std::string& StateDb::path() const { return sql_->path(); }

Result<std::unique_ptr<StateDb>> StateDb::Open(const std::string& dir, StateDbOptions opts) {
  std::error_code ec;
  // The records are the CCM's: a directory only its user enters, a database
  // only its user reads (the WAL and shared-memory files take its mode).
  if (std::filesystem::create_directories(dir, ec)) ::chmod(dir.c_str(), 0700);
  if (ec) return ErrnoError(dir, ec.value());
  const std::string db_path = dir + "/" + kStateDbFile;
  if (int fd = ::open(db_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600); fd >= 0) {
    ::fchmod(fd, 0600);
    ::close(fd);
  }
  CM_ASSIGN_OR_RETURN(std::unique_ptr<Sql> sql, Sql::Open(db_path, opts.busy_timeout));
  CM_RETURN_IF_ERROR(UseWal(sql.get(), opts.busy_timeout));
  // FULL: a committed report survives a power cut (the write rate is low).
  CM_RETURN_IF_ERROR(sql->Exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON"));
  CM_RETURN_IF_ERROR(PrepareSchema(sql.get()));
  return std::unique_ptr<StateDb>(new StateDb(std::move(sql), std::move(opts)));
}

Result<std::vector<StateDb::ActiveJob>> StateDb::LoadActive(int* reaped) {
  std::vector<ActiveJob> active;
  {
    CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(
        "SELECT id, name, kind, state, controller_pid, controller_start FROM jobs"
        " WHERE state IN ('queued', 'running') ORDER BY id"));
    for (;;) {
      CM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      ActiveJob j;
      j.id = st.Int(0);
      j.name = st.Text(1);
      j.kind = ParseJobKind(st.Text(2)).value_or(JobKind::kPublish);
      j.state = ParseJobState(st.Text(3)).value_or(JobState::kRunning);
      j.controller = Controller{st.Int(4), static_cast<uint64_t>(st.Int(5))};
      active.push_back(std::move(j));
    }
  }
  int dead = 0;
  std::vector<ActiveJob> alive;
  for (ActiveJob& j : active) {
    if (opts_.controller_alive(j.controller)) {
      alive.push_back(std::move(j));
      continue;
    }
    CM_ASSIGN_OR_RETURN(Stmt up, sql_->Prepare(
        "UPDATE jobs SET state = 'aborted', finished_ms = ?, summary = ? WHERE id = ?"));
    up.Bind(1, Now()).Bind(2, "controller pid " + std::to_string(j.controller.pid) + " is gone").Bind(3, j.id);
    CM_RETURN_IF_ERROR(up.Run());
    ++dead;
  }
  if (reaped) *reaped = dead;
  CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare("SELECT site, server FROM job_targets WHERE job = ?"));
  for (ActiveJob& j : alive) {
    st.Reset();
    st.Bind(1, j.id);
    for (;;) {
      CM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      j.targets.push_back(Target{st.Text(0), st.Text(1)});
    }
  }
  return alive;
}

Result<int> StateDb::ReapDeadControllers() {
  Txn txn(sql_.get());
  CM_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
  int reaped = 0;
  CM_ASSIGN_OR_RETURN(auto active, LoadActive(&reaped));
  CM_RETURN_IF_ERROR(txn.Commit());
  return reaped;
}

Result<JobHandle> StateDb::BeginJob(const JobSpec& spec, BeginMode mode) {
  CM_RETURN_IF_ERROR(ValidateSpec(spec));
  const Controller ctl = spec.controller.value_or(SelfController());
  Txn txn(sql_.get());
  CM_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
  CM_ASSIGN_OR_RETURN(auto active, LoadActive());
  Status blocked = FindBlocker(active, 0, spec.targets);
  if (!blocked.ok() && mode == BeginMode::kRefuse) {
    // Keep what LoadActive reaped; record nothing else.
    CM_RETURN_IF_ERROR(txn.Commit());
    return blocked;
  }
  const JobState state = blocked.ok() ? JobState::kRunning : JobState::kQueued;
  const int64_t now = Now();
  {
    CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(
        "INSERT INTO jobs (name, kind, serials, state, queued_ms, started_ms, controller_pid,"
        " controller_start, options, release, invocation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    st.Bind(1, spec.name).Bind(2, JobKindName(spec.kind)).Bind(3, EncodeSerials(spec.serials));
    st.Bind(4, JobStateName(state)).Bind(5, now);
    if (state == JobState::kRunning) st.Bind(6, now); else st.BindNull(6);
    st.Bind(7, ctl.pid).Bind(8, static_cast<int64_t>(ctl.start_ticks)).Bind(9, spec.options);
    st.Bind(10, spec.release).Bind(11, spec.invocation);
    CM_RETURN_IF_ERROR(st.Run());
  }
  const int64_t id = sql_->LastInsertId();
  for (const Target& t : spec.targets) {
    CM_ASSIGN_OR_RETURN(Stmt tg, sql_->Prepare("INSERT INTO job_targets (job, site, server) VALUES (?, ?, ?)"));
    CM_RETURN_IF_ERROR(tg.Bind(1, id).Bind(2, t.site).Bind(3, t.server).Run());
    CM_ASSIGN_OR_RETURN(Stmt ss, sql_->Prepare(
        "INSERT INTO server_status (job, server, site, state, updated_ms) VALUES (?, ?, ?, 'pending', ?)"));
    CM_RETURN_IF_ERROR(ss.Bind(1, id).Bind(2, t.server).Bind(3, t.site).Bind(4, now).Run());
    CM_ASSIGN_OR_RETURN(Stmt sv, sql_->Prepare(
        "INSERT INTO servers (server, site) VALUES (?, ?) ON CONFLICT (server) DO UPDATE SET site = excluded.site"));
    CM_RETURN_IF_ERROR(sv.Bind(1, t.server).Bind(2, t.site).Run());
  }
  CM_RETURN_IF_ERROR(txn.Commit());
  return JobHandle{id, state};
}

Status StateDb::TryBegin(JobHandle* job) {
  Txn txn(sql_.get());
  CM_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
  CM_ASSIGN_OR_RETURN(auto active, LoadActive());
  const ActiveJob* self = nullptr;
  for (const ActiveJob& j : active)
    if (j.id == job->id) self = &j;
  if (!self) {
    CM_ASSIGN_OR_RETURN(auto state, ReadJobState(sql_.get(), job->id));
    CM_RETURN_IF_ERROR(txn.Commit());  // keep what LoadActive reaped
    if (!state) return NoSuchJob(job->id);
    job->state = *state;
    return Error(Code::kFailure, "job " + std::to_string(job->id) + " is " + JobStateName(*state));
  }
  if (self->state == JobState::kRunning) {
    job->state = JobState::kRunning;
    return txn.Commit();
  }
  Status blocked = FindBlocker(active, job->id, self->targets);
  if (!blocked.ok()) {
    CM_RETURN_IF_ERROR(txn.Commit());
    return blocked;
  }
  CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare("UPDATE jobs SET state = 'running', started_ms = ? WHERE id = ?"));
  CM_RETURN_IF_ERROR(st.Bind(1, Now()).Bind(2, job->id).Run());
  CM_RETURN_IF_ERROR(txn.Commit());
  job->state = JobState::kRunning;
  return Status::Ok();
}

Status StateDb::UpdateServer(int64_t job, std::string_view server, ServerState state, uint64_t serial,
                             std::string_view error, std::string_view release, std::string_view manifest) {
  const bool switches = state == ServerState::kCommitted || state == ServerState::kRolledBack;
  if (switches && serial == 0)
    return Error(Code::kFailure, std::string("UpdateServer: ") + ServerStateName(state) + " needs a serial");
  Txn txn(sql_.get());
  CM_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
  CM_ASSIGN_OR_RETURN(auto job_state, ReadJobState(sql_.get(), job));
  if (!job_state) return NoSuchJob(job);
  if (*job_state != JobState::kRunning)
    return Error(Code::kFailure, "job " + std::to_string(job) + " is " + JobStateName(*job_state) + ", not running");
  const int64_t now = Now();
  {
    CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(
        "UPDATE server_status SET state = ?, serial = CASE WHEN ? = 0 THEN serial ELSE ? END,"
        " error = ?, updated_ms = ? WHERE job = ? AND server = ?"));
    st.Bind(1, ServerStateName(state)).Bind(2, static_cast<int64_t>(serial)).Bind(3, static_cast<int64_t>(serial));
    st.Bind(4, error).Bind(5, now).Bind(6, job).Bind(7, server);
    CM_RETURN_IF_ERROR(st.Run());
  }
  CM_ASSIGN_OR_RETURN(Stmt changed, sql_->Prepare("SELECT changes()"));
  CM_ASSIGN_OR_RETURN(bool row, changed.Step());
  if (!row || changed.Int(0) == 0)
    return Error(Code::kNotFound, "server " + std::string(server) + " is not a target of job " + std::to_string(job));
  if (state != ServerState::kPending && state != ServerState::kFailed) {
    CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare("UPDATE servers SET last_seen_ms = ? WHERE server = ?"));
    CM_RETURN_IF_ERROR(st.Bind(1, now).Bind(2, server).Run());
  }
  if (switches) {
    CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(
        "UPDATE servers SET live_serial = ?, live_job = ?, live_release = ?, live_manifest = ? WHERE server = ?"));
    CM_RETURN_IF_ERROR(
        st.Bind(1, static_cast<int64_t>(serial)).Bind(2, job).Bind(3, release).Bind(4, manifest).Bind(5, server).Run());
  } else if (!manifest.empty() && !release.empty()) {
    // Any other report that says what the server runs (a refused stage
    // names its live tree): the record follows the server, not the job.
    CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(
        "UPDATE servers SET live_release = ?, live_manifest = ? WHERE server = ?"));
    CM_RETURN_IF_ERROR(st.Bind(1, release).Bind(2, manifest).Bind(3, server).Run());
  }
  if (state != ServerState::kPending && state != ServerState::kFetching) {
    CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare(
        "UPDATE servers SET last_job = ?, last_state = ?, last_error = ? WHERE server = ?"));
    CM_RETURN_IF_ERROR(st.Bind(1, job).Bind(2, ServerStateName(state)).Bind(3, error).Bind(4, server).Run());
  }
  return txn.Commit();
}

Status StateDb::FinishJob(int64_t job, JobState state, std::string_view summary) {
  if (IsActive(state))
    return Error(Code::kFailure, std::string("FinishJob: ") + JobStateName(state) + " is not a final state");
  Txn txn(sql_.get());
  CM_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
  CM_ASSIGN_OR_RETURN(auto current, ReadJobState(sql_.get(), job));
  if (!current) return NoSuchJob(job);
  const std::string name = "job " + std::to_string(job);
  if (!IsActive(*current)) return Error(Code::kFailure, name + " is already " + JobStateName(*current));
  if (*current == JobState::kQueued && state != JobState::kAborted)
    return Error(Code::kFailure, name + " never started; it can only be aborted");
  CM_ASSIGN_OR_RETURN(Stmt st, sql_->Prepare("UPDATE jobs SET state = ?, finished_ms = ?, summary = ? WHERE id = ?"));
  CM_RETURN_IF_ERROR(st.Bind(1, JobStateName(state)).Bind(2, Now()).Bind(3, summary).Bind(4, job).Run());
  return txn.Commit();
}

}  // namespace cm::pushdb
