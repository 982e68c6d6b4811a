#include "pushdb/job_types.h"

#include <charconv>

namespace cm::pushdb {

namespace {

template <typename E, size_t N>
std::optional<E> ParseName(std::string_view name, const char* const (&names)[N]) {
  for (size_t i = 0; i < N; ++i)
    if (name == names[i]) return static_cast<E>(i);
  return std::nullopt;
}

// Indexed by the enums' values; these strings are stored in the database.
constexpr const char* kKindNames[] = {"publish", "commit", "rollback", "replicate"};
constexpr const char* kJobStateNames[] = {"queued", "running", "done", "partial", "failed", "aborted"};

}  // namespace

const char* JobKindName(JobKind k) { return kKindNames[static_cast<int>(k)]; }
const char* JobStateName(JobState s) { return kJobStateNames[static_cast<int>(s)]; }
std::optional<JobKind> ParseJobKind(std::string_view n) { return ParseName<JobKind>(n, kKindNames); }
std::optional<JobState> ParseJobState(std::string_view n) { return ParseName<JobState>(n, kJobStateNames); }

std::string FormatSerials(const std::vector<uint64_t>& serials) {
  if (serials.empty()) return "-";
  bool contiguous = true;
  for (size_t i = 1; i < serials.size(); ++i) contiguous = contiguous && serials[i] == serials[i - 1] + 1;
  if (serials.size() == 1) return std::to_string(serials[0]);
  if (contiguous) return std::to_string(serials.front()) + "-" + std::to_string(serials.back());
  std::string out;
  for (uint64_t s : serials) out += (out.empty() ? "" : ",") + std::to_string(s);
  return out;
}

std::string EncodeSerials(const std::vector<uint64_t>& serials) {
  std::string out;
  for (uint64_t s : serials) out += (out.empty() ? "" : " ") + std::to_string(s);
  return out;
}

std::optional<std::vector<uint64_t>> DecodeSerials(std::string_view text) {
  std::vector<uint64_t> out;
  while (!text.empty()) {
    uint64_t v = 0;
    auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec != std::errc() || r.ptr == text.data()) return std::nullopt;
    out.push_back(v);
    text.remove_prefix(static_cast<size_t>(r.ptr - text.data()));
    if (!text.empty()) {
      if (text[0] != ' ' || text.size() == 1) return std::nullopt;
      text.remove_prefix(1);
    }
  }
  return out;
}

}  // namespace cm::pushdb
