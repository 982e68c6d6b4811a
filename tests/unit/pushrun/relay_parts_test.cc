// The relay edge's small parts: spool retention's plan, cm-leader's state
// file, the metrics textfile, what a cm-apply child says.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "pushrun/leader_state.h"
#include "pushrun/relay_children.h"
#include "pushrun/relay_metrics.h"
#include "pushrun/spool_retention.h"
#include "support/test_util.h"

namespace cm::pushrun {
namespace {

SpoolFile File(uint64_t serial, int64_t mtime, bool part = false) {
  return SpoolFile{serial, "/s/" + std::to_string(serial) + (part ? ".cma.part" : ".cma"), part, mtime};
}

TEST(SpoolRetention, KeepsTheSerialsWrittenLastNotTheLargestNumbers) {
  // A clock serial (huge) written long ago goes before small file serials written since.
  std::vector<SpoolFile> files = {File(1'700'000'000'000'000, 1), File(4, 10), File(5, 20), File(6, 30), File(7, 40)};
  RetentionPlan p = PlanRetention(files, 3);
  EXPECT_EQ(p.old_serials, (std::vector<uint64_t>{1'700'000'000'000'000, 4}));
  EXPECT_TRUE(p.stale_parts.empty());
  EXPECT_TRUE(PlanRetention(files, 10).old_serials.empty());
}

TEST(SpoolRetention, APartCountsAsItsSerialAndOneBesideItsCompleteFileIsStale) {
  std::vector<SpoolFile> files = {File(8, 5), File(8, 50, true), File(9, 40, true), File(3, 30)};
  RetentionPlan p = PlanRetention(files, 2);
  EXPECT_EQ(p.old_serials, std::vector<uint64_t>{3});  // 8 (written at 50) and 9 (a .part at 40) are the newest
  EXPECT_EQ(p.stale_parts, std::vector<std::string>{"/s/8.cma.part"});
}

TEST(SpoolRetention, ListSpoolTakesOnlySerialFiles) {
  test::TempDir dir;
  for (const char* name : {"12.cma", "13.cma.part", "x.cma", "12.cma.tmp", "site/14.cma", "0012a.cma"})
    test::WriteFile(dir / name, "x");
  auto files = ListSpool(dir.path());
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.path.substr(dir.path().size() + 1) + (f.part ? "+" : ""));
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"12.cma", "13.cma.part+"}));
}

TEST(LeaderState, TheElectedLeadersAddressAndEpoch) {
  auto l = ParseLeaderState(R"({"v":1,"segment":"a","self":"10.1.1.2:7400","leader":"10.1.1.3:7400","epoch":9,)"
                            R"("role":"member","updated_unix_ms":5,"new_key":[1]})");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->address, "10.1.1.3");
  EXPECT_EQ(l->epoch, 9u);
  EXPECT_FALSE(ParseLeaderState(R"({"v":1,"leader":null,"epoch":9})"));
  EXPECT_FALSE(ParseLeaderState(R"({"v":2,"leader":"10.1.1.3:7400","epoch":9})"));
  EXPECT_FALSE(ParseLeaderState(R"({"v":1,"leader":"10.1.1.3:74)"));
  EXPECT_FALSE(ParseLeaderState("[]"));
  EXPECT_FALSE(ReadLeaderState("/nonexistent/leader.json"));
  EXPECT_FALSE(ReadLeaderState(""));
}

TEST(LeaderState, TheLeadersMembersOnlyFromTheLeader) {
  const std::string members = R"("members":[{"name":"web1","address":"10.1.1.3"},{"name":"web9","address":"10.1.1.9"},)"
                              R"({"name":"","address":"10.1.1.10"}]})";
  auto l = ParseLeaderState(R"({"v":1,"leader":"10.1.1.3:7400","epoch":9,"role":"leader",)" + members);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->members, (std::vector<push::SiteMember>{{"web1", "10.1.1.3"}, {"web9", "10.1.1.9"}}));
  auto m = ParseLeaderState(R"({"v":1,"leader":"10.1.1.3:7400","epoch":9,"role":"member",)" + members);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->members.empty());  // a member's list is hearsay
}

TEST(RelayMetrics, TheTextfileIsWrittenWholeWithEveryFamily) {
  test::TempDir dir;
  RelayMetrics m;
  m.Transfer("leader", "reported");
  m.Transfer("leader", "reported");
  m.Transfer("member", "failed");
  m.Refusal("wrong_relay");
  m.SourceFailure();
  m.Fetched(1000);
  *m.served() += 500;
  m.Serial(12);
  m.Serial(7);
  ASSERT_TRUE(m.Write(dir / "relay.prom", true).ok());
  std::string text = test::ReadFile(dir / "relay.prom");
  for (const char* line :
       {"cm_relay_up 1\n", "cm_relay_transfers_total{role=\"leader\",outcome=\"reported\"} 2\n",
        "cm_relay_transfers_total{role=\"member\",outcome=\"failed\"} 1\n", "cm_relay_bytes_fetched_total 1000\n",
        "cm_relay_bytes_served_total 500\n", "cm_relay_source_failures_total 1\n",
        "cm_relay_refusals_total{reason=\"wrong_relay\"} 1\n", "cm_relay_last_serial 12\n",
        "# TYPE cm_relay_transfers_total counter\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "in\n" << text;
  EXPECT_FALSE(std::filesystem::exists(dir / "relay.prom.tmp"));
  ASSERT_TRUE(m.Write(dir / "relay.prom", false).ok());
  EXPECT_NE(test::ReadFile(dir / "relay.prom").find("cm_relay_up 0\n"), std::string::npos);
}

// Issue 12: "the record must be the truth": the release a server runs is
// what its cm-apply says (--json: "release" after every action), not what
// the CCM sent; also when cm-apply fails (the live release stays).
TEST(RelayChildren, CmApplyRunsWithJsonAndItsLiveReleaseIsTheLastReportsRelease) {
  test::TempDir dir;
  const std::string fake = dir / "cm-apply";
  test::WriteFile(fake,
                  "#!/bin/sh\n"
                  "case \" $* \" in *' --json '*) ;; *) echo 'no --json' >&2; exit 2;; esac\n"
                  "echo '{\"action\":\"staged\",\"release\":\"s000000000004-w03\",\"release_serial\":4}'\n"
                  "echo '{\"action\":\"unchanged\",\"release\":\"s000000000005-w04\",\"release_serial\":5}'\n"
                  "echo 'not json'\n"
                  "exit ${FAKE_EXIT:-0}\n",
                  0755);
  RelayOptions o;
  o.name = "a1";
  o.root = dir / "root";
  o.cm_apply = fake;
  o.pub_key = dir / "ccm.pub";
  std::atomic<bool> stopping{false}, cancel{false};
  RelayChildEnv env{&o, [&](uint64_t serial) { return dir / (std::to_string(serial) + ".cma"); },
                    nullptr, &stopping};
  push::StartChild c;
  c.serial = 5;
  c.kind = push::ChildKind::kApply;
  push::ChildDone d = RunRelayChild(env, c, &cancel);
  EXPECT_EQ(d.exit_code, 0) << d.error_line;
  EXPECT_EQ(d.release, "s000000000005-w04");

  test::WriteFile(fake, "#!/bin/sh\necho '{\"result\":\"error\",\"release\":\"s000000000003-w02\"}'\n"
                        "echo 'cm-apply: error: no space left on device' >&2\nexit 9\n", 0755);
  d = RunRelayChild(env, c, &cancel);
  EXPECT_EQ(d.exit_code, 9);
  EXPECT_EQ(d.release, "s000000000003-w02");
  EXPECT_EQ(d.error_line, "cm-apply: error: no space left on device");

  test::WriteFile(fake, "#!/bin/sh\nexit 0\n", 0755);  // says nothing: unknown
  EXPECT_EQ(RunRelayChild(env, c, &cancel).release, "");
}

}  // namespace
}  // namespace cm::pushrun
