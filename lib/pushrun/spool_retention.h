// Spool retention for a relay (relay.toml `spool_keep`, --spool-keep): the
// spool keeps the files of the `keep` serials written last (<serial>.cma,
// or <serial>.cma.part while one arrives), so a rerun finds them; older
// serials' files go, and so does a .part left beside its complete file.
// Whether a serial is in use (a transfer, a child, a reader) is the
// caller's to decide: it never deletes one in use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cm::pushrun {

inline constexpr int kDefaultSpoolKeep = 10;

struct SpoolFile {
  uint64_t serial = 0;
  std::string path;
  bool part = false;       // <serial>.cma.part
  int64_t mtime_ns = 0;
};

// The <serial>.cma and <serial>.cma.part files directly in `spool` (any
// other name is left alone). Empty when it cannot be read.
std::vector<SpoolFile> ListSpool(const std::string& spool);

struct RetentionPlan {
  std::vector<uint64_t> old_serials;    // beyond the `keep` newest (by their newest file), oldest first
  std::vector<std::string> stale_parts;  // a .part whose serial's complete file is there
};
// Pure: which serials are beyond the newest `keep` (keep >= 0) and which
// .part files are stale.
RetentionPlan PlanRetention(const std::vector<SpoolFile>& files, int keep);

}  // namespace cm::pushrun
