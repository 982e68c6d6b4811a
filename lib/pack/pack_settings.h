// cm-pack's settings as the user gives them (flags and the TOML file
// /etc/content-mover/pack.toml), turned into PackOptions / ReaderOptions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "pack/assignment_reader.h"
#include "pack/packer.h"
#include "util/status.h"

namespace CLI {
class Option;
}

namespace cm::pack {

struct PackSettings {
  std::string job;
  uint64_t serial = 0;  // 0 = from serial_file or the clock
  std::string serial_file;
  std::string max_size = "4G";
  int format = 0;                  // 0 = newest (3; 1 with chunk size 0)
  std::string chunk_size = "64K";  // "0" = format 1 (no chunk table)
  int level = 3;
  int delta_level = 17;
  bool no_owner = false;
  std::string sign_key, group_key;
  // The BASE command's overrides (PackOptions): "" = from the delta table.
  // base_manifest/result_manifest: 64 hex digits or "none".
  std::string base_release, base_serial, base_manifest, result_manifest;
  bool no_base = false;
};

// Reads pack.toml (man cm-pack(1)) with util::TomlFlags: each key (sign_key,
// group_key, serial_file, max_size, chunk_size, level, delta_level) fills its
// setting unless its flag, flag("--sign-key") etc. (null when the subcommand
// has no such flag), was given. A missing file is no error unless
// explicit_path (then kUsage, exit 2, as every tool's --config). Unknown keys, wrong types and
// levels outside 1..22 are kUsage naming FILE:LINE and the key.
Status LoadPackConfig(const std::string& path, bool explicit_path,
                      const std::function<const CLI::Option*(const char*)>& flag, PackSettings* s);

// Parses sizes and loads keys. Errors: kUsage, key file errors.
Result<PackOptions> MakePackOptions(const PackSettings& s, Type type);

// For inspect/verify: optional keys; allow_sealed (no group key needed).
Result<ReaderOptions> MakeReaderOptions(const std::string& pub_key, const std::string& group_key);

}  // namespace cm::pack
