// cm-apply's configuration file (TOML, default /etc/content-mover/apply.toml):
//
//   root = "/srv/www"                   content root
//   pub_key = "/etc/content-mover/ccm.pub"   require assignments signed by this key
//   group_key = "/etc/content-mover/group.key"  decrypt encrypted assignments
//   keep = 2                            releases kept (current + previous + keep-2 older)
//   space_margin = 1048576              bytes kept free beyond an assignment's needs
//
// Command-line flags override the file. Unknown keys are an error (a typo in
// `pub_key` must not silently turn signature checking off).
#pragma once

#include <cstdint>
#include <string>

#include "util/config_dir.h"
#include "util/status.h"

namespace cm::apply {

constexpr char kDefaultConfigName[] = "apply.toml";
constexpr char kDefaultPubKeyName[] = "ccm.pub";
// Where apply.toml and the default public key ccm.pub are looked for:
// util/config_dir.h ($CM_CONFIG_DIR, else /etc/content-mover).
using cm::ConfigDir;

struct ApplyConfig {
  std::string root;
  std::string pub_key;
  std::string group_key;
  int64_t keep = 2;
  uint64_t space_margin = 1ull << 20;
};

// Reads `path` into *cfg (fields absent from the file are left as they are).
// A missing file is kNotFound; a malformed one kUsage.
Status LoadConfig(const std::string& path, ApplyConfig* cfg);
Status ParseConfig(std::string_view text, const std::string& name, ApplyConfig* cfg);

}  // namespace cm::apply
