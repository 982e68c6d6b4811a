#include "util/group_key.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include "support/test_util.h"
#include "util/file_util.h"
#include "util/hash.h"

namespace cm {
namespace {

TEST(GroupKey, LoadsTheKeyFileFormat) {
  InitCrypto();
  test::TempDir d;
  GroupKey k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7);
  char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, k.data(), k.size(), sodium_base64_VARIANT_ORIGINAL);
  ASSERT_TRUE(WriteFileAtomic(d.path() + "/g.key", std::string("cm-group-key-v1 ") + b64 + "\n", 0600).ok());
  auto got = LoadGroupKey(d.path() + "/g.key");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, k);
}

TEST(GroupKey, AnotherTagOrLengthIsAUsageErrorNamingTheFile) {
  InitCrypto();
  test::TempDir d;
  ASSERT_TRUE(WriteFileAtomic(d.path() + "/a", "cm-ed25519-public-v1 AAAA\n", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(d.path() + "/b", "cm-group-key-v1 AAAA\n", 0600).ok());
  for (const char* name : {"/a", "/b", "/missing"}) {
    auto r = LoadGroupKey(d.path() + name);
    EXPECT_EQ(r.status().code(), Code::kUsage) << name;
    EXPECT_NE(r.status().message().find(d.path() + name), std::string::npos) << r.status().message();
  }
}

TEST(GroupKey, MacIsKeyedBlake2b128AndChecksEveryByte) {
  InitCrypto();
  GroupKey k{};
  k[0] = 1;
  std::string msg = "some bytes on the wire";
  uint8_t want[16];
  crypto_generichash(want, 16, reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), k.data(), 32);
  Mac m = ComputeMac(k, msg);
  EXPECT_EQ(0, memcmp(m.data(), want, 16));
  EXPECT_TRUE(MacMatches(k, msg, m.data()));
  for (size_t i = 0; i < msg.size(); ++i) {
    std::string bad = msg;
    bad[i] ^= 1;
    EXPECT_FALSE(MacMatches(k, bad, m.data())) << i;
  }
  GroupKey other = k;
  other[31] = 9;
  EXPECT_FALSE(MacMatches(other, msg, m.data()));
}

}  // namespace
}  // namespace cm
