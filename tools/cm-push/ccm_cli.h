// cm-push's CCM subcommands besides the push itself: the records (status,
// history, servers), retry (the failed servers of a job, again) and the
// fleet rollback's assignment.
#pragma once

#include <string>
#include <vector>

#include "pushrun/controller.h"

namespace cm {

int StatusCommand(const std::string& state_dir, const std::string& job, bool json);
int HistoryCommand(const std::string& state_dir, int limit, bool json);
int ServersCommand(const std::string& state_dir, bool json);

// {"cwd": ..., "argv": [...]}: how this push was started (for retry).
std::string InvocationJson(int argc, char** argv);

// Runs job JOB's recorded command again (from its directory) with --only
// its servers that did not reach the job's goal; returns only on error, or
// when there is nothing to retry (exit 0).
int RetryCommand(const std::string& state_dir, const std::string& job);

// Makes the signed rollback assignment for `release` ("" = the release
// before the one most servers run, from the state database) and sets
// p->assignments / p->release. Returns 0 or an exit code (error logged).
int PrepareRollback(pushrun::PushOptions* p, std::string release, std::string* tmp_dir);

}  // namespace cm
