// Several connections, threads and processes on one state directory: exactly
// one of several racing BeginJob calls wins, and parallel writers lose nothing.
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <latch>
#include <thread>

#include "pushdb/state_db.h"
#include "pushdb_fixture.h"

namespace cm::pushdb {
namespace {

using test::PushDbTest;
using test::Spec;

TEST_F(PushDbTest, RacingThreadsOnlyOneBeginJobWins) {
  constexpr int kThreads = 8;
  std::vector<std::unique_ptr<StateDb>> dbs;
  for (int i = 0; i < kThreads; ++i) dbs.push_back(OpenDb());
  std::latch start(kThreads);
  std::vector<Code> codes(kThreads, Code::kFailure);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      // Every job shares fra/fra-1 with every other, each in its own way.
      auto job = dbs[i]->BeginJob(Spec("j-" + std::to_string(i), {"ams/ams-" + std::to_string(i), "fra/fra-1"}),
                                  BeginMode::kRefuse);
      codes[i] = job.ok() ? Code::kOk : job.status().code();
    });
  }
  for (auto& t : threads) t.join();
  int won = 0, busy = 0;
  for (Code c : codes) {
    won += c == Code::kOk;
    busy += c == Code::kBusy;
  }
  EXPECT_EQ(won, 1);
  EXPECT_EQ(busy, kThreads - 1);
  auto h = dbs[0]->History(0);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size(), 1u);
}

TEST_F(PushDbTest, RacingProcessesOnAFreshDirectoryOnlyOneBeginJobWins) {
  constexpr int kProcs = 6;
  const std::string dir = dir_ / "fresh";
  int go[2], results[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(results), 0);
  std::vector<pid_t> kids;
  for (int i = 0; i < kProcs; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char c;
      (void)!read(go[0], &c, 1);  // returns 0 when the parent closes its end: all start together
      StateDbOptions o;
      o.busy_timeout = std::chrono::milliseconds(30'000);
      uint8_t out = 100;  // could not open
      auto db = StateDb::Open(dir, o);
      if (db.ok()) {
        auto job = (*db)->BeginJob(Spec("p-" + std::to_string(i), {"ams/ams-1"}), BeginMode::kRefuse);
        out = static_cast<uint8_t>(job.ok() ? Code::kOk : job.status().code());
      } else {
        out = static_cast<uint8_t>(100 + static_cast<int>(db.status().code()));
      }
      (void)!write(results[1], &out, 1);
      _exit(0);
    }
    kids.push_back(pid);
  }
  close(go[0]);
  close(go[1]);
  close(results[1]);
  // Read every result before reaping any child: until it is reaped, a
  // finished winner still counts as a live controller.
  std::vector<int> codes;
  uint8_t b;
  while (read(results[0], &b, 1) == 1) codes.push_back(b);
  close(results[0]);
  for (pid_t k : kids) waitpid(k, nullptr, 0);
  ASSERT_EQ(codes.size(), static_cast<size_t>(kProcs));
  int won = 0, busy = 0;
  for (int c : codes) {
    won += c == static_cast<int>(Code::kOk);
    busy += c == static_cast<int>(Code::kBusy);
  }
  EXPECT_EQ(won, 1);
  std::string all;
  for (int c : codes) all += std::to_string(c) + " ";
  EXPECT_EQ(busy, kProcs - 1) << "codes (>= 100: Open failed): " << all;
  auto db = StateDb::Open(dir, Options());
  ASSERT_TRUE(db.ok());
  auto h = (*db)->History(0);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size(), 1u);
}

TEST_F(PushDbTest, ParallelWritersLoseNoUpdates) {
  constexpr int kThreads = 4, kServers = 20;
  std::vector<std::unique_ptr<StateDb>> dbs;
  std::vector<int64_t> jobs;
  for (int i = 0; i < kThreads; ++i) {
    dbs.push_back(OpenDb());
    std::vector<std::string> pairs;
    for (int s = 0; s < kServers; ++s)
      pairs.push_back("site-" + std::to_string(i) + "/s" + std::to_string(i) + "-" + std::to_string(s));
    auto job = dbs[i]->BeginJob(Spec("j-" + std::to_string(i), pairs, JobKind::kCommit, {5}), BeginMode::kRefuse);
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    jobs.push_back(job->id);
  }
  std::vector<std::thread> threads;
  std::vector<Status> errors(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (ServerState st : {ServerState::kFetching, ServerState::kStaged, ServerState::kCommitted}) {
        for (int s = 0; s < kServers; ++s) {
          Status r = dbs[i]->UpdateServer(jobs[i], "s" + std::to_string(i) + "-" + std::to_string(s), st, 5);
          if (!r.ok() && errors[i].ok()) errors[i] = r;
        }
      }
      Status r = dbs[i]->FinishJob(jobs[i], JobState::kDone, "all committed");
      if (!r.ok() && errors[i].ok()) errors[i] = r;
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& e : errors) EXPECT_TRUE(e.ok()) << e.ToString();
  auto table = dbs[0]->ServerTable();
  ASSERT_TRUE(table.ok());
  ASSERT_EQ(table->size(), static_cast<size_t>(kThreads * kServers));
  for (const ServerRow& r : *table) EXPECT_EQ(r.live_serial, 5u) << r.server;
  for (int64_t j : jobs) {
    auto v = dbs[0]->JobStatus(j);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->job.state, JobState::kDone);
    EXPECT_EQ(v->job.servers_ok, kServers);
  }
  dbs.clear();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "state.db").c_str(), &raw), SQLITE_OK);
  std::string check;
  sqlite3_exec(
      raw, "PRAGMA integrity_check",
      [](void* o, int, char** v, char**) {
        *static_cast<std::string*>(o) += v[0];
        return 0;
      },
      &check, nullptr);
  sqlite3_close(raw);
  EXPECT_EQ(check, "ok");
}

}  // namespace
}  // namespace cm::pushdb
