// The small text format of cm-apply's own files (state, journal):
//   <magic> <version>\n
//   <key> <value>\n ...          value = the rest of the line, may be empty
// Keys may repeat (lists). Human-readable so an operator can inspect them.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace cm::apply {

using KvLines = std::vector<std::pair<std::string, std::string>>;

// Values must not contain '\n' (callers only store ids, numbers and job ids).
std::string EncodeKv(std::string_view magic, int version, const KvLines& lines);
// kCorrupt on a wrong magic, an unknown version or a malformed line.
Result<KvLines> DecodeKv(std::string_view magic, int version, std::string_view text);

// Parses a decimal uint64 (no sign, no spaces); false on anything else.
bool ParseU64(std::string_view s, uint64_t* out);

}  // namespace cm::apply
