// The state file cm-leader keeps for local readers: its exact JSON, written
// atomically with mode 0644 whatever the umask, never through a symlink.
#include "leaderrun/state_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/test_util.h"
#include "util/json_value.h"

namespace cm::leaderrun {
namespace {

SegmentState Member() {
  SegmentState s;
  s.segment = "paris";
  EXPECT_TRUE(proto::ParseAddress("10.0.0.2:7400", &s.self));
  proto::Address l;
  EXPECT_TRUE(proto::ParseAddress("10.0.0.9:7400", &l));
  s.leader = l;
  s.epoch = 12;
  s.role = "member";
  return s;
}

TEST(StateFile, JsonIsTheDocumentedObject) {
  EXPECT_EQ(StateFileJson(Member(), 1700000000123),
            R"({"v":1,"segment":"paris","self":"10.0.0.2:7400","leader":"10.0.0.9:7400","epoch":12,)"
            R"("committed_seq":0,"role":"member","updated_unix_ms":1700000000123})" "\n");
  SegmentState none = Member();
  none.leader.reset();
  none.role = RoleName(leader::State::kVoting);
  auto j = ParseJson(StateFileJson(none, 5));
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE((*j)["leader"].is_null());
  EXPECT_EQ(j->Str("role"), "candidate");
}

TEST(StateFile, RolesFollowTheElectionState) {
  EXPECT_STREQ(RoleName(leader::State::kLeader), "leader");
  EXPECT_STREQ(RoleName(leader::State::kKnown), "member");
  EXPECT_STREQ(RoleName(leader::State::kUnknown), "candidate");
  EXPECT_STREQ(RoleName(leader::State::kVoting), "candidate");
  EXPECT_STREQ(RoleName(leader::State::kConceding), "candidate");
}

TEST(StateFile, WrittenWholeWithMode0644UnderAStrictUmask) {
  test::TempDir d;
  const std::string path = d / "leader.json";
  const mode_t old = ::umask(077);
  ASSERT_TRUE(WriteStateFile(path, "one\n").ok());
  ASSERT_TRUE(WriteStateFile(path, "two\n").ok());
  ::umask(old);
  EXPECT_EQ(test::ReadFile(path), "two\n");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  // No temporary file left beside it.
  std::string ls;
  EXPECT_EQ(test::Run("ls -A '" + d.path() + "'", &ls), 0);
  EXPECT_EQ(ls, "leader.json\n");
}

TEST(StateFile, ASymlinkInItsPlaceIsReplacedNotFollowed) {
  test::TempDir d;
  test::WriteFile(d / "victim", "keep\n");
  ASSERT_EQ(::symlink((d / "victim").c_str(), (d / "leader.json").c_str()), 0);
  ASSERT_TRUE(WriteStateFile(d / "leader.json", "new\n").ok());
  EXPECT_EQ(test::ReadFile(d / "victim"), "keep\n");
  struct stat st;
  ASSERT_EQ(::lstat((d / "leader.json").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST(StateFile, MissingDirectoryIsNotFound) {
  test::TempDir d;
  const Status st = WriteStateFile(d / "no/such/leader.json", "x\n");
  EXPECT_EQ(st.code(), Code::kNotFound) << st.ToString();
}

}  // namespace
}  // namespace cm::leaderrun
