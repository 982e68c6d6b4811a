#include "push/require.h"

namespace cm::push {
namespace {

// A decimal integer of at most 9 digits; false for anything else.
bool ParseSmallUint(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 9) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

Result<Require> ParseRequire(std::string_view text) {
  auto bad = [&] {
    return Error(Code::kUsage, "--require: expected all, quorum, N% or N, got '" + std::string(text) + "'");
  };
  if (text == "all") return Require{Require::Kind::kAll, 0};
  if (text == "quorum") return Require{Require::Kind::kQuorum, 0};
  uint32_t n = 0;
  if (!text.empty() && text.back() == '%') {
    if (!ParseSmallUint(text.substr(0, text.size() - 1), &n) || n > 100) return bad();
    return Require{Require::Kind::kPercent, n};
  }
  if (!ParseSmallUint(text, &n) || n == 0) return bad();
  return Require{Require::Kind::kCount, n};
}

std::string ToString(const Require& r) {
  switch (r.kind) {
    case Require::Kind::kAll: return "all";
    case Require::Kind::kQuorum: return "quorum";
    case Require::Kind::kPercent: return std::to_string(r.value) + "%";
    case Require::Kind::kCount: return std::to_string(r.value);
  }
  return "?";
}

bool CommitAllowed(const Require& r, size_t staged, size_t total) {
  if (staged == 0 || staged > total) return false;  // nothing to commit, or inconsistent counts
  switch (r.kind) {
    case Require::Kind::kAll: return staged == total;
    case Require::Kind::kQuorum: return staged * 2 > total;
    case Require::Kind::kPercent:
      return static_cast<uint64_t>(staged) * 100 >= static_cast<uint64_t>(r.value) * total;
    case Require::Kind::kCount: return staged >= r.value;
  }
  return false;
}

}  // namespace cm::push
