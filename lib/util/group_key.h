// The group key and the one MAC of the project's wires (cm-leader's control
// channel, cm-mcast's datagrams and streams, and, with a key derived from the
// group key, every report's CM-Auth tag: util/cm_auth.h; docs/protocol/leader.md,
// mcast.md, push.md).
//
// The one group-key type and loader of the project: cm-pack's encryption,
// cm-apply, cm-leader, cm-mcast and cm-push all use these.
// Key file format (written by `cm-pack keygen --group`, lib/pack/keys.h):
//   "cm-group-key-v1 <base64 of 32 bytes>\n"
// MAC: keyed BLAKE2b (libsodium crypto_generichash with the 32-byte group key
// as its key) with a 16-byte output, over the bytes it authenticates.
// Call InitCrypto() (util/hash.h) once before any of these.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace cm {

using GroupKey = std::array<uint8_t, 32>;

// Reads a cm-group-key-v1 file. kUsage (naming the file; exit 2 from every
// tool) when it is missing or cannot be read, has another tag, or does not
// hold exactly 32 bytes.
Result<GroupKey> LoadGroupKey(const std::string& path);

constexpr size_t kMacSize = 16;
using Mac = std::array<uint8_t, kMacSize>;

Mac ComputeMac(const GroupKey& key, std::string_view bytes);
// Constant-time comparison of ComputeMac(key, bytes) with mac[0..kMacSize).
bool MacMatches(const GroupKey& key, std::string_view bytes, const uint8_t* mac);

}  // namespace cm
