#include "proto/core.h"

#include <charconv>

namespace cm::proto {

std::string Address::ToString() const {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." + std::to_string((ip >> 8) & 255) +
         "." + std::to_string(ip & 255) + ":" + std::to_string(port);
}

bool ParseAddress(std::string_view s, Address* out) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
  uint32_t ip = 0;
  for (int i = 0; i < 4; ++i) {
    auto dot = host.find('.');
    std::string_view part = i < 3 ? host.substr(0, dot) : host;
    if ((i < 3 && dot == std::string_view::npos) || part.empty() || part.size() > 3) return false;
    unsigned v = 0;
    auto r = std::from_chars(part.data(), part.data() + part.size(), v);
    if (r.ec != std::errc() || r.ptr != part.data() + part.size() || v > 255) return false;
    ip = ip << 8 | v;
    if (i < 3) host = host.substr(dot + 1);
  }
  unsigned p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p > 65535) return false;
  out->ip = ip;
  out->port = static_cast<uint16_t>(p);
  return true;
}

}  // namespace cm::proto
