#include <gtest/gtest.h>

#include "proto/core.h"

namespace cm::proto {
namespace {

TEST(Address, ParsesAndPrints) {
  Address a;
  ASSERT_TRUE(ParseAddress("239.1.2.3:5000", &a));
  EXPECT_TRUE(a.IsMulticast());
  EXPECT_EQ(a.ToString(), "239.1.2.3:5000");
  ASSERT_TRUE(ParseAddress("198.18.0.1:1", &a));
  EXPECT_FALSE(a.IsMulticast());
  EXPECT_EQ(a.ip, (198u << 24) | (18u << 16) | 1u);
}

TEST(Address, RejectsMalformed) {
  Address a;
  for (const char* bad : {"", "1.2.3.4", "1.2.3:80", "1.2.3.4.5:80", "256.1.1.1:80", "1.2.3.4:65536", "a.b.c.d:1",
                          "1.2.3.4:", ":80", "1..3.4:80", "1.2.3.4:8x"})
    EXPECT_FALSE(ParseAddress(bad, &a)) << bad;
}

}  // namespace
}  // namespace cm::proto
