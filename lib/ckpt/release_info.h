// One checkpoint's record, STORE/releases/<release>.info (docs/STATE.md,
// "Checkpoints"): text, one "key value" line each after the line
// "cm-checkpoint 1", the value running to the end of the line:
//
//   release s000000000042-job7
//   serial 42
//   manifest <64 hex>            ManifestHash of the stored tree
//   files 1234                   file entries
//   bytes 987654321              their content bytes
//   created_unix 1796000000      when it was stored
//   source_dev 2049              st_dev of the tree it was taken from
//   source /srv/shadow/releases/s000000000042-job7   its real path then
//
// The .info is written last: a release exists once its .info does. Unknown
// keys are ignored (forward compatible). Pure: no files here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/hash.h"
#include "util/status.h"

namespace cm::ckpt {

struct ReleaseInfo {
  std::string release;
  uint64_t serial = 0;
  Hash256 manifest{};
  uint64_t files = 0;
  uint64_t bytes = 0;
  int64_t created_unix = 0;
  uint64_t source_dev = 0;
  std::string source;  // "" when unknown
  bool operator==(const ReleaseInfo&) const = default;
};

std::string EncodeInfo(const ReleaseInfo& i);
// kCorrupt for a text that is not a complete record.
Result<ReleaseInfo> DecodeInfo(std::string_view text);

// A release name the store accepts as a file name: 1..200 bytes of
// [A-Za-z0-9._-], not starting with '.' (cm-apply's release ids are).
bool IsValidReleaseName(std::string_view name);

// Newest first: higher serial, then later created, then name descending.
bool NewerThan(const ReleaseInfo& a, const ReleaseInfo& b);

}  // namespace cm::ckpt
