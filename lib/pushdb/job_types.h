// The values the CCM's state database stores about push jobs and servers
// (docs/STATE.md), and their names as stored in the database and printed by
// `cm-push status` / `cm-push history`. Plain data: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "push/messages.h"

namespace cm::pushdb {

enum class JobKind { kPublish, kCommit, kRollback, kReplicate };

// queued -> running -> done | partial | failed | aborted.
// A queued job may also end as aborted (it gave up waiting, or its controller died).
enum class JobState { kQueued, kRunning, kDone, kPartial, kFailed, kAborted };

// A server's progress within one job: one vocabulary with the push cores
// and their messages (push/messages.h).
using push::ServerState;
using push::ServerStateName;
using push::ParseServerState;

const char* JobKindName(JobKind k);
const char* JobStateName(JobState s);
std::optional<JobKind> ParseJobKind(std::string_view name);
std::optional<JobState> ParseJobState(std::string_view name);

// queued and running jobs hold their targets; the others are finished.
inline bool IsActive(JobState s) { return s == JobState::kQueued || s == JobState::kRunning; }

// The process that runs a job. start_ticks (field 22 of /proc/PID/stat) tells
// a live controller from an unrelated process that reused its pid; 0 = unknown.
struct Controller {
  int64_t pid = 0;
  uint64_t start_ticks = 0;
};

// One (site, server) pair a job touches. Server names are unique across sites.
struct Target {
  std::string site;
  std::string server;
};

// What BeginJob records.
struct JobSpec {
  std::string name;               // the assignment's job id (may repeat across jobs)
  JobKind kind = JobKind::kPublish;
  std::vector<uint64_t> serials;  // the assignment serials the job carries (ascending)
  std::vector<Target> targets;    // at least one; no server twice
  std::string options;            // free text for the operator (e.g. the command line)
  std::string release;            // the release it makes live (s<serial12>-<job>; a rollback: its target)
  std::string invocation;         // how to run it again (JSON {"cwd","argv"}; cm-push retry)
  std::optional<Controller> controller;  // default: this process
};

// A job as BeginJob returned it. state is kRunning or kQueued.
struct JobHandle {
  int64_t id = 0;
  JobState state = JobState::kRunning;
};

// Times are Unix milliseconds; 0 = not yet (never for queued_ms).
struct JobRecord {
  int64_t id = 0;
  std::string name;
  JobKind kind = JobKind::kPublish;
  std::vector<uint64_t> serials;
  JobState state = JobState::kQueued;
  int64_t queued_ms = 0, started_ms = 0, finished_ms = 0;
  Controller controller;
  std::string options, summary;
  std::string release, invocation;
  int servers = 0;         // targets
  int servers_ok = 0;      // of them staged, committed or rolled-back
  int servers_failed = 0;  // of them failed
};

struct ServerStatusRow {
  std::string site, server;
  ServerState state = ServerState::kPending;
  uint64_t serial = 0;  // the serial this state refers to; 0 = none yet
  std::string error;    // why it failed; "" otherwise
  int64_t updated_ms = 0;
};

struct JobStatusView {
  JobRecord job;
  std::vector<ServerStatusRow> servers;  // ordered by site, then server
};

// A row of the server table: which serial a server runs.
struct ServerRow {
  std::string server, site;
  uint64_t live_serial = 0;  // 0 = no commit recorded by this CCM
  std::string live_release;  // the release it runs ("" = unknown)
  std::string live_manifest; // hex of its tree's manifest hash, as it reported it ("" = unknown)
  int64_t live_job = 0;      // the job that switched it; 0 = none
  int64_t last_seen_ms = 0;  // the last report about it; 0 = never
  int64_t last_job = 0;      // the last job that reported about it
  std::string last_state;    // its state in that job
  std::string last_error;    // its last failure ("" after a success)
};

// "41-43" for a contiguous run, "41,43,47" otherwise, "-" when empty.
std::string FormatSerials(const std::vector<uint64_t>& serials);
// Stored form: decimal serials separated by single spaces.
std::string EncodeSerials(const std::vector<uint64_t>& serials);
// Inverse of EncodeSerials; nullopt on anything else.
std::optional<std::vector<uint64_t>> DecodeSerials(std::string_view text);

}  // namespace cm::pushdb
