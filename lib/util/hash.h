// BLAKE2b-256 (the function of libsodium's crypto_generichash, computed by
// util/blake2b.h), the one content hash of the project: file contents, data
// parts, command sequences, chunks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <sodium.h>

#include "util/blake2b.h"
#include "util/status.h"

namespace cm {

using Hash256 = std::array<uint8_t, 32>;

class Hasher {
 public:
  Hasher();
  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  Hash256 Finish();

 private:
  Blake2b st_;
};

Hash256 HashBytes(const void* data, size_t n);
std::string ToHex(const uint8_t* data, size_t n);
inline std::string ToHex(const Hash256& h) { return ToHex(h.data(), h.size()); }
bool FromHex(std::string_view hex, uint8_t* out, size_t n);
// Hash of a whole file read with bounded memory.
Result<Hash256> HashFile(int fd);
Result<Hash256> HashPath(const std::string& path);

// Calls sodium_init() once; safe to call many times.
void InitCrypto();

}  // namespace cm
