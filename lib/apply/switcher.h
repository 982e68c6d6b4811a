// Switching ROOT/current atomically: commit (to the staged tree) and rollback
// (to the previous release), both journaled so that recovery can finish a
// switch interrupted at any instant.
//
// A switch, given its journal {from, to, stage}:
//   1. commit only: move .cm/stage/<stage> to releases/<to> (one rename),
//      then apply the root directory's metadata
//   2. create the symlink ROOT/.current.tmp -> releases/<to> and rename() it
//      over ROOT/current. rename(2) replaces the old symlink atomically: a
//      reader resolving ROOT/current sees the old tree or the new one, never
//      a mix and never a missing path. (Because current is a symlink, not a
//      directory, renameat2(RENAME_EXCHANGE) is not needed.) fsync ROOT.
//   3. state: current = to, previous = from, stage cleared, the requesting
//      assignment recorded; one atomic write
//   4. remove the journal; apply retention
// Every step checks whether it was already done, so running the same journal
// again (recovery) converges on the same result.
//
// Rollback swaps current and previous: a second rollback returns to the tree
// the first one left. A rollback to a named release switches to it; the
// release that was current becomes previous.
//
// Hooks (hooks.h, RootOptions::hooks): pre_commit runs once the switch is
// known to be possible and before anything changes (its failure refuses the
// switch: kHookRefused, live untouched); post_commit runs after step 4 (its
// failure is SwitchResult::post_hook: the switch stays done). A no-op (the
// job already live, a job that changes nothing, a rollback to the current
// release) runs no hook; neither does recovery.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "apply/content_root.h"
#include "apply/hooks.h"
#include "apply/journal.h"
#include "apply/state.h"
#include "util/status.h"

namespace cm::apply {

struct SwitchResult {
  std::string from, to;  // to: the release current points at afterwards
  bool already = false;  // nothing to do: the job (or release) is already current
  bool noop = false;     // nothing to do: the job changes nothing (State::noop_job)
  Status post_hook;      // kHookFailed: post_commit failed after the switch
};

// Commits the staged tree of `job` ("" = whichever job is staged, else the
// last job found to change nothing). kNotFound when no complete staged tree
// exists for it. A job whose release is already current, or that changes
// nothing, is a no-op (already = true; noop = true for the latter).
// `hooks_run`, when not null, receives each hook run (also on failure).
Result<SwitchResult> Commit(ContentRoot* root, const std::string& job, const std::optional<AppliedId>& applied,
                            std::vector<HookRun>* hooks_run = nullptr);

// Switches current to `to_release`, or ("" ) back to the previous release.
// kNotFound when there is none or it is not on this server (the message names
// the releases there are). A rollback to the current release is a no-op
// (already = true).
Result<SwitchResult> Rollback(ContentRoot* root, const std::optional<AppliedId>& applied,
                              const std::string& to_release = "", std::vector<HookRun>* hooks_run = nullptr);

// The releases under ROOT/releases, newest first (by serial).
std::vector<std::string> ListReleases(const Layout& l);

// Carries out (or finishes) the switch a journal describes; see above.
// stage_final: the stage's directory metadata was applied and made durable
// just before the journal was written (Commit); recovery leaves it false and
// applies it again before the move (idempotent).
Status RunSwitch(ContentRoot* root, const Journal& j, bool stage_final = false);

// Deletes releases beyond the retention count; never current or previous.
Status ApplyRetention(ContentRoot* root);

}  // namespace cm::apply
