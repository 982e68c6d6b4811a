// The cm-push controller: one push job run on the CCM, from the assignment
// files to the final per-server report.
//
//   1. Load the sites file; record the job in the state database (refusing,
//      or queueing with `wait`, when a running job touches the same servers).
//   2. Serve the assignment over HTTP and listen for relays' reports (and for
//      cm-leader's segment reports, to know each site's current leader).
//   3. For each assignment part: order the site leaders, run the tree
//      scheduler (lib/push/scheduler.h) until every site has sent its report
//      or failed; a dead leader is replaced by the site's next leader and the
//      relays it fed are re-parented.
//   4. If enough servers staged (`require`), send the commit assignment the
//      same way to the servers that staged; then update the shadow copy.
//   5. Record every server's state; print the table / JSON; run on_fail.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "util/status.h"

namespace cm::pushrun {

struct PushOptions {
  std::vector<std::string> assignments;  // one job's parts, in order
  std::string sites_file;
  std::string state_dir;                 // "" = no state database
  std::string require = "all";           // all | quorum | N% | N
  bool commit = true;
  std::string commit_file;               // a ready commit assignment ("" = make one with cm-pack)
  std::string sign_key;                  // the CCM's key (required): seals every order; signs the commit assignment
  std::string group_key;                 // the group key (required): checks the relays' report stamps
  std::string serial_file;               // cm-pack --serial-file for it (else the clock)
  std::string cm_pack = "cm-pack";
  std::string on_fail;                   // shell command per failed server
  double wait_s = -1;                    // < 0: refuse a conflicting job; else wait this long
  std::string report_file;
  std::string listen;                    // overrides [ccm] listen
  std::string shadow;                    // content root brought up to date after a commit
  std::string cm_apply = "cm-apply";     // for the shadow copy
  size_t star_max = 0;                   // a star up to this many sites; 0: [ccm] uplink_mbit / fastest rate_mbit, else 1 (a chain)
  std::vector<std::string> only;         // push only to these servers or sites (names); empty = all
  std::string on_commit;                 // shell command per committed server
  std::string metrics_file;              // node_exporter textfile written at the end ("" = none)
  std::string invocation;                // JSON {"cwd","argv"} recorded for `cm-push retry`
  std::string release;                   // a rollback's target release (for the records)
  bool probe = true;                     // ask every relay at start whether it is up and whom cm-leader elected
  bool pipeline = true;
  bool sequential = false;               // baseline: unicast to every server in turn
  double timeout_s = 3600;
  bool json = false;                     // JSON events on stdout
  bool live_view = false;                // per-site progress on stderr (a terminal)
  int verbosity = 1;                     // 0 quiet, 1 normal, 2+ verbose
  std::string command_line;              // recorded with the job
  // Hex of the manifest of the tree the job makes (its BASE's result; RunPush
  // fills it from the last assignment): exact reports (push::JobOptions).
  std::string expect_manifest;
  bool converge = true;                  // first bring servers not on the job's base there (converge_run.h)
  size_t checkpoints = 10;               // releases kept in STATE/checkpoints (0 = none kept)
};

struct PushOutcome {
  int exit_code = 0;        // 0 all done, 11 partial, 1 failed (util/exit_codes.h)
  size_t servers = 0, ok = 0, failed = 0;
  std::string summary;      // one line
};

Result<PushOutcome> RunPush(const PushOptions& opts);

}  // namespace cm::pushrun
