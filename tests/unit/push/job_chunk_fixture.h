// Keys and signed items for the job chunk record and chunk store tests
// (lib/push/job_chunk.h, lib/pushrun/chunk_store.h).
#pragma once

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "pack/keys.h"
#include "push/job_chunk.h"

namespace cm::push::testing {

// A deterministic Ed25519 key: seed bytes first_byte, first_byte + 1, ...
inline pack::SigningKey SeededKey(uint8_t first_byte) {
  InitCrypto();
  pack::SigningKey k;
  unsigned char seed[32];
  for (int i = 0; i < 32; ++i) seed[i] = static_cast<unsigned char>(first_byte + i);
  crypto_sign_seed_keypair(k.pub.bytes.data(), k.secret.data(), seed);
  return k;
}

// The records of an item: one per payload, then the END record carrying `last`.
inline std::vector<std::string> SignRecords(const pack::SigningKey& key, const std::string& job, uint32_t item,
                                            const std::vector<std::string>& payloads, const std::string& last = "") {
  std::vector<std::string> out;
  auto s = ChunkSigner::Create(key, job, item);
  if (!s.ok()) {
    ADD_FAILURE() << s.status().ToString();
    return out;
  }
  for (const auto& p : payloads) {
    auto r = s->Append(p);
    if (!r.ok()) ADD_FAILURE() << r.status().ToString();
    out.push_back(r.ok() ? *r : std::string());
  }
  auto e = s->End(last);
  if (!e.ok()) ADD_FAILURE() << e.status().ToString();
  out.push_back(e.ok() ? *e : std::string());
  return out;
}

}  // namespace cm::push::testing
