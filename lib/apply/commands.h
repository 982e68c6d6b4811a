// The entry points behind cm-apply's subcommands. Each opens what it needs,
// does its work and returns what happened; the tool only parses options,
// prints and maps the status to an exit code.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "apply/applier.h"
#include "apply/content_root.h"
#include "apply/release_manifest.h"
#include "apply/report.h"
#include "util/status.h"

namespace cm::apply {

struct Outcome {
  Status status;
  std::string where;            // the file an error is about ("" = the message names it)
  std::vector<Report> reports;  // one per assignment or action attempted
};

struct ApplyRequest {
  std::string root;
  std::vector<std::string> files;  // "-" = standard input (spooled under ROOT/.cm)
  bool commit = false;             // commit the job of the last file once staged
  ApplyOptions opts;
  RootOptions root_opts;
};

// Applies the files in order, stopping at the first error.
Outcome RunApply(const ApplyRequest& req);
// Commits the staged tree of `job` ("" = the staged job).
Outcome RunCommit(const std::string& root, const std::string& job, const RootOptions& ro);
// Switches current to `to_release`, or ("") back to the previous release.
Outcome RunRollback(const std::string& root, const std::string& to_release, const RootOptions& ro);

struct SerialReset {
  uint64_t old_stage = 0, old_switch = 0;  // the last serials before
  uint64_t serial = 0;                     // both spaces' last serial now
};
// `cm-apply reset-serial` (man cm-apply(1), SERIALS): sets the last serial of
// both spaces to `to`, or by default to the newest remembered serial that is
// not more than an hour after now_us (microseconds since the epoch, as clock
// serials are), and forgets remembered assignments above it. Needs the
// root's lock and ownership like every writing subcommand.
Result<SerialReset> ResetSerials(const std::string& root, std::optional<uint64_t> to, uint64_t now_us,
                                 const RootOptions& ro);
// `cm-apply verify-live`: the live tree against its release's recorded
// manifest (computed first for a root from an older version). full: every
// file read (no stat cache). kNotFound when there is no live release. Takes
// the root's lock (a switch in progress is finished first).
Result<LiveTree> VerifyLive(const std::string& root, bool full, const RootOptions& ro);
// Verifies files without a content root.
Outcome RunVerify(const std::vector<std::string>& files, const ApplyOptions& opts);

// Copies standard input to a new file under ROOT/.cm; returns its path.
Result<std::string> SpoolStdin(const Layout& l);

}  // namespace cm::apply
