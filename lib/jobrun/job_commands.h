// What a relay does for a job's commands (docs/protocol/jobs.md, "Commands"):
// a fixed set, never shell text from the network.
//
//   stage           cm-apply the assignments queued since the job's previous
//                   stage (in queue order) into the content root; none is an error
//   commit          cm-apply commit: the staged tree goes live
//   rollback [R]    cm-apply rollback (to release R when given)
//   hook NAME       the program this relay configured as NAME (--job-hook
//                   NAME=PROGRAM), with CM_JOB, CM_ENTRY and CM_ROOT in its
//                   environment; a name it did not configure is an error
//
// A command fails with its program's last error line and exit code; every
// program runs under a time limit and ends when the relay stops.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "jobrun/job_edge.h"
#include "util/status.h"

namespace cm::jobrun {

struct JobCommandOptions {
  std::string cm_apply = "cm-apply";
  std::string root;      // the content root ("" = stage, commit and rollback fail)
  std::string pub_key;   // passed to cm-apply for the assignments' signatures
  bool allow_unsigned = false;
  std::map<std::string, std::vector<std::string>> hooks;  // name -> argv
  std::chrono::seconds timeout{600};
};

// "NAME=PROGRAM [ARG...]" (split as util/command_template.h splits) ->
// hooks[NAME]. kUsage for a bad name (not [A-Za-z0-9._-]) or no program.
Status AddJobHook(const std::string& spec, JobCommandOptions* opts);

Status RunJobCommand(const JobCommandOptions& opts, const JobCommand& c, const std::atomic<bool>* cancel);

}  // namespace cm::jobrun
