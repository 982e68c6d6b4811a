// The report of one cm-apply action (one assignment, or a commit/rollback
// asked on the command line): what was done and how it ended. Written as JSON
// to ROOT/.cm/reports/<serial>.json for verified assignments (never for input
// that failed verification or the order check, so a bad or replayed file can
// not overwrite a real report; the newest report_keep are kept) and printed
// on stdout with --json.
//
// {"file":"a.cma","job":"j1","serial":42,"type":"publish","part":1,
//  "last_part":true,"action":"staged","result":"ok","code":"ok","message":"",
//  "release":"s000000000041-j0","release_serial":41,"files_created":3,...,
//  "bytes_written":12345,"duration_ms":17,"host":"bes-12",
//  "hooks":[{"name":"pre_commit","exit":0,"timed_out":false,"error":"",
//            "duration_ms":12,"output":"..."}]}
//
// serial is the assignment's; release is the release ROOT/current points at
// after the action (whatever it was: also after an error or a no-op; "" =
// none) and release_serial the serial in its name; manifest the hex of its
// recorded manifest (release_manifest.h; "" = none), staged_manifest that of
// the staged tree when the action completed a stage ("" otherwise). hooks:
// the hooks that ran.
#pragma once

#include <cstdint>
#include <string>

#include <vector>

#include "apply/hooks.h"
#include "apply/layout.h"
#include "apply/stager.h"
#include "util/status.h"

namespace cm::apply {

struct Report {
  std::string file;
  std::string job;
  uint64_t serial = 0;
  std::string type;  // "publish", ... ("" when the header could not be read)
  uint32_t part = 0;
  bool last_part = false;
  // "verified", "staged", "committed", "rolled-back", "already-applied",
  // "unchanged" (a job that changes nothing: no stage, no new release), "none"
  std::string action = "none";
  std::string release;  // the live release after the action
  uint64_t release_serial = 0;
  std::string manifest;         // hex of the live release's recorded manifest ("" = none)
  std::string staged_manifest;  // a stage that completed: hex of the staged tree's manifest
  std::vector<HookRun> hooks;
  Status status;
  StageStats stats;
  int64_t duration_ms = 0;
  std::string host;
};

std::string ReportJson(const Report& r);
// One line for people: "a.cma: staged job j1 serial 42 part 1 (last): ... -> s000000000041-j0".
std::string ReportSummary(const Report& r);
// Writes the report and deletes all but the newest `keep` reports (by serial).
Status WriteReport(const Layout& l, const Report& r, int keep);
std::string HostName();

}  // namespace cm::apply
