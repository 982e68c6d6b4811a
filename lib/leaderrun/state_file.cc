#include "leaderrun/state_file.h"

#include <sys/stat.h>

#include "util/file_util.h"
#include "util/json.h"

namespace cm::leaderrun {

const char* RoleName(leader::State s) {
  switch (s) {
    case leader::State::kLeader: return "leader";
    case leader::State::kKnown: return "member";
    case leader::State::kUnknown:
    case leader::State::kVoting:
    case leader::State::kConceding: return "candidate";
  }
  return "candidate";
}

std::string StateFileJson(const SegmentState& s, int64_t updated_unix_ms) {
  JsonObject j;
  j.Uint("v", 1).Str("segment", s.segment).Str("self", s.self.ToString());
  if (s.leader) j.Str("leader", s.leader->ToString());
  else j.Null("leader");
  j.Uint("epoch", s.epoch).Uint("committed_seq", s.committed_seq).Str("role", s.role);
  if (!s.members.empty()) {
    JsonArray a;
    for (const auto& [name, address] : s.members) a.Raw(JsonObject().Str("name", name).Str("address", address).Build());
    j.Raw("members", a.Build());
  }
  if (s.sam) j.Raw("sam", JsonObject().Uint("delivered", s.sam_delivered).Uint("applied", s.sam_applied).Build());
  return j.Int("updated_unix_ms", updated_unix_ms).Build() + "\n";
}

Status WriteStateFile(const std::string& path, const std::string& json) {
  AtomicFile f;
  CM_RETURN_IF_ERROR(f.Open(path, 0644));
  // Readable by the relay (another user) whatever our umask.
  if (::fchmod(f.fd(), 0644) != 0) return ErrnoError(path, errno);
  CM_RETURN_IF_ERROR(WriteFull(f.fd(), json.data(), json.size()));
  return f.Commit();
}

}  // namespace cm::leaderrun
