// Validation of content paths as they travel in delta tables and assignments.
#pragma once

#include <string_view>

namespace cm {

constexpr size_t kMaxContentPath = 4096;

// True for a relative, '/'-separated path with no empty, "." or ".."
// component, no leading or trailing '/', no NUL, at most kMaxContentPath bytes.
bool IsSafeContentPath(std::string_view path);

}  // namespace cm
