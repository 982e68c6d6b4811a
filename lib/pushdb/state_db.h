// The CCM's state: job history, per-server status, and which server runs
// which serial, in an embedded SQLite database at <state dir>/state.db
// (schema in docs/STATE.md).
//
// Several cm-push processes may use one state directory at once: every write
// is one transaction that takes the database's write lock up front (BEGIN
// IMMEDIATE), so checks and the writes they guard are atomic across
// processes; the journal is a WAL, so readers never block the writer.
//
// A job touches a set of (site, server) pairs. While it is queued or running
// it holds them: BeginJob refuses or queues a second job that shares a pair.
// A job whose controller process is gone (killed cm-push) is marked aborted
// the next time anyone begins a job, and then holds nothing.
//
// Thread safety: a StateDb is one connection; use it from one thread at a
// time. Open one StateDb per thread to share a directory between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pushdb/job_types.h"
#include "util/status.h"

namespace cm::pushdb {

class Sql;
class Stmt;

constexpr char kStateDbFile[] = "state.db";

struct StateDbOptions {
  // How long a write waits for another process's transaction before kBusy.
  std::chrono::milliseconds busy_timeout{10'000};
  // The clock, in Unix milliseconds. Default: the system clock.
  std::function<int64_t()> now_ms;
  // Whether a controller process still runs. Default: ControllerAlive.
  std::function<bool(const Controller&)> controller_alive;
};

enum class BeginMode {
  kRefuse,  // a job sharing a pair with an active job is refused (kBusy)
  kWait,    // it is recorded as queued; the caller polls TryBegin (see wait.h)
};

class StateDb {
 public:
  // Opens <dir>/state.db, creating the directory (with parents) and the
  // database when absent; sets WAL mode and the busy timeout; creates or
  // upgrades the schema. Errors: kFailure when the database has a newer
  // schema than this build; kCorrupt when the file is not a state database;
  // kIo / kNoSpace / kBusy from the file system and SQLite.
  static Result<std::unique_ptr<StateDb>> Open(const std::string& dir, StateDbOptions opts = {});
  ~StateDb();
  StateDb(const StateDb&) = delete;
  StateDb& operator=(const StateDb&) = delete;

  // Records a new job, and its targets as pending. No active job may share a
  // (site, server) pair with it (queued jobs count: they are waiting for those
  // servers, and a newcomer must not overtake them).
  //  - free: the job is running (handle.state == kRunning).
  //  - not free, kRefuse: kBusy naming the first conflicting job, its state,
  //    controller pid and a shared pair; nothing is recorded.
  //  - not free, kWait: the job is recorded as queued (handle.state == kQueued).
  // kUsage for a malformed spec: empty name, no targets, a server listed twice,
  // an empty site or server name.
  Result<JobHandle> BeginJob(const JobSpec& spec, BeginMode mode);

  // For a queued job: starts it when no running job, and no queued job that
  // was queued before it, shares a pair with it. Ok: job->state is now
  // kRunning (also when it already was). kBusy: still blocked, the message
  // names the blocker. kFailure: the job is finished (e.g. aborted).
  // kNotFound: no such job.
  Status TryBegin(JobHandle* job);

  // Records a report about `server` in running job `job`. `serial` is the
  // serial the state refers to; 0 keeps the one recorded. A committed or
  // rolled-back state needs a serial: it becomes the server's live serial in
  // the server table. Any state but pending and failed counts as the server
  // being seen. kNotFound: no such job, or the server is not its target;
  // kFailure: the job is not running (finished, or still queued).
  // `release`: the release a switch made live (committed / rolled-back).
  Status UpdateServer(int64_t job, std::string_view server, ServerState state, uint64_t serial,
                      std::string_view error = {}, std::string_view release = {},
                      std::string_view manifest = {});

  // Ends an active job. `state` must be done, partial, failed or aborted; a
  // job that never started can only be aborted. kNotFound: no such job;
  // kFailure: already finished, or a state not allowed.
  Status FinishJob(int64_t job, JobState state, std::string_view summary);

  // Marks every active job whose controller is gone as aborted; returns how
  // many. BeginJob and TryBegin do this themselves; `cm-push status` calls it
  // so it does not show a dead job as running.
  Result<int> ReapDeadControllers();

  // ---- queries (read-only, consistent snapshots) ----
  // kNotFound when there is no such job / no job at all.
  Result<JobStatusView> JobStatus(int64_t job);
  Result<JobRecord> LatestJob();
  // A job by number ("12") or by name (the newest job with that name).
  Result<JobRecord> FindJob(std::string_view ref);
  // Newest first; limit <= 0 means all.
  Result<std::vector<JobRecord>> History(int limit);
  // Every server any job targeted, ordered by site then server.
  Result<std::vector<ServerRow>> ServerTable();

  const std::string& path() const;

 private:
  struct ActiveJob;
  StateDb(std::unique_ptr<Sql> sql, StateDbOptions opts);
  int64_t Now() const { return opts_.now_ms(); }
  // Inside a write transaction: the active jobs with their targets, oldest
  // first, after marking those with dead controllers aborted.
  Result<std::vector<ActiveJob>> LoadActive(int* reaped = nullptr);
  // Jobs selected by `tail` (WHERE/ORDER/LIMIT clauses), parameters bound by `bind`.
  Result<std::vector<JobRecord>> QueryJobs(std::string_view tail, const std::function<void(Stmt&)>& bind);
  Result<JobRecord> QueryOneJob(std::string_view tail, const std::function<void(Stmt&)>& bind,
                                const std::string& not_found);

  std::unique_ptr<Sql> sql_;
  StateDbOptions opts_;
};

}  // namespace cm::pushdb
