// Job mode's HTTP edge (docs/protocol/jobs.md): runs the job cores of one
// process — a node's (push/job_node.h) or the base's (job_node.h as the root,
// job_base.h for the answers) — on one EdgeLoop, moves the log's bytes over
// HTTP, and makes the cores' calls.
//
//   POST /v1/job-offer            {"object": "<JobObject JSON>", "offer": "<JobOfferBody JSON>"}
//                                 -> {"answer": "accepted" | "switched" | "declined"}
//   GET  /v1/jobs/<job>/log?from=N&node=I&max=B
//                                 the log's whole records from N, about B bytes (at least
//                                 one record; long poll: waits up to `poll` for one); I
//                                 names the child
//   GET  /v1/jobs/<job>/status    {"in_job": b, "pos": N, "complete": b}
//   base only:
//   POST /v1/job-progress, /v1/job-help, /v1/job-source-failed, /v1/job-unreachable,
//        /v1/job-entries (a node's states of the job's items and commands)
//
// POSTs are authenticated with the group key (CM-Auth, alg=mac) when one is
// set; the sender a stamp names must be the node its body speaks for.
// Every record is checked against the base's key before it is kept or
// served (jobrun/record_log.h); an offer whose job object is not the one the
// base signed in the log is dropped once the log's first record shows it.
// `cm-push relay` and `cm-push base` run it (tools/cm-push); the loopback
// test (tests/unit/jobrun) runs a base and nodes in one process. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/server.h"
#include "pack/keys.h"
#include "push/job_base.h"
#include "push/job_messages.h"
#include "push/job_node.h"
#include "util/group_key.h"
#include "util/status.h"

namespace cm::jobrun {

// One command of a job as a node runs it (docs/protocol/jobs.md, "Commands").
struct JobItemRef {
  uint32_t id = 0;
  std::string kind, name, path;  // path: where the node wrote the item out
};
struct JobCommand {
  std::string job;
  uint32_t entry = 0;
  std::string name, arg;          // "stage" | "commit" | "rollback" | "hook", and its argument
  std::vector<JobItemRef> items;  // stage: the assignments queued since the job's previous stage
};

struct JobEdgeOptions {
  bool base = false;       // the base: the root of every job it opens
  std::string name;        // a node's name in job objects ("" for the base)
  std::string url;         // how others reach us: http://host:port
  std::string dir;         // job logs: <dir>/<job>.log
  pack::PublicKey key;     // the base's public key: every record is checked against it
  std::optional<pack::SigningKey> sign_key;  // the base's: it signs the records it appends
  double up_bps = 0;       // our measured upload rate (0 = not measured)
  push::JobNodeOptions node;
  push::JobBaseOptions base_opts;
  std::chrono::milliseconds poll{1000};        // a log read waits this long for bytes
  size_t max_read = 4 << 20;                   // bytes per log response (a fetch asks for about a second's worth)
  proto::Micros child_idle = 3 * proto::kSeconds;  // a child silent this long has left
  std::chrono::milliseconds call_timeout{3000};
  size_t workers = 4;
  size_t max_jobs = 64;    // jobs a node takes part in at once (offers beyond: 503)
  // Every POST (offers, and the calls to the base) carries a CM-Auth MAC
  // with ReportKey(group key), from the sender's name to the receiver's
  // ("ccm" is the base), and is refused without one (401/403/409 as tree
  // mode). Unset: none sent, none asked (tests).
  std::optional<GroupKey> group_key;
  // A node runs its jobs' commands with this, one at a time (node-wide), in
  // log order, each once its record is in; a command that fails fails the
  // commands after it in its job ("not run"). `cancel` turns true when the
  // edge stops. Unset: every command fails ("this node runs no commands").
  std::function<Status(const JobCommand&, const std::atomic<bool>* cancel)> run_command;
  // The base: a node's states of a job's entries (POST /v1/job-entries), or,
  // with none, that it moved forward (its progress reports). Called on a
  // connection thread, never with the edge's loop held.
  std::function<void(const std::string& job, const std::string& node, const std::vector<push::EntryReport>& entries,
                     bool progress)>
      on_entries;
  // A node forgets a job (keeps its files, answers 404 for it) once its log
  // is whole, its entries are final and the base has them, and nobody has
  // fetched from it for this long; an offer opens it again from its files.
  proto::Micros forget_after = 600 * proto::kSeconds;
};

struct JobEdgeView {
  bool known = false;
  push::JobNodeView node;
  uint64_t log_size = 0;
  bool complete = false;
  uint64_t source_failures = 0;  // fetches that ended before the log's end (a source failed)
};

class JobEdge {
 public:
  static Result<std::unique_ptr<JobEdge>> Start(JobEdgeOptions opts);
  ~JobEdge();  // Stop()

  static bool Owns(const std::string& path);
  http::Response Handle(const http::Request& req);

  // The base: opens `object`'s job (its log starts with the signed object),
  // appends an item's bytes (item >= 1) and its end, and ends the job.
  // Errors: kUsage (not the base, a job opened twice, item 0), kNotFound,
  // the log's.
  Status OpenJob(const push::JobObject& object);
  // An item's first record: what it is ("file" or "stream") and its name;
  // nodes write it out as <dir>/<job>/<item>-<name>.
  Status BeginItem(const std::string& job, uint32_t item, const std::string& kind, const std::string& name,
                   const std::string& arg = "");
  Status AddData(const std::string& job, uint32_t item, std::string_view bytes);
  Status EndItem(const std::string& job, uint32_t item);
  Status Finish(const std::string& job);

  JobEdgeView View(const std::string& job);
  // The base's view of every node (empty on a node).
  std::vector<push::JobNodeState> BaseView(const std::string& job);
  // The base: each site's rate as this job measured it (bytes/s; the most a
  // node of it received from another site, push::JobBaseCore::SiteRxEstimate),
  // for sites it measured.
  std::map<std::string, double> SiteRates(const std::string& job);
  // The base: a job that is over stops (no more probes or repairs; its log
  // file stays). Unknown jobs are ignored.
  void Retire(const std::string& job);
  void Stop();

  struct Impl;

 private:
  explicit JobEdge(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cm::jobrun
