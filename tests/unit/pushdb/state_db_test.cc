// StateDb: opening, the schema version, recording a job's life, queries.
#include "pushdb/state_db.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include "pushdb/schema.h"
#include "pushdb_fixture.h"

namespace cm::pushdb {
namespace {

using test::PushDbTest;
using test::Spec;

// Runs one SQL statement on the state database with a separate raw connection.
std::string RawQuery(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string out;
  sqlite3_exec(
      db, sql.c_str(),
      [](void* o, int n, char** vals, char**) {
        for (int i = 0; i < n; ++i) *static_cast<std::string*>(o) += std::string(vals[i] ? vals[i] : "NULL") + "|";
        return 0;
      },
      &out, nullptr);
  sqlite3_close(db);
  return out;
}

TEST_F(PushDbTest, OpenCreatesDatabaseInWalModeWithSchemaVersion) {
  std::string dir = dir_ / "state/nested";
  auto db = StateDb::Open(dir, Options());
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  struct stat st;
  EXPECT_EQ(stat((dir + "/state.db").c_str(), &st), 0);
  EXPECT_EQ((*db)->path(), dir + "/state.db");
  EXPECT_EQ(RawQuery(dir + "/state.db", "PRAGMA journal_mode"), "wal|");
  EXPECT_EQ(RawQuery(dir + "/state.db", "SELECT version FROM schema_version"), "3|");
  EXPECT_EQ(RawQuery(dir + "/state.db", "PRAGMA application_id"), std::to_string(kApplicationId) + "|");
}

TEST_F(PushDbTest, NewerSchemaIsRefusedWithClearError) {
  OpenDb().reset();
  RawQuery(dir_ / "state.db", "UPDATE schema_version SET version = 7");
  auto db = StateDb::Open(dir_.path(), Options());
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::kFailure);
  EXPECT_NE(db.status().message().find("schema version 7 is newer than this cm-push understands (3)"),
            std::string::npos)
      << db.status().message();
}

TEST_F(PushDbTest, AVersion2DatabaseGainsTheLiveManifest) {
  OpenDb().reset();
  RawQuery(dir_ / "state.db", "ALTER TABLE servers DROP COLUMN live_manifest; UPDATE schema_version SET version = 2");
  ASSERT_EQ(RawQuery(dir_ / "state.db", "SELECT version FROM schema_version"), "2|");
  auto db = StateDb::Open(dir_.path(), Options());
  ASSERT_TRUE(db.ok()) << db.status().message();
  EXPECT_EQ(RawQuery(dir_ / "state.db", "SELECT version FROM schema_version"), "3|");
  EXPECT_EQ(RawQuery(dir_ / "state.db", "SELECT count(*) FROM pragma_table_info('servers') WHERE name = 'live_manifest'"),
            "1|");
}

TEST_F(PushDbTest, ForeignSqliteDatabaseIsRefused) {
  RawQuery(dir_ / "state.db", "CREATE TABLE something_else (x)");
  auto db = StateDb::Open(dir_.path(), Options());
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::kCorrupt);
  EXPECT_NE(db.status().message().find("not a cm-push state database"), std::string::npos);
}

TEST_F(PushDbTest, GarbageFileIsCorrupt) {
  cm::test::WriteFile(dir_ / "state.db", std::string(4096, 'x'));
  auto db = StateDb::Open(dir_.path(), Options());
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::kCorrupt) << db.status().ToString();
}

TEST_F(PushDbTest, JobLifeIsRecordedAndReopeningPersistsIt) {
  int64_t id = 0;
  {
    auto db = OpenDb();
    JobSpec spec = Spec("j-1", {"ams/ams-1", "ams/ams-2", "fra/fra-1"}, JobKind::kPublish, {41, 42});
    spec.options = "--require all";
    auto job = db->BeginJob(spec, BeginMode::kRefuse);
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    EXPECT_EQ(job->state, JobState::kRunning);
    id = job->id;
    Advance(1500);
    ASSERT_TRUE(db->UpdateServer(id, "ams-1", ServerState::kFetching, 41).ok());
    ASSERT_TRUE(db->UpdateServer(id, "ams-1", ServerState::kStaged, 42).ok());
    ASSERT_TRUE(db->UpdateServer(id, "ams-2", ServerState::kStaged, 42).ok());
    ASSERT_TRUE(db->UpdateServer(id, "fra-1", ServerState::kFailed, 0, "connection refused").ok());
    Advance(500);
    ASSERT_TRUE(db->FinishJob(id, JobState::kPartial, "2 staged, 1 failed").ok());
  }
  auto db = OpenDb();
  auto v = db->JobStatus(id);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->job.name, "j-1");
  EXPECT_EQ(v->job.kind, JobKind::kPublish);
  EXPECT_EQ(v->job.serials, (std::vector<uint64_t>{41, 42}));
  EXPECT_EQ(v->job.state, JobState::kPartial);
  EXPECT_EQ(v->job.options, "--require all");
  EXPECT_EQ(v->job.summary, "2 staged, 1 failed");
  EXPECT_EQ(v->job.started_ms, 1714564800000);
  EXPECT_EQ(v->job.finished_ms, 1714564802000);
  EXPECT_EQ(v->job.controller.pid, getpid());
  EXPECT_EQ(v->job.servers, 3);
  EXPECT_EQ(v->job.servers_ok, 2);
  EXPECT_EQ(v->job.servers_failed, 1);
  ASSERT_EQ(v->servers.size(), 3u);
  EXPECT_EQ(v->servers[0].server, "ams-1");
  EXPECT_EQ(v->servers[0].state, ServerState::kStaged);
  EXPECT_EQ(v->servers[0].serial, 42u);
  EXPECT_EQ(v->servers[2].site, "fra");
  EXPECT_EQ(v->servers[2].state, ServerState::kFailed);
  EXPECT_EQ(v->servers[2].error, "connection refused");
  EXPECT_EQ(v->servers[2].serial, 0u);  // a failure without a serial keeps the recorded one
}

