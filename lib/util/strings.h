// Small parsing and formatting helpers for command-line values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cm {

// "4096", "64K", "100M", "4G", "1T" (binary multiples, optional trailing 'B'/'iB').
std::optional<uint64_t> ParseSize(std::string_view s);
// 1536 -> "1.5 KiB"
std::string HumanBytes(uint64_t n);

}  // namespace cm
