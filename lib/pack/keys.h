// Key files (text, one line each, base64 of the raw key):
//   cm-ed25519-secret-v1 <64 bytes>   signing key (mode 0600), with the public key in <file>.pub
//   cm-ed25519-public-v1 <32 bytes>   verification key for cm-apply / cm-pack verify
//   cm-group-key-v1 <32 bytes>        symmetric group key: encrypts assignments here; the same file
//                                     authenticates cm-leader, cm-mcast and relay reports. Its type and
//                                     its one loader are util/group_key.h's cm::GroupKey and
//                                     cm::LoadGroupKey; pack only writes it (GenerateGroupKey).
// Every loader here and cm::LoadGroupKey answer kUsage (exit 2, "bad arguments
// or configuration") for a key file that is missing, unreadable or malformed:
// the same exit code from every tool.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "util/group_key.h"
#include "util/status.h"

namespace cm::pack {

struct PublicKey {
  std::array<uint8_t, 32> bytes{};
  // First 8 bytes of BLAKE2b-256(bytes): names the key in headers and messages.
  std::array<uint8_t, 8> Id() const;
};

struct SigningKey {
  std::array<uint8_t, 64> secret{};  // libsodium Ed25519 secret key (seed || public)
  PublicKey pub;
};

// Writes <path> (secret, 0600) and its public half to pub_path (default
// <path>.pub). Refuses (kUsage) when either exists; both are written under
// temporary names and linked into place, so a failure or a race never leaves
// a public key beside a secret it does not match.
Status GenerateSigningKey(const std::string& path, const std::string& pub_path = "");
// Writes a new 32-byte group key to <path> (0600); refuses to overwrite.
Status GenerateGroupKey(const std::string& path);

Result<SigningKey> LoadSigningKey(const std::string& path);
Result<PublicKey> LoadPublicKey(const std::string& path);

}  // namespace cm::pack
