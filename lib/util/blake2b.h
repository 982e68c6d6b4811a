// BLAKE2b (RFC 7693), unkeyed, for the content hashes (Hash256).
//
// The same function as libsodium's crypto_generichash with a 32-byte output
// (tests compare the two on random inputs and splits). It exists because
// libsodium's runtime dispatch picks its AVX2 compression function once
// sodium_init() ran, and on the AMD EPYC machines we measured that version
// hashes at about 640 MB/s against 1,150 MB/s for plain 64-bit code like
// this (docs/BENCHMARKS.md): every byte cm-apply, cm-delta, the relays and
// cm-mcast check goes through here. Signatures, MACs and encryption stay
// with libsodium.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cm {

class Blake2b {
 public:
  // out_len: 1..64 bytes of digest.
  explicit Blake2b(size_t out_len = 32);
  void Update(const void* data, size_t n);
  // Writes out_len bytes; the object is spent afterwards.
  void Final(uint8_t* out);

 private:
  void Compress(const uint8_t* block, bool last);

  uint64_t h_[8];
  uint64_t t_[2] = {0, 0};  // bytes hashed so far (128-bit counter)
  uint8_t buf_[128];
  size_t buf_len_ = 0;
  size_t out_len_;
};

}  // namespace cm
