// `--require all|quorum|N%|N`: how many servers must have staged an
// assignment before the commit may go (it then goes only to those that
// staged). Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace cm::push {

struct Require {
  enum class Kind { kAll, kQuorum, kPercent, kCount };
  Kind kind = Kind::kAll;
  uint32_t value = 0;  // kPercent: 0..100; kCount: the number of servers
  bool operator==(const Require&) const = default;
};

// "all", "quorum", "N%" (integer N, 0..100) or "N" (integer N >= 1), exactly
// (no spaces, signs or fractions). Errors: kUsage with the offending text.
Result<Require> ParseRequire(std::string_view text);
// The text ParseRequire reads back to the same value.
std::string ToString(const Require& r);

// Whether the commit may go with `staged` of `total` servers staged. Never
// with nothing staged (so never for total == 0), nor when staged > total. all: every server; quorum:
// more than half; N%: staged >= N% of total (rounded up); N: at least N.
bool CommitAllowed(const Require& r, size_t staged, size_t total);

}  // namespace cm::push
