#include "pushrun/leader_state.h"

#include <fstream>

#include "util/json_value.h"

namespace cm::pushrun {

std::optional<push::SiteLeader> ParseLeaderState(std::string_view json) {
  auto v = ParseJson(json);
  if (!v.ok() || !v->is_object() || v->Int("v", 0) != 1) return std::nullopt;
  const std::string leader = v->Str("leader");  // null or absent: ""
  const size_t colon = leader.rfind(':');
  std::string address = colon == std::string::npos ? leader : leader.substr(0, colon);
  if (address.empty()) return std::nullopt;
  push::SiteLeader l{std::move(address), v->Uint("epoch"), {}};
  if (v->Str("role") == "leader")
    for (const auto& m : (*v)["members"].items()) {
      if (l.members.size() >= 1000) break;
      push::SiteMember x{m.Str("name"), m.Str("address")};
      if (!x.name.empty() && !x.address.empty()) l.members.push_back(std::move(x));
    }
  return l;
}

std::optional<push::SiteLeader> ReadLeaderState(const std::string& path) {
  if (path.empty()) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(64 << 10, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return ParseLeaderState(text);
}

}  // namespace cm::pushrun
