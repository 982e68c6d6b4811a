// `cm-apply status`: a read-only look at a content root. Takes no lock and
// changes nothing (an interrupted switch is reported, and finished by the
// next cm-apply that writes).
#pragma once

#include <string>

#include "util/status.h"

namespace cm::apply {

struct StatusView {
  std::string root, current, previous;
  uint64_t last_serial = 0;         // the larger of the two below
  uint64_t last_stage_serial = 0, last_switch_serial = 0;
  uint64_t current_serial = 0;      // the serial in current's name
  std::string staged_job, staged_type;
  uint32_t staged_parts = 0;
  bool staged_complete = false;
  bool switch_interrupted = false;  // a journal exists
  bool initialized = false;         // ROOT/.cm exists
  std::string last_report;          // JSON text of the newest report, "" if none
  std::string last_report_path;     // its file, "" if none
  std::string manifest;             // hex of current's recorded manifest, "" if none recorded
  std::string staged_manifest;      // hex of a complete stage's manifest, "" if none
};

// kNotFound when ROOT does not exist.
Result<StatusView> ReadStatus(const std::string& root);
std::string StatusJson(const StatusView& v);
std::string StatusText(const StatusView& v);

struct LiveTree;
// `cm-apply verify-live`: one JSON line (man cm-apply(1), VERIFY-LIVE; each
// list at most kMaxLivePaths paths, "truncated" when cut), or text for people.
constexpr size_t kMaxLivePaths = 1000;
std::string LiveJson(const LiveTree& t);
std::string LiveText(const LiveTree& t);

}  // namespace cm::apply
