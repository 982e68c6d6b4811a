// A command line given as one string (cm-mcast --exec, a TOML key) turned
// into argv for util::RunProcess, with no shell anywhere: words are split on
// blanks; '...' keeps everything literally; "..." too, except that a
// backslash before " or another backslash keeps just that character; outside
// quotes a backslash keeps the next character.
// Nothing is expanded ($, `, *, ~ and redirections are plain characters).
// "{}" in any word is replaced by a value (a file name) as it is, so the value
// is always data inside one argument and never read as a command.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace cm {

// kUsage on an unterminated quote or an empty command.
Result<std::vector<std::string>> SplitCommand(std::string_view command);
// argv with every "{}" in every word replaced by `value`.
std::vector<std::string> SubstituteBraces(const std::vector<std::string>& argv, std::string_view value);

}  // namespace cm
