#include "util/blake2b.h"

#include <cstring>

namespace cm {
namespace {

constexpr uint64_t kIv[8] = {0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
                             0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
                             0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};

// Message word order per round (rounds 10 and 11 repeat rounds 0 and 1).
constexpr uint8_t kSigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

inline uint64_t Rotr(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

inline void Store64(uint8_t* p, uint64_t v) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  std::memcpy(p, &v, 8);
}

#define CM_B2B_G(a, b, c, d, x, y) \
  do {                             \
    a = a + b + (x);               \
    d = Rotr(d ^ a, 32);           \
    c = c + d;                     \
    b = Rotr(b ^ c, 24);           \
    a = a + b + (y);               \
    d = Rotr(d ^ a, 16);           \
    c = c + d;                     \
    b = Rotr(b ^ c, 63);           \
  } while (0)

}  // namespace

Blake2b::Blake2b(size_t out_len) : out_len_(out_len < 1 ? 1 : out_len > 64 ? 64 : out_len) {
  std::memcpy(h_, kIv, sizeof h_);
  h_[0] ^= 0x01010000ULL ^ static_cast<uint64_t>(out_len_);  // no key
}

void Blake2b::Compress(const uint8_t* block, bool last) {
  uint64_t m[16];
  for (int i = 0; i < 16; ++i) m[i] = Load64(block + 8 * i);
  uint64_t v0 = h_[0], v1 = h_[1], v2 = h_[2], v3 = h_[3], v4 = h_[4], v5 = h_[5], v6 = h_[6], v7 = h_[7];
  uint64_t v8 = kIv[0], v9 = kIv[1], v10 = kIv[2], v11 = kIv[3];
  uint64_t v12 = kIv[4] ^ t_[0], v13 = kIv[5] ^ t_[1];
  uint64_t v14 = last ? ~kIv[6] : kIv[6], v15 = kIv[7];
  for (int r = 0; r < 12; ++r) {
    const uint8_t* s = kSigma[r];
    CM_B2B_G(v0, v4, v8, v12, m[s[0]], m[s[1]]);
    CM_B2B_G(v1, v5, v9, v13, m[s[2]], m[s[3]]);
    CM_B2B_G(v2, v6, v10, v14, m[s[4]], m[s[5]]);
    CM_B2B_G(v3, v7, v11, v15, m[s[6]], m[s[7]]);
    CM_B2B_G(v0, v5, v10, v15, m[s[8]], m[s[9]]);
    CM_B2B_G(v1, v6, v11, v12, m[s[10]], m[s[11]]);
    CM_B2B_G(v2, v7, v8, v13, m[s[12]], m[s[13]]);
    CM_B2B_G(v3, v4, v9, v14, m[s[14]], m[s[15]]);
  }
  h_[0] ^= v0 ^ v8;
  h_[1] ^= v1 ^ v9;
  h_[2] ^= v2 ^ v10;
  h_[3] ^= v3 ^ v11;
  h_[4] ^= v4 ^ v12;
  h_[5] ^= v5 ^ v13;
  h_[6] ^= v6 ^ v14;
  h_[7] ^= v7 ^ v15;
}

#undef CM_B2B_G

void Blake2b::Update(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  // The last block is compressed in Final (it carries the "last" flag), so a
  // full buffer is compressed only once more bytes follow.
  while (n > 0) {
    if (buf_len_ == sizeof buf_) {
      t_[0] += sizeof buf_;
      if (t_[0] < sizeof buf_) ++t_[1];
      Compress(buf_, false);
      buf_len_ = 0;
    }
    if (buf_len_ == 0) {
      while (n > sizeof buf_) {  // whole blocks straight from the input
        t_[0] += sizeof buf_;
        if (t_[0] < sizeof buf_) ++t_[1];
        Compress(p, false);
        p += sizeof buf_;
        n -= sizeof buf_;
      }
    }
    size_t k = sizeof buf_ - buf_len_;
    if (k > n) k = n;
    std::memcpy(buf_ + buf_len_, p, k);
    buf_len_ += k;
    p += k;
    n -= k;
  }
}

void Blake2b::Final(uint8_t* out) {
  t_[0] += buf_len_;
  if (t_[0] < buf_len_) ++t_[1];
  std::memset(buf_ + buf_len_, 0, sizeof buf_ - buf_len_);
  Compress(buf_, true);
  uint8_t full[64];
  for (int i = 0; i < 8; ++i) Store64(full + 8 * i, h_[i]);
  std::memcpy(out, full, out_len_);
}

}  // namespace cm
