// The one rule for content paths as they travel in delta tables and
// assignments (cm-delta writes them, cm-pack carries them, cm-apply checks
// them again before touching the disk).
#pragma once

#include <string_view>

namespace cm {

constexpr size_t kMaxContentPath = 4096;
constexpr size_t kMaxPathComponent = 255;

// nullptr for a relative, '/'-separated path with no empty, "." or ".."
// component, no leading or trailing '/', no NUL, components of at most 255
// bytes and at most kMaxContentPath bytes in all; otherwise why not.
const char* ContentPathProblem(std::string_view path);
inline bool IsSafeContentPath(std::string_view path) { return ContentPathProblem(path) == nullptr; }

}  // namespace cm
