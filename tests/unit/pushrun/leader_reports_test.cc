#include "pushrun/leader_reports.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace cm::pushrun {
namespace {

TEST(LeaderReports, ParsesCmLeaderSegmentReports) {
  auto r = LeaderReports::Parse(
      R"({"type":"segment","segment":"site2","leader":3256877578,"leader_address":"198.18.2.11:7400","epoch":4,"location":"","free_disk_mb":100,"cpu_permille":250,"priority":150,"members":[1,2]})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->segment, "site2");
  EXPECT_EQ(r->leader_ip, "198.18.2.11");
  EXPECT_EQ(r->epoch, 4u);
  EXPECT_EQ(r->cpu_permille, 250u);
  EXPECT_FALSE(LeaderReports::Parse(R"({"segment":"x"})").has_value());
}

TEST(LeaderReports, AnOlderTermNeverReplacesTheLatestAndNewOnesAreAnnounced) {
  LeaderReports store;
  std::vector<std::string> seen;
  store.SetOnReport([&](const LeaderReport& r) { seen.push_back(r.leader_ip); });
  LeaderReport a{"site1", "10.0.0.1", 5};
  LeaderReport b{"site1", "10.0.0.2", 4};
  LeaderReport c{"site1", "10.0.0.3", 5};
  EXPECT_TRUE(store.Add(a));
  EXPECT_FALSE(store.Add(b));
  EXPECT_EQ(store.Latest("site1")->leader_ip, "10.0.0.1");
  EXPECT_TRUE(store.Add(c));  // the same term: the later report wins
  EXPECT_EQ(store.Latest("site1")->leader_ip, "10.0.0.3");
  EXPECT_EQ(store.Latest("site1")->sequence, 3u);
  EXPECT_FALSE(store.Latest("site2").has_value());
  EXPECT_EQ(seen, (std::vector<std::string>{"10.0.0.1", "10.0.0.3"}));
}

// Sends one line to 127.0.0.1:port as cm-leader does (one connection).
void SendLine(int port, const std::string& line) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  close(fd);
}

TEST(LeaderReports, AKeyedListenerTakesOnlySealedReports) {
  const GroupKey key{42};
  const int port = 30000 + getpid() % 20000;
  LeaderReports store;
  store.SetKey(key);
  ASSERT_TRUE(store.Listen("127.0.0.1:" + std::to_string(port)).ok());
  const std::string forged = R"({"type":"segment","segment":"s","leader_address":"10.0.0.66:7400","epoch":9})";
  SendLine(port, forged + "\n");
  SendLine(port, SealReport(GroupKey{1}, forged) + "\n");
  const std::string real = R"({"type":"segment","segment":"s","leader_address":"10.0.0.1:7400","epoch":2})";
  SendLine(port, SealReport(key, real) + "\n");
  for (int i = 0; i < 100 && !store.Latest("s"); ++i) usleep(20000);
  ASSERT_TRUE(store.Latest("s").has_value());
  EXPECT_EQ(store.Latest("s")->leader_ip, "10.0.0.1");
  EXPECT_EQ(store.Latest("s")->sequence, 1u) << "the two forged reports were refused";
  store.Stop();
}

TEST(LeaderReports, ListenRefusesABadAddress) {
  LeaderReports store;
  EXPECT_EQ(store.Listen("nowhere").code(), Code::kUsage);
  EXPECT_EQ(store.Listen("127.0.0.1:99999").code(), Code::kUsage);
  EXPECT_EQ(store.Listen("127.0.0.1:x").code(), Code::kUsage);
}

}  // namespace
}  // namespace cm::pushrun
