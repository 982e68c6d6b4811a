// The report of one cm-apply action (one assignment, or a commit/rollback
// asked on the command line): what was done and how it ended. Written as JSON
// to ROOT/.cm/reports/<serial>.json for verified assignments (never for input
// that failed verification or the order check, so a bad or replayed file can
// not overwrite a real report) and printed on stdout with --json.
//
// {"file":"a.cma","job":"j1","serial":42,"type":"publish","part":1,
//  "last_part":true,"action":"staged","result":"ok","code":"ok","message":"",
//  "release":"","files_created":3,"files_patched":1,"files_removed":2,
//  "dirs_created":1,"bytes_written":12345,"duration_ms":17,"host":"bes-12"}
#pragma once

#include <cstdint>
#include <string>

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
  // "verified", "staged", "committed", "rolled-back", "already-applied", "none"
  std::string action = "none";
  std::string release;  // release made current (commit/rollback)
  Status status;
  StageStats stats;
  int64_t duration_ms = 0;
  std::string host;
};

std::string ReportJson(const Report& r);
Status WriteReport(const Layout& l, const Report& r);
std::string HostName();

}  // namespace cm::apply
