#include "pack/keys.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include "util/file_util.h"
#include "util/hash.h"

namespace cm::pack {
namespace {
constexpr std::string_view kSecretTag = "cm-ed25519-secret-v1";
constexpr std::string_view kPublicTag = "cm-ed25519-public-v1";
constexpr std::string_view kGroupTag = "cm-group-key-v1";

std::string Encode(std::string_view tag, const uint8_t* p, size_t n) {
  std::vector<char> b64(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL));
  sodium_bin2base64(b64.data(), b64.size(), p, n, sodium_base64_VARIANT_ORIGINAL);
  return std::string(tag) + " " + b64.data() + "\n";
}

Status Decode(const std::string& path, std::string_view tag, uint8_t* out, size_t n) {
  CM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  auto sp = text.find(' ');
  if (sp == std::string::npos || std::string_view(text).substr(0, sp) != tag) {
    return Error(Code::kUsage, path + ": not a " + std::string(tag) + " key file");
  }
  std::string b64 = text.substr(sp + 1);
  size_t got = 0;
  if (sodium_base642bin(out, n, b64.c_str(), b64.size(), nullptr, &got, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      got != n) {
    return Error(Code::kUsage, path + ": malformed key");
  }
  return Status::Ok();
}

Status WriteNew(const std::string& path, const std::string& text, mode_t mode) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return Error(Code::kUsage, path + ": exists; refusing to overwrite a key");
  return WriteFileAtomic(path, text, mode);
}
}  // namespace

std::array<uint8_t, 8> PublicKey::Id() const {
  Hash256 h = HashBytes(bytes.data(), bytes.size());
  std::array<uint8_t, 8> id;
  std::memcpy(id.data(), h.data(), 8);
  return id;
}

Status GenerateSigningKey(const std::string& path) {
  InitCrypto();
  SigningKey k;
  crypto_sign_keypair(k.pub.bytes.data(), k.secret.data());
  CM_RETURN_IF_ERROR(WriteNew(path + ".pub", Encode(kPublicTag, k.pub.bytes.data(), 32), 0644));
  Status st = WriteNew(path, Encode(kSecretTag, k.secret.data(), 64), 0600);
  sodium_memzero(k.secret.data(), k.secret.size());
  return st;
}

Status GenerateGroupKey(const std::string& path) {
  InitCrypto();
  GroupKey k;
  randombytes_buf(k.bytes.data(), k.bytes.size());
  Status st = WriteNew(path, Encode(kGroupTag, k.bytes.data(), 32), 0600);
  sodium_memzero(k.bytes.data(), k.bytes.size());
  return st;
}

Result<SigningKey> LoadSigningKey(const std::string& path) {
  InitCrypto();
  SigningKey k;
  CM_RETURN_IF_ERROR(Decode(path, kSecretTag, k.secret.data(), 64));
  crypto_sign_ed25519_sk_to_pk(k.pub.bytes.data(), k.secret.data());
  return k;
}

Result<PublicKey> LoadPublicKey(const std::string& path) {
  PublicKey k;
  CM_RETURN_IF_ERROR(Decode(path, kPublicTag, k.bytes.data(), 32));
  return k;
}

Result<GroupKey> LoadGroupKey(const std::string& path) {
  GroupKey k;
  CM_RETURN_IF_ERROR(Decode(path, kGroupTag, k.bytes.data(), 32));
  return k;
}

}  // namespace cm::pack
