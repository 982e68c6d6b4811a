// The relay's TOML configuration (`cm-push relay --config FILE`, man
// cm-push(1)): the same keys as the long flags, with '_' for '-'.
#pragma once

#include <functional>
#include <string>

#include "pushrun/relay.h"
#include "util/status.h"

namespace cm::pushrun {

// Fills the options the user did not give as flags (`given("--flag")`) from
// the TOML file at `path`. Unknown keys and mistyped values are kUsage
// errors naming the file and line.
Status LoadRelayToml(const std::string& path, const std::function<bool(const std::string&)>& given,
                     RelayOptions* r);

}  // namespace cm::pushrun
