// The tables and JSON of `cm-push status` / `history`, and the job value types.
#include "pushdb/render.h"

#include <gtest/gtest.h>

#include "util/json_value.h"

namespace cm::pushdb {
namespace {

constexpr int64_t kT0 = 1714564800000;  // 2024-05-01 12:00:00 UTC

JobStatusView SampleStatus() {
  JobStatusView v;
  v.job.id = 12;
  v.job.name = "j-20240501";
  v.job.kind = JobKind::kCommit;
  v.job.serials = {41, 42, 43};
  v.job.state = JobState::kPartial;
  v.job.queued_ms = kT0;
  v.job.started_ms = kT0;
  v.job.finished_ms = kT0 + 9150;
  v.job.controller.pid = 4242;
  v.job.summary = "1 committed, 1 failed";
  v.job.options = "--require \"quorum\"";
  v.job.servers = 2;
  v.job.servers_ok = 1;
  v.job.servers_failed = 1;
  v.servers.push_back({"ams", "ams-1", ServerState::kCommitted, 43, "", kT0 + 9000});
  v.servers.push_back({"fra", "fra-10", ServerState::kFailed, 0, "connection refused", kT0 + 3000});
  return v;
}

TEST(RenderTest, StatusTableIsFixedWidth) {
  EXPECT_EQ(RenderStatusHuman(SampleStatus()),
            "job 12: commit j-20240501, serials 41-43, partial\n"
            "  UTC: queued 2024-05-01 12:00:00, started 2024-05-01 12:00:00, finished 2024-05-01 12:00:09, took 9.1s\n"
            "  controller pid 4242, servers 1/2 (1 failed)\n"
            "  summary: 1 committed, 1 failed\n"
            "\n"
            "SITE  SERVER  STATE      SERIAL  UPDATED              ERROR\n"
            "ams   ams-1   committed  43      2024-05-01 12:00:09\n"
            "fra   fra-10  failed     -       2024-05-01 12:00:03  connection refused\n");
}

TEST(RenderTest, StatusJsonParsesBack) {
  std::string text = RenderStatusJson(SampleStatus());
  ASSERT_EQ(text.back(), '\n');
  auto v = ParseJson(text);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const JsonValue& job = (*v)["job"];
  EXPECT_EQ(job.Int("id"), 12);
  EXPECT_EQ(job.Str("kind"), "commit");
  EXPECT_EQ(job.Str("state"), "partial");
  EXPECT_EQ(job.Str("started"), "2024-05-01T12:00:00.000Z");
  EXPECT_EQ(job.Str("finished"), "2024-05-01T12:00:09.150Z");
  EXPECT_EQ(job.Int("duration_ms"), 9150);
  EXPECT_EQ(job.Str("options"), "--require \"quorum\"");
  ASSERT_EQ(job["serials"].items().size(), 3u);
  EXPECT_EQ(job["serials"].items()[2].AsNumber(), 43);
  const auto& servers = (*v)["servers"].items();
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[1].Str("server"), "fra-10");
  EXPECT_EQ(servers[1].Str("error"), "connection refused");
  EXPECT_EQ(servers[0].Uint("serial"), 43u);
}

TEST(RenderTest, UnfinishedJobHasNullTimes) {
  JobRecord j;
  j.id = 3;
  j.name = "j";
  j.state = JobState::kQueued;
  j.queued_ms = kT0;
  auto v = ParseJson(JobJson(j));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE((*v)["started"].is_null());
  EXPECT_TRUE((*v)["finished"].is_null());
  EXPECT_TRUE((*v)["duration_ms"].is_null());
  EXPECT_EQ(v->Str("queued"), "2024-05-01T12:00:00.000Z");
}

TEST(RenderTest, HistoryTableAndJson) {
  JobRecord a = SampleStatus().job;
  JobRecord b;
  b.id = 13;
  b.name = "j-next";
  b.kind = JobKind::kPublish;
  b.serials = {44};
  b.state = JobState::kQueued;
  b.queued_ms = kT0 + 60'000;
  b.servers = 3;
  EXPECT_EQ(RenderHistoryHuman({b, a}),
            "JOB  KIND     NAME        SERIALS  STATE    STARTED              DURATION  SERVERS         SUMMARY\n"
            "13   publish  j-next      44       queued   2024-05-01 12:01:00  -         0/3\n"
            "12   commit   j-20240501  41-43    partial  2024-05-01 12:00:00  9.1s      1/2 (1 failed)  "
            "1 committed, 1 failed\n");
  auto v = ParseJson(RenderHistoryJson({b, a}));
  ASSERT_TRUE(v.ok());
  ASSERT_EQ((*v)["jobs"].items().size(), 2u);
  EXPECT_EQ((*v)["jobs"].items()[0].Int("id"), 13);
}

TEST(RenderTest, EmptyHistoryIsJustTheHeader) {
  EXPECT_EQ(RenderHistoryHuman({}), "JOB  KIND  NAME  SERIALS  STATE  STARTED  DURATION  SERVERS  SUMMARY\n");
  EXPECT_EQ(RenderHistoryJson({}), "{\"v\":1,\"jobs\":[]}\n");
}

TEST(RenderTest, ServerTable) {
  std::vector<ServerRow> rows(2);
  rows[0].server = "ams-1";
  rows[0].site = "ams";
  rows[0].live_serial = 43;
  rows[0].live_release = "s000000000043-job7";
  rows[0].live_manifest = "0123456789abcdef" + std::string(48, '0');
  rows[0].live_job = 12;
  rows[0].last_seen_ms = kT0 + 9000;
  rows[0].last_job = 12;
  rows[0].last_state = "committed";
  rows[1].server = "ams-2";
  rows[1].site = "ams";
  rows[1].last_job = 12;
  rows[1].last_state = "failed";
  rows[1].last_error = "connection refused";
  EXPECT_EQ(RenderServerTableHuman(rows),
            "SITE  SERVER  RELEASE             MANIFEST          SERIAL  JOB  LAST-SEEN            LAST       ERROR\n"
            "ams   ams-1   s000000000043-job7  0123456789abcdef  43      12   2024-05-01 12:00:09  committed\n"
            "ams   ams-2   -                   -                 -       -    -                    failed     connection refused\n");
  auto v = ParseJson(RenderServerTableJson(rows));
  ASSERT_TRUE(v.ok());
  const auto& s = (*v)["servers"].items();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].Uint("serial"), 43u);
  EXPECT_EQ(s[0].Str("release"), "s000000000043-job7");
  EXPECT_EQ(s[0].Str("manifest"), rows[0].live_manifest);
  EXPECT_EQ(s[1].Str("last_error"), "connection refused");
  EXPECT_EQ((*v).Int("v"), kJsonSchema);
  EXPECT_TRUE(s[1]["live_job"].is_null());
  EXPECT_TRUE(s[1]["last_seen"].is_null());
}