TEST_F(PushDbTest, NewTargetsStartPending) {
  auto db = OpenDb();
  auto job = db->BeginJob(Spec("j", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(job.ok());
  auto v = db->JobStatus(job->id);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->servers.size(), 1u);
  EXPECT_EQ(v->servers[0].state, ServerState::kPending);
  EXPECT_EQ(v->job.finished_ms, 0);
}

TEST_F(PushDbTest, ServerTableShowsLiveSerialAfterCommit) {
  auto db = OpenDb();
  auto pub = db->BeginJob(Spec("j-1", {"ams/ams-1", "ams/ams-2"}, JobKind::kPublish, {7}), BeginMode::kRefuse);
  ASSERT_TRUE(pub.ok());
  ASSERT_TRUE(db->UpdateServer(pub->id, "ams-1", ServerState::kStaged, 7).ok());
  ASSERT_TRUE(db->UpdateServer(pub->id, "ams-2", ServerState::kStaged, 7).ok());
  ASSERT_TRUE(db->FinishJob(pub->id, JobState::kDone, "staged").ok());
  // Staging does not change what a server runs.
  auto table = db->ServerTable();
  ASSERT_TRUE(table.ok());
  ASSERT_EQ(table->size(), 2u);
  EXPECT_EQ((*table)[0].live_serial, 0u);

  Advance(1000);
  auto commit = db->BeginJob(Spec("j-1", {"ams/ams-1", "ams/ams-2"}, JobKind::kCommit, {8}), BeginMode::kRefuse);
  ASSERT_TRUE(commit.ok());
  ASSERT_TRUE(db->UpdateServer(commit->id, "ams-1", ServerState::kCommitted, 7).ok());
  ASSERT_TRUE(db->UpdateServer(commit->id, "ams-2", ServerState::kFailed, 0, "switch failed").ok());
  ASSERT_TRUE(db->FinishJob(commit->id, JobState::kPartial, "").ok());
  table = db->ServerTable();
  ASSERT_TRUE(table.ok());
  ASSERT_EQ(table->size(), 2u);
  EXPECT_EQ((*table)[0].server, "ams-1");
  EXPECT_EQ((*table)[0].site, "ams");
  EXPECT_EQ((*table)[0].live_serial, 7u);
  EXPECT_EQ((*table)[0].live_job, commit->id);
  EXPECT_EQ((*table)[0].last_seen_ms, 1714564801000);
  EXPECT_EQ((*table)[1].live_serial, 0u);
  EXPECT_EQ((*table)[1].live_job, 0);
  EXPECT_EQ((*table)[1].last_seen_ms, 1714564800000);  // seen staging, not at the failure
}

TEST_F(PushDbTest, RollbackSetsLiveSerialBack) {
  auto db = OpenDb();
  auto c = db->BeginJob(Spec("j-2", {"ams/ams-1"}, JobKind::kCommit, {9}), BeginMode::kRefuse);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(db->UpdateServer(c->id, "ams-1", ServerState::kCommitted, 9).ok());
  ASSERT_TRUE(db->FinishJob(c->id, JobState::kDone, "").ok());
  auto r = db->BeginJob(Spec("j-2", {"ams/ams-1"}, JobKind::kRollback, {10}), BeginMode::kRefuse);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(db->UpdateServer(r->id, "ams-1", ServerState::kRolledBack, 7).ok());
  auto table = db->ServerTable();
  ASSERT_TRUE(table.ok());
  EXPECT_EQ((*table)[0].live_serial, 7u);
  EXPECT_EQ((*table)[0].live_job, r->id);
}

TEST_F(PushDbTest, CommittedWithoutSerialIsRejected) {
  auto db = OpenDb();
  auto c = db->BeginJob(Spec("j", {"ams/ams-1"}, JobKind::kCommit), BeginMode::kRefuse);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(db->UpdateServer(c->id, "ams-1", ServerState::kCommitted, 0).code(), Code::kFailure);
}

TEST_F(PushDbTest, UpdateOfUnknownJobOrServerIsNotFound) {
  auto db = OpenDb();
  auto job = db->BeginJob(Spec("j", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(db->UpdateServer(job->id + 1, "ams-1", ServerState::kStaged, 1).code(), Code::kNotFound);
  Status st = db->UpdateServer(job->id, "fra-1", ServerState::kStaged, 1);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_NE(st.message().find("fra-1 is not a target of job"), std::string::npos) << st.message();
  // The rejected update left nothing behind.
  auto v = db->JobStatus(job->id);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->servers.size(), 1u);
}

TEST_F(PushDbTest, FinishedJobTakesNoMoreUpdates) {
  auto db = OpenDb();
  auto job = db->BeginJob(Spec("j", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(db->FinishJob(job->id, JobState::kFailed, "no route").ok());
  EXPECT_EQ(db->UpdateServer(job->id, "ams-1", ServerState::kStaged, 1).code(), Code::kFailure);
  Status again = db->FinishJob(job->id, JobState::kDone, "");
  EXPECT_EQ(again.code(), Code::kFailure);
  EXPECT_NE(again.message().find("already failed"), std::string::npos) << again.message();
}

TEST_F(PushDbTest, FinishNeedsAFinalState) {
  auto db = OpenDb();
  auto job = db->BeginJob(Spec("j", {"ams/ams-1"}), BeginMode::kRefuse);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(db->FinishJob(job->id, JobState::kRunning, "").code(), Code::kFailure);
  EXPECT_EQ(db->FinishJob(job->id + 5, JobState::kDone, "").code(), Code::kNotFound);
}

TEST_F(PushDbTest, MalformedSpecsAreUsageErrors) {
  auto db = OpenDb();
  EXPECT_EQ(db->BeginJob(Spec("", {"ams/ams-1"}), BeginMode::kRefuse).status().code(), Code::kUsage);
  EXPECT_EQ(db->BeginJob(Spec("j", {}), BeginMode::kRefuse).status().code(), Code::kUsage);
  EXPECT_EQ(db->BeginJob(Spec("j", {"ams/a", "fra/a"}), BeginMode::kRefuse).status().code(), Code::kUsage);
  EXPECT_EQ(db->BeginJob(Spec("j", {"/a"}), BeginMode::kRefuse).status().code(), Code::kUsage);
  auto h = db->History(0);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->empty());
}

TEST_F(PushDbTest, HistoryIsNewestFirstAndLimited) {
  auto db = OpenDb();
  for (int i = 1; i <= 5; ++i) {
    auto job = db->BeginJob(Spec("j-" + std::to_string(i), {"ams/ams-1"}), BeginMode::kRefuse);
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    ASSERT_TRUE(db->FinishJob(job->id, JobState::kDone, "").ok());
    Advance(1000);
  }
  auto all = db->History(0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].name, "j-5");
  EXPECT_EQ((*all)[4].name, "j-1");
  auto three = db->History(3);
  ASSERT_TRUE(three.ok());
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ((*three)[2].name, "j-3");
  auto latest = db->LatestJob();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->name, "j-5");
}

TEST_F(PushDbTest, EmptyDatabaseHasNoLatestJob) {
  auto db = OpenDb();
  EXPECT_EQ(db->LatestJob().status().code(), Code::kNotFound);
  EXPECT_EQ(db->JobStatus(1).status().code(), Code::kNotFound);
}

TEST_F(PushDbTest, FindJobByNumberOrNewestByName) {
  auto db = OpenDb();
  auto a = db->BeginJob(Spec("j-x", {"ams/ams-1"}, JobKind::kPublish), BeginMode::kRefuse);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(db->FinishJob(a->id, JobState::kDone, "").ok());
  auto b = db->BeginJob(Spec("j-x", {"ams/ams-1"}, JobKind::kCommit), BeginMode::kRefuse);
  ASSERT_TRUE(b.ok());
  auto by_name = db->FindJob("j-x");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->id, b->id);
  auto by_number = db->FindJob(std::to_string(a->id));
  ASSERT_TRUE(by_number.ok());
  EXPECT_EQ(by_number->kind, JobKind::kPublish);
  EXPECT_EQ(db->FindJob("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(db->FindJob("999").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace cm::pushdb
