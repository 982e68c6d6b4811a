// cm-apply's configuration file (TOML, default CONFIG_DIR/apply.toml, man
// cm-apply(1) CONFIGURATION):
//
//   root = "/srv/www"                           --root: content root
//   pub_key = "/etc/content-mover/ccm.pub"      --pub-key: require assignments signed by this key
//   group_key = "/etc/content-mover/group.key"  --group-key: decrypt encrypted assignments
//   keep = 2                                    --keep: releases kept (current + previous + keep-2 older)
//   space_margin = 1048576                      bytes kept free beyond an assignment's needs
//   report_keep = 200                           reports kept in ROOT/.cm/reports (1..1000000)
//   pre_commit = ["/usr/local/sbin/lb", "drain"]  --pre-commit PROG: run before every switch
//   post_commit = ["/usr/local/sbin/lb", "up"]    --post-commit PROG: run after every switch
//   hook_timeout = 60                           --hook-timeout: seconds before a hook's group is killed
//
// Read by tools/cm-apply with util::TomlFlags, like every tool's --config: a
// key is bound to its flag's variable and fills it only when the flag was not
// given. space_margin and report_keep have no flag (site settings, not
// per-run ones), so they are bound without one and always come from the file.
// A hook is an argv (apply/hooks.h); its flag takes one program path. Unknown keys and
// wrong types are errors naming file and line (a typo in `pub_key` must not
// silently turn signature checking off).
#pragma once

#include <cstdint>

#include "util/config_dir.h"

namespace cm::apply {

constexpr char kDefaultConfigName[] = "apply.toml";
constexpr char kDefaultPubKeyName[] = "ccm.pub";
constexpr int64_t kDefaultKeep = 2;
constexpr uint64_t kDefaultSpaceMargin = 1ull << 20;
// Where apply.toml and the default public key ccm.pub are looked for:
// util/config_dir.h ($CM_CONFIG_DIR, else /etc/content-mover).
using cm::ConfigDir;

}  // namespace cm::apply
