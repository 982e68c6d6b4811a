// Hooks around a switch of ROOT/current (man cm-apply(1), HOOKS): programs
// the site runs just before (pre_commit) and just after (post_commit) every
// commit and rollback, e.g. to take the server out of its load balancer and
// put it back, or to purge a cache.
//
// A hook is an argv (no shell: `$(...)`, `;` and quotes are bytes of the
// arguments), run with stdin /dev/null, stdout and stderr captured together
// (the last kHookOutputMax bytes kept), in a process group of its own that is
// killed (SIGKILL) when the timeout passes. Its environment is ours plus:
//
//   CM_HOOK           pre_commit | post_commit
//   CM_ACTION         commit | rollback
//   CM_ROOT           the content root
//   CM_RELEASE_FROM   the release current points at before the switch ("" = none)
//   CM_RELEASE_TO     the release current points at after it
//   CM_TREE           the directory holding CM_RELEASE_TO's tree (for pre_commit
//                     of a commit: the staged tree under ROOT/.cm/stage)
//   CM_SERIAL         serial of the assignment that asked for the switch (0 =
//                     asked on the command line)
//   CM_JOB            the job committed, or the job of the release rolled back to
//
// A pre_commit that exits non-zero, is killed or cannot be started refuses the
// switch (kHookRefused, nothing changed); a post_commit that fails leaves the
// switch done (kHookFailed).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace cm::apply {

constexpr size_t kHookOutputMax = 4096;
constexpr std::chrono::seconds kDefaultHookTimeout{60};

struct HookConfig {
  std::vector<std::string> pre_commit, post_commit;  // argv; empty = no hook
  std::chrono::milliseconds timeout = kDefaultHookTimeout;
  bool empty() const { return pre_commit.empty() && post_commit.empty(); }
};

// What a switch tells its hooks (the CM_* variables above).
struct SwitchInfo {
  std::string action;  // "commit" or "rollback"
  std::string root, from, to, tree, job;
  uint64_t serial = 0;
};

struct HookRun {
  std::string name;        // "pre_commit" or "post_commit"
  int exit_code = -1;      // 128+N when killed by signal N; -1 when it could not start
  bool timed_out = false;  // killed at the timeout
  std::string start_error; // why it could not start ("" = it ran)
  std::string output;      // the last kHookOutputMax bytes of stdout+stderr
  int64_t duration_ms = 0;
  bool ok() const { return start_error.empty() && !timed_out && exit_code == 0; }
  // "exit 3", "killed after the 60 s timeout", "cannot run /x: No such file..."
  std::string Outcome(std::chrono::milliseconds timeout) const;
  // The last non-empty line of output ("" = none).
  std::string LastLine() const;
};

// The CM_* entries (NAME=VALUE) for hook `name`.
std::vector<std::string> HookEnvironment(const std::string& name, const SwitchInfo& info);

// Runs one hook to its end or its timeout (see above). Never throws; a hook
// that cannot be started is a HookRun with start_error set.
HookRun RunHook(const std::string& name, const std::vector<std::string>& argv, const SwitchInfo& info,
                std::chrono::milliseconds timeout);

}  // namespace cm::apply
