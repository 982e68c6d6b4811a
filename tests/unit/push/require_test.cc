// --require: parsing and the commit decision.
#include "push/require.h"

#include <gtest/gtest.h>

namespace cm::push {
namespace {

Require R(std::string_view s) {
  auto r = ParseRequire(s);
  EXPECT_TRUE(r.ok()) << s;
  return r.ok() ? *r : Require{};
}

TEST(Require, ParsesEveryForm) {
  EXPECT_EQ(R("all"), (Require{Require::Kind::kAll, 0}));
  EXPECT_EQ(R("quorum"), (Require{Require::Kind::kQuorum, 0}));
  EXPECT_EQ(R("75%"), (Require{Require::Kind::kPercent, 75}));
  EXPECT_EQ(R("0%"), (Require{Require::Kind::kPercent, 0}));
  EXPECT_EQ(R("100%"), (Require{Require::Kind::kPercent, 100}));
  EXPECT_EQ(R("3"), (Require{Require::Kind::kCount, 3}));
  for (const char* s : {"all", "quorum", "75%", "3", "0%"}) EXPECT_EQ(ToString(R(s)), s);
}

TEST(Require, RejectsAnythingElse) {
  for (const char* s : {"", "ALL", " all", "101%", "%", "-1", "0", "1.5", "50 %", "3x", "1234567890", "+3", "quorum%"}) {
    auto r = ParseRequire(s);
    EXPECT_FALSE(r.ok()) << "'" << s << "'";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kUsage);
    }
  }
}

TEST(Require, AllNeedsEveryServer) {
  EXPECT_TRUE(CommitAllowed(R("all"), 5, 5));
  EXPECT_FALSE(CommitAllowed(R("all"), 4, 5));
}

TEST(Require, QuorumIsMoreThanHalf) {
  EXPECT_FALSE(CommitAllowed(R("quorum"), 2, 4));
  EXPECT_TRUE(CommitAllowed(R("quorum"), 3, 4));
  EXPECT_FALSE(CommitAllowed(R("quorum"), 2, 5));
  EXPECT_TRUE(CommitAllowed(R("quorum"), 3, 5));
  EXPECT_TRUE(CommitAllowed(R("quorum"), 1, 1));
}

TEST(Require, PercentRoundsUp) {
  EXPECT_TRUE(CommitAllowed(R("50%"), 2, 4));
  EXPECT_FALSE(CommitAllowed(R("50%"), 2, 5));  // 2.5 needed: 3
  EXPECT_TRUE(CommitAllowed(R("50%"), 3, 5));
  EXPECT_TRUE(CommitAllowed(R("0%"), 1, 100));
  EXPECT_FALSE(CommitAllowed(R("100%"), 99, 100));
}

TEST(Require, CountIsAbsolute) {
  EXPECT_TRUE(CommitAllowed(R("3"), 3, 12));
  EXPECT_FALSE(CommitAllowed(R("3"), 2, 12));
  EXPECT_FALSE(CommitAllowed(R("5"), 3, 3));  // more than there are: never
}

TEST(Require, NothingStagedNeverCommits) {
  for (const char* s : {"all", "quorum", "0%", "1"}) {
    EXPECT_FALSE(CommitAllowed(R(s), 0, 0)) << s;
    EXPECT_FALSE(CommitAllowed(R(s), 0, 3)) << s;
  }
  EXPECT_FALSE(CommitAllowed(R("all"), 4, 3));  // inconsistent counts
}

}  // namespace
}  // namespace cm::push
