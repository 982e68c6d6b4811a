// Where the tools find their configuration and keys by default:
// /etc/content-mover (or $CM_CONFIG_DIR when set, for tests and
// unprivileged runs). Files there: ccm.key (+ ccm.pub), group.key,
// relay.toml, segment.toml (docs/SECURITY.md, man pages).
#pragma once

#include <string>

namespace cm {

std::string ConfigDir();
// `given` when non-empty; else ConfigDir()/`file` when it exists; else "".
std::string DefaultFile(const std::string& given, const char* file);

}  // namespace cm
