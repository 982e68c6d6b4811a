// What the controller needs to know of an assignment file before it sends
// it: serial, job, type, size, chunking. Read from its header and tail (the
// same checks a relay makes, without a signature check: cm-apply does that).
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace cm::pushrun {

struct AssignmentInfo {
  uint64_t serial = 0;
  std::string job;
  std::string type;          // publish, replicate, commit, ...
  uint64_t size = 0;         // file size
  uint64_t covered = 0;      // bytes in chunks (what relays count as verified)
  uint64_t chunk_size = 0;
};

// Code::kCorrupt for a malformed file; Code::kUsage for a version 1 file
// (no chunk table: relays could not check it chunk by chunk).
Result<AssignmentInfo> ReadAssignmentInfo(const std::string& path);

}  // namespace cm::pushrun
