#include "util/group_key.h"

#include <sodium.h>

#include "util/file_util.h"
#include "util/hash.h"

namespace cm {

Result<GroupKey> LoadGroupKey(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return Error(Code::kUsage, text.status().message());
  std::string_view body = *text;
  constexpr std::string_view kTag = "cm-group-key-v1 ";
  if (body.substr(0, kTag.size()) != kTag) return Error(Code::kUsage, path + ": not a cm-group-key-v1 key file");
  body.remove_prefix(kTag.size());
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' ')) body.remove_suffix(1);
  GroupKey k{};
  size_t n = 0;
  if (body.empty() || sodium_base642bin(k.data(), k.size(), body.data(), body.size(), nullptr, &n, nullptr,
                                        sodium_base64_VARIANT_ORIGINAL) != 0 || n != k.size())
    return Error(Code::kUsage, path + ": malformed cm-group-key-v1 key (want base64 of 32 bytes)");
  return k;
}

Mac ComputeMac(const GroupKey& key, std::string_view bytes) {
  Mac mac;
  crypto_generichash(mac.data(), mac.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                     key.data(), key.size());
  return mac;
}

bool MacMatches(const GroupKey& key, std::string_view bytes, const uint8_t* mac) {
  Mac want = ComputeMac(key, bytes);
  return sodium_memcmp(want.data(), mac, kMacSize) == 0;
}

namespace {
constexpr std::string_view kReportContext = "cm-leader report v1\n";
constexpr std::string_view kMacMember = ",\"mac\":\"";
}  // namespace

std::string SealReport(const GroupKey& key, std::string_view json) {
  while (!json.empty() && (json.back() == '\n' || json.back() == ' ')) json.remove_suffix(1);
  if (json.size() < 2 || json.back() != '}') return std::string(json);
  Mac m = ComputeMac(key, std::string(kReportContext) + std::string(json));
  std::string out(json.substr(0, json.size() - 1));
  out += kMacMember;
  out += ToHex(m.data(), m.size());
  out += "\"}";
  return out;
}

std::optional<std::string> OpenReport(const GroupKey& key, std::string_view sealed) {
  while (!sealed.empty() && (sealed.back() == '\n' || sealed.back() == '\r' || sealed.back() == ' '))
    sealed.remove_suffix(1);
  const size_t tail = kMacMember.size() + 2 * kMacSize + 2;  // ,"mac":"<hex>"}
  if (sealed.size() < tail + 2 || sealed.substr(sealed.size() - 2) != "\"}") return std::nullopt;
  const size_t at = sealed.size() - tail;
  if (sealed.substr(at, kMacMember.size()) != kMacMember) return std::nullopt;
  Mac mac{};
  if (!FromHex(sealed.substr(at + kMacMember.size(), 2 * kMacSize), mac.data(), mac.size())) return std::nullopt;
  std::string json(sealed.substr(0, at));
  json += '}';
  if (!MacMatches(key, std::string(kReportContext) + json, mac.data())) return std::nullopt;
  return json;
}

}  // namespace cm
