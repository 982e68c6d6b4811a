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

}  // namespace cm
