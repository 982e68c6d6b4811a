// Convergence on the CCM (docs/protocol/convergence.md): before a push, every
// server whose live tree is not the tree the push applies to is brought there
// from the checkpoint store, without an operator:
//
//   1. The base of the job: the assignment's BASE (cm-pack inspect --json).
//      The store must hold it; the shadow's current release is stored when
//      it is the base (a first run after an upgrade).
//   2. Every relay is asked for its live tree (site_probe.h, live=1).
//   3. push/converge.h plans: ready, synchronize from a release the store
//      holds (only the files that differ, by content, and every path changed
//      behind cm-apply's back), or replicate.
//   4. One catch-up job per group: the table (ckpt/sync_table.h) or the whole
//      tree, packed and signed with the job's key and serial file, pushed and
//      committed to that group only (--only), recorded like any job.
//
// A server that could not be brought to the base fails the job's stage with
// cm-apply's exit 8: the report says so, never "committed".
//
// After a job commits, the shadow's new release is stored as a checkpoint and
// the store keeps the newest `checkpoints` (ckpt::Store::Prune).
#pragma once

#include <string>
#include <vector>

#include "pushrun/controller.h"
#include "util/status.h"

namespace cm::pushrun {

struct ConvergeSummary {
  size_t ready = 0, caught_up = 0, failed = 0, unknown = 0;
  std::vector<std::string> jobs;  // catch-up job ids run
};

// What `cm-pack inspect --json` says of an assignment's BASE (pack format).
struct AssignmentBase {
  std::string job, type;
  uint64_t serial = 0;
  bool encrypted = false;   // packed with a group key: catch-ups are encrypted too
  std::string release;      // the base's release name ("" = not said)
  std::string manifest;     // hex of the base manifest ("" = none / not checked)
  std::string result;       // hex of the result manifest ("" = not known)
};
Result<AssignmentBase> InspectBase(const std::string& cm_pack, const std::string& file);

// The store of a state directory: STATE/checkpoints.
std::string CheckpointDir(const std::string& state_dir);

// Brings every server of the push to `want_release` (a release the store
// holds). `only`: restrict to these servers/sites (as --only). Runs nested
// pushes (RunPush with converge off).
// The job a convergence precedes (none: a restore or `cm-push converge`).
struct ConvergeJob {
  // The stage serial of the job that follows (its stage must come after the
  // catch-up's): catch-ups are numbered just below it, above every serial
  // the group's servers applied; a group with no room there is left to fail
  // that job (exit 8). 0: serials from the serial file.
  uint64_t below_serial = 0;
  std::string name = "restore";  // catch-up jobs are <name>.c<N>
  std::string done_manifest;     // the job's result: servers already on it are ready
  bool encrypt = false;          // the job is encrypted: so are its catch-ups
};
Result<ConvergeSummary> ConvergeTo(const PushOptions& opts, const std::string& want_release,
                                   const ConvergeJob& job = {});

// The base release of the push's first assignment, in the store ("" = the
// assignment names no base, or the store cannot have it: then no catch-up).
// `first`: InspectBase of the push's first assignment.
Result<std::string> BaseReleaseOf(const PushOptions& opts, const AssignmentBase& first);

// Catch-up jobs are recorded with this in their options (the command line):
// a rollback's "previous release" is never one of them.
constexpr const char* kCatchUpMark = "[catch-up ";
inline bool IsCatchUpJob(const std::string& options) { return options.find(kCatchUpMark) != std::string::npos; }

// `cm-push converge`: every server to the shadow's current release (the
// CCM's newest), stored as a checkpoint first. kNotFound without a shadow.
Result<ConvergeSummary> ConvergeToShadow(const PushOptions& opts, std::string* release);

// One line for the operator ("RELEASE: N of M servers run it ...") and the
// exit code: 0 all, 11 some, 1 none.
int ConvergeOutcome(const std::string& what, const std::string& release, const ConvergeSummary& s);

// Stores the shadow's current release (after a commit) and prunes.
Status KeepCheckpoint(const PushOptions& opts);

}  // namespace cm::pushrun
