// SamStable (leader/sam.h) on disk: a text form, one fact a line, that
// cm-leader writes (atomically, synced) whenever the SAM core's
// stable_version() changed, before that call's datagrams leave
// (invariant I4), and reads at start. docs/FORMATS.md "SAM stable storage".
#pragma once

#include <string>
#include <string_view>

#include "leader/sam.h"
#include "util/status.h"

namespace cm::leader {

std::string EncodeSamStable(const SamStable& s);
// Total: kCorrupt (one line naming the bad line) on anything malformed.
Result<SamStable> DecodeSamStable(std::string_view text);

}  // namespace cm::leader
