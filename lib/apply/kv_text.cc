#include "apply/kv_text.h"

namespace cm::apply {

std::string EncodeKv(std::string_view magic, int version, const KvLines& lines) {
  std::string out = std::string(magic) + " " + std::to_string(version) + "\n";
  for (const auto& [k, v] : lines) out += k + " " + v + "\n";
  return out;
}

Result<KvLines> DecodeKv(std::string_view magic, int version, std::string_view text) {
  auto bad = [&](const std::string& why) { return Error(Code::kCorrupt, std::string(magic) + ": " + why); };
  KvLines out;
  size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return bad("truncated line");
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0) return bad("malformed line");
    std::string key(line.substr(0, sp)), value(line.substr(sp + 1));
    if (first) {
      if (key != magic) return bad("not a " + std::string(magic) + " file");
      if (value != std::to_string(version)) return bad("unsupported version " + value);
      first = false;
      continue;
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  if (first) return bad("empty file");
  return out;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

}  // namespace cm::apply