TEST(RenderTest, Durations) {
  EXPECT_EQ(FormatDuration(850), "850ms");
  EXPECT_EQ(FormatDuration(9150), "9.1s");
  EXPECT_EQ(FormatDuration(125'000), "2m05s");
  EXPECT_EQ(FormatDuration(3'725'000), "1h02m");
  EXPECT_EQ(FormatTimeHuman(0), "-");
  EXPECT_EQ(FormatTimeRfc3339(0), "");
}

TEST(JobTypesTest, NamesRoundTrip) {
  for (auto k : {JobKind::kPublish, JobKind::kCommit, JobKind::kRollback, JobKind::kReplicate})
    EXPECT_EQ(ParseJobKind(JobKindName(k)), k);
  for (int i = 0; i <= static_cast<int>(JobState::kAborted); ++i)
    EXPECT_EQ(ParseJobState(JobStateName(static_cast<JobState>(i))), static_cast<JobState>(i));
  for (int i = 0; i <= static_cast<int>(ServerState::kRolledBack); ++i)
    EXPECT_EQ(ParseServerState(ServerStateName(static_cast<ServerState>(i))), static_cast<ServerState>(i));
  EXPECT_EQ(ServerStateName(ServerState::kRolledBack), std::string("rolled-back"));
  EXPECT_FALSE(ParseJobKind("hot"));
}

TEST(JobTypesTest, Serials) {
  EXPECT_EQ(FormatSerials({}), "-");
  EXPECT_EQ(FormatSerials({7}), "7");
  EXPECT_EQ(FormatSerials({7, 8, 9}), "7-9");
  EXPECT_EQ(FormatSerials({7, 9}), "7,9");
  EXPECT_EQ(EncodeSerials({7, 18446744073709551615ull}), "7 18446744073709551615");
  EXPECT_EQ(DecodeSerials("7 18446744073709551615"), (std::vector<uint64_t>{7, 18446744073709551615ull}));
  EXPECT_EQ(DecodeSerials(""), std::vector<uint64_t>{});
  EXPECT_FALSE(DecodeSerials("7 "));
  EXPECT_FALSE(DecodeSerials("7  8"));
  EXPECT_FALSE(DecodeSerials("x"));
  EXPECT_FALSE(DecodeSerials("18446744073709551616"));
}

}  // namespace
}  // namespace cm::pushdb
