#include "pack/keys.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>
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
  auto read = ReadFileToString(path);
  if (!read.ok()) return Error(Code::kUsage, read.status().message());  // as cm::LoadGroupKey
  std::string text = std::move(*read);
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

// A file written under a random temporary name in the final directory
// (O_EXCL: never through a planted symlink), fsync'ed, then link()ed to its
// final name, which fails if that name exists: a key is never overwritten,
// not even by a racing writer. Returns the temporary name to unlink.
Result<std::string> WriteTemp(const std::string& path, const std::string& text, mode_t mode) {
  uint8_t rnd[12];
  randombytes_buf(rnd, sizeof rnd);
  std::string tmp = DirName(path) + "/." + BaseName(path) + ".tmp-" + ToHex(rnd, sizeof rnd);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return ErrnoError(path, errno);  // the name the user gave (its directory is what fails)
  Status st = WriteFull(fd.get(), text.data(), text.size());
  if (st.ok() && ::fchmod(fd.get(), mode) != 0) st = ErrnoError(tmp, errno);
  if (st.ok() && ::fsync(fd.get()) != 0) st = ErrnoError(tmp, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return tmp;
}

Status LinkNew(const std::string& tmp, const std::string& path) {
  if (::link(tmp.c_str(), path.c_str()) == 0) return Status::Ok();
  if (errno == EEXIST) return Error(Code::kUsage, path + ": exists; refusing to overwrite a key");
  return ErrnoError(path, errno);
}

Status RefuseExisting(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return Error(Code::kUsage, path + ": exists; refusing to overwrite a key");
  return Status::Ok();
}

Status WriteNew(const std::string& path, const std::string& text, mode_t mode) {
  CM_RETURN_IF_ERROR(RefuseExisting(path));
  CM_ASSIGN_OR_RETURN(std::string tmp, WriteTemp(path, text, mode));
  Status st = LinkNew(tmp, path);
  ::unlink(tmp.c_str());
  if (st.ok()) st = FsyncDir(DirName(path));
  return st;
}
}  // namespace

std::array<uint8_t, 8> PublicKey::Id() const {
  Hash256 h = HashBytes(bytes.data(), bytes.size());
  std::array<uint8_t, 8> id;
  std::memcpy(id.data(), h.data(), 8);
  return id;
}

Status GenerateSigningKey(const std::string& path, const std::string& pub_arg) {
  const std::string pub = pub_arg.empty() ? path + ".pub" : pub_arg;
  InitCrypto();
  // Neither file may exist: a FILE.pub left from another key would
  // otherwise sit beside a new secret it does not match.
  CM_RETURN_IF_ERROR(RefuseExisting(path));
  CM_RETURN_IF_ERROR(RefuseExisting(pub));
  SigningKey k;
  crypto_sign_keypair(k.pub.bytes.data(), k.secret.data());
  auto secret_tmp = WriteTemp(path, Encode(kSecretTag, k.secret.data(), 64), 0600);
  sodium_memzero(k.secret.data(), k.secret.size());
  if (!secret_tmp.ok()) return secret_tmp.status();
  auto pub_tmp = WriteTemp(pub, Encode(kPublicTag, k.pub.bytes.data(), 32), 0644);
  if (!pub_tmp.ok()) {
    ::unlink(secret_tmp->c_str());
    return pub_tmp.status();
  }
  // The secret first, then the public half; if the public name was taken in
  // between, the secret is taken back, so no pair is ever left mismatched.
  Status st = LinkNew(*secret_tmp, path);
  if (st.ok()) {
    st = LinkNew(*pub_tmp, pub);
    if (!st.ok()) ::unlink(path.c_str());
  }
  ::unlink(secret_tmp->c_str());
  ::unlink(pub_tmp->c_str());
  if (st.ok()) st = FsyncDir(DirName(path));
  if (st.ok() && DirName(pub) != DirName(path)) st = FsyncDir(DirName(pub));
  return st;
}

Status GenerateGroupKey(const std::string& path) {
  InitCrypto();
  GroupKey k;
  randombytes_buf(k.data(), k.size());
  Status st = WriteNew(path, Encode(kGroupTag, k.data(), k.size()), 0600);
  sodium_memzero(k.data(), k.size());
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

}  // namespace cm::pack
