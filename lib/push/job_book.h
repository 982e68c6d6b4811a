// Job mode's job objects at the base (docs/protocol/jobs.md, "Jobs"): what a
// client opened, what it queued, how far every node is with every entry, and
// what the client is told. Several jobs from several clients at once, each
// with its own queue. Pure: no clock, no I/O; the edge (the base daemon)
// persists it, feeds it the nodes' reports and delivers the notifications.
//
// A job: an id unique per client ("<client>-<n>"), the server list, a queue
// of entries in order — items (a file, an assignment, a live stream) and
// commands from a fixed set (stage, commit, rollback, or a hook configured at
// the base by name; never shell text from the network) — each with a state
// per node:
//   item:    new -> received            (or failed)
//   command: new -> in progress -> completed   (or failed)
// The client ends the queue (End; a queue never ended closes at the
// deadline); the job is over when every node that is
// not given up has finished every entry, or at the deadline: a node still
// reporting progress gets its wait extended (by `extend`, up to `max_wait`
// after the deadline); a silent one is queried and repaired by the
// distribution core (job_base.h) and given up at the end.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/core.h"
#include "util/status.h"

namespace cm::push {

using proto::Micros;

enum class EntryKind : uint8_t { kFile, kAssignment, kStream, kCommand };
const char* EntryKindName(EntryKind k);  // "file", "assignment", "stream", "command"
std::optional<EntryKind> ParseEntryKind(std::string_view s);

enum class EntryState : uint8_t { kNew, kInProgress, kDone, kFailed };
// "new", "in progress", "received" (an item) / "completed" (a command), "failed".
const char* EntryStateName(EntryState s, EntryKind k);

// The commands a job may carry.
enum class CommandName : uint8_t { kStage, kCommit, kRollback, kHook };
const char* CommandNameText(CommandName c);  // "stage", "commit", "rollback", "hook"
std::optional<CommandName> ParseCommandName(std::string_view s);

struct JobEntry {
  uint32_t id = 0;  // 1, 2, ... in queue order (command ids and item ids share it)
  EntryKind kind = EntryKind::kFile;
  std::string name;                 // an item: its file name; a command: its argument (a hook's name, a release)
  CommandName command = CommandName::kStage;  // kCommand only
  bool closed = true;               // a stream: false until its end record is appended
};

struct JobOpenOptions {
  Micros timeout = 3600 * proto::kSeconds;    // the deadline after open
  Micros extend = 60 * proto::kSeconds;       // a node reporting progress at the deadline gets this much more...
  Micros max_wait = 600 * proto::kSeconds;    // ...up to this much past the deadline
};

// What the client is told (a hook at the base, `job wait`, `job status`).
struct JobNotice {
  enum class Kind : uint8_t {
    kReceived,   // node has item `entry`
    kExecuting,  // node started command `entry`
    kCompleted,  // node completed command `entry`
    kFailed,     // node failed `entry` (error)
    kGivenUp,    // node did not finish by the (extended) deadline (error)
    kFinished,   // the job is over: count = nodes that finished everything, total = servers
  };
  Kind kind = Kind::kReceived;
  std::string job, node, error;
  uint32_t entry = 0;
  size_t count = 0, total = 0;
};
const char* JobNoticeKindName(JobNotice::Kind k);  // "received", "executing", "completed", "failed", "given-up", "finished"

// A node's report of one entry.
struct EntryReport {
  uint32_t entry = 0;
  EntryState state = EntryState::kNew;
  std::string error;
};

struct JobView {
  std::string id, client;
  std::vector<std::string> servers;
  std::vector<JobEntry> entries;
  bool ended = false, finished = false;
  Micros deadline = 0;
  // states[server][entry index]
  std::map<std::string, std::vector<EntryState>> states;
  std::set<std::string> given_up;
};

class JobBook {
 public:
  // `hooks`: the hook names the base allows (its configuration).
  explicit JobBook(std::set<std::string> hooks = {});

  // Errors: kUsage (empty client name or one with characters other than
  // [A-Za-z0-9._-], no servers, duplicate servers, an `id` in use).
  // `id`: the job's id when the caller picked it (the base skips ids its
  // state directory has used); "" = the client's next.
  Result<std::string> Open(Micros now, const std::string& client, std::vector<std::string> servers,
                           JobOpenOptions opts = {}, const std::string& id = "");
  // Errors: kNotFound (no such job), kUsage (the job was ended, or finished;
  // an empty name; a stream still open when another item is added is fine).
  Result<uint32_t> AddItem(const std::string& job, EntryKind kind, const std::string& name);
  // Errors: as AddItem, and kUsage for a hook not configured at the base.
  Result<uint32_t> AddCommand(const std::string& job, CommandName command, const std::string& arg);
  // A stream's end was appended.
  Status CloseStream(const std::string& job, uint32_t entry);
  Status End(Micros now, const std::string& job, std::vector<JobNotice>* out);

  // A node's states (the edge turns its report into these). Unknown jobs,
  // nodes or entries are ignored; states never go backwards (a failed entry
  // stays failed). `progress`: the node moved forward (received bytes) since
  // its last report, which extends its wait at the deadline.
  void OnReport(Micros now, const std::string& job, const std::string& node, const std::vector<EntryReport>& entries,
                bool progress, std::vector<JobNotice>* out);
  void OnTimer(Micros now, std::vector<JobNotice>* out);
  Micros NextWake() const;

  std::optional<JobView> View(const std::string& job) const;
  std::vector<std::string> Jobs() const;  // open and finished, by id
  // Drops a finished job (the edge keeps its record); false if it runs.
  bool Forget(const std::string& job);

 private:
  struct Job {
    JobView view;
    JobOpenOptions opts;
    std::map<std::string, Micros> last_progress;
  };
  void MaybeFinish(Micros now, Job& j, std::vector<JobNotice>* out);
  bool NodeDone(const Job& j, const std::string& node) const;
  Result<Job*> Writable(const std::string& job);

  std::set<std::string> hooks_;
  std::map<std::string, Job> jobs_;
  std::map<std::string, uint64_t> next_per_client_;
};

}  // namespace cm::push
