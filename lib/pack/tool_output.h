// cm-pack's outputs: an assignment written to stdout through a temporary
// file, and the summary of what was packed (JSON or one line per file).
#pragma once

#include <string>
#include <vector>

#include "pack/packer.h"
#include "util/status.h"

namespace cm::pack {

// Output "-" (or none): pack into a temporary file, then copy it to stdout.
// The temporary file and directory are removed by the destructor.
class StdoutSpool {
 public:
  StdoutSpool() = default;
  StdoutSpool(const StdoutSpool&) = delete;
  StdoutSpool& operator=(const StdoutSpool&) = delete;
  ~StdoutSpool();
  // Rewrites *output to the temporary path when it is "" or "-"; kUsage when
  // stdout is a terminal.
  Status Prepare(std::string* output);
  // Copies the packed file to stdout (kUsage if the job was split).
  Status Flush(const PackResult& r);

 private:
  std::string dir_, path_;
};

// {"files": [...], "entries": N, "raw_bytes": N} (no newline).
std::string PackResultJson(const PackResult& r);
// The release a rollback assignment names ("" = the previous one).
std::string RollbackTarget(const Header& h);
// One human line per file written.
std::vector<std::string> PackResultLines(const PackResult& r);

}  // namespace cm::pack
