#include "http/range.h"

#include <algorithm>
#include <charconv>

namespace cm::http {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A non-empty run of decimal digits that fits in 64 bits, and nothing else.
std::optional<uint64_t> ParseU64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Case-insensitive "bytes" at the start of s.
bool StartsWithBytes(std::string_view s) {
  static constexpr std::string_view kUnit = "bytes";
  if (s.size() < kUnit.size()) return false;
  for (size_t i = 0; i < kUnit.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kUnit[i]) return false;
  }
  return true;
}

// "bytes" followed by `sep`; returns the rest.
std::optional<std::string_view> StripUnit(std::string_view s, char sep) {
  if (!StartsWithBytes(s) || s.size() < 6 || s[5] != sep) return std::nullopt;
  return s.substr(6);
}

}  // namespace

RangeRequest ParseRange(std::string_view header, uint64_t size) {
  RangeRequest out;
  header = Trim(header);
  if (header.empty()) return out;
  // Another unit must be ignored (RFC 9110 §14.2).
  if (!StartsWithBytes(header)) return out;
  auto spec = StripUnit(header, '=');
  if (!spec) {
    out.kind = RangeRequest::Kind::kUnsatisfiable;
    return out;
  }
  out.kind = RangeRequest::Kind::kUnsatisfiable;
  std::string_view s = Trim(*spec);
  if (s.find(',') != std::string_view::npos) return out;  // several ranges: not supported
  size_t dash = s.find('-');
  if (dash == std::string_view::npos) return out;
  std::string_view a = Trim(s.substr(0, dash)), b = Trim(s.substr(dash + 1));
  if (a.empty()) {  // suffix: the last n bytes
    auto n = ParseU64(b);
    if (!n || *n == 0 || size == 0) return out;
    uint64_t len = std::min(*n, size);
    out.range = {size - len, size - 1};
  } else {
    auto first = ParseU64(a);
    if (!first || *first >= size) return out;
    uint64_t last = size - 1;
    if (!b.empty()) {
      auto l = ParseU64(b);
      if (!l || *l < *first) return out;
      last = std::min(*l, size - 1);
    }
    out.range = {*first, last};
  }
  out.kind = RangeRequest::Kind::kRange;
  return out;
}

std::string FormatRange(uint64_t first, std::optional<uint64_t> last) {
  std::string s = "bytes=" + std::to_string(first) + "-";
  if (last) s += std::to_string(*last);
  return s;
}

std::string FormatContentRange(const ByteRange& r, uint64_t size) {
  return "bytes " + std::to_string(r.first) + "-" + std::to_string(r.last) + "/" + std::to_string(size);
}

std::string FormatUnsatisfiedRange(uint64_t size) { return "bytes */" + std::to_string(size); }

std::optional<ContentRange> ParseContentRange(std::string_view header) {
  auto rest = StripUnit(Trim(header), ' ');
  if (!rest) return std::nullopt;
  std::string_view s = Trim(*rest);
  size_t dash = s.find('-'), slash = s.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return std::nullopt;
  auto first = ParseU64(s.substr(0, dash));
  auto last = ParseU64(s.substr(dash + 1, slash - dash - 1));
  if (!first || !last || *last < *first) return std::nullopt;
  ContentRange cr;
  cr.range = {*first, *last};
  std::string_view total = s.substr(slash + 1);
  if (total != "*") {
    auto n = ParseU64(total);
    if (!n || *last >= *n) return std::nullopt;
    cr.size = *n;
  }
  return cr;
}

}  // namespace cm::http
