// Our BLAKE2b against libsodium's crypto_generichash: the same digest for
// every length, every output size and every way of splitting the input.
#include "util/blake2b.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "util/hash.h"

namespace cm {
namespace {

std::vector<uint8_t> Sodium(const std::string& in, size_t out_len) {
  InitCrypto();
  std::vector<uint8_t> out(out_len);
  crypto_generichash(out.data(), out_len, reinterpret_cast<const unsigned char*>(in.data()), in.size(), nullptr, 0);
  return out;
}

std::vector<uint8_t> Ours(const std::string& in, size_t out_len) {
  std::vector<uint8_t> out(out_len);
  Blake2b b(out_len);
  b.Update(in.data(), in.size());
  b.Final(out.data());
  return out;
}

std::string Bytes(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    s[i] = static_cast<char>(seed >> 24);
  }
  return s;
}

TEST(Blake2b, KnownAnswerForAbc) {
  // RFC 7693 appendix A: BLAKE2b-512("abc").
  auto d = Ours("abc", 64);
  EXPECT_EQ(ToHex(d.data(), 16), "ba80a53f981c4d0d6a2797b69f12f6e9");
  EXPECT_EQ(ToHex(d.data() + 48, 16), "18d38aa8dbf1925ab92386edd4009923");
  EXPECT_EQ(d, Sodium("abc", 64));
}

TEST(Blake2b, EveryLengthAroundTheBlockSizeMatchesLibsodium) {
  for (size_t n = 0; n <= 3 * 128 + 1; ++n) {
    std::string in = Bytes(n, static_cast<uint32_t>(n));
    ASSERT_EQ(Ours(in, 32), Sodium(in, 32)) << n;
  }
  for (size_t n : {size_t{1} << 16, (size_t{1} << 20) + 7}) {
    std::string in = Bytes(n, 7);
    ASSERT_EQ(Ours(in, 32), Sodium(in, 32)) << n;
  }
}

TEST(Blake2b, HasherIsBlake2b256) {
  std::string in = Bytes(1000, 3);
  Hash256 h = HashBytes(in.data(), in.size());
  EXPECT_EQ(std::vector<uint8_t>(h.begin(), h.end()), Sodium(in, 32));
}

RC_GTEST_PROP(Blake2b, AnySplitAndOutputLengthMatchesLibsodium, (std::string in, std::vector<uint8_t> cuts)) {
  const size_t out_len = *rc::gen::inRange<size_t>(1, 65);
  Blake2b b(out_len);
  size_t pos = 0;
  for (uint8_t c : cuts) {  // updates of random sizes, empty ones included
    size_t k = std::min<size_t>(c * 3u % 300u, in.size() - pos);
    b.Update(in.data() + pos, k);
    pos += k;
  }
  b.Update(in.data() + pos, in.size() - pos);
  std::vector<uint8_t> out(out_len);
  b.Final(out.data());
  RC_ASSERT(out == Sodium(in, out_len));
}

}  // namespace
}  // namespace cm
