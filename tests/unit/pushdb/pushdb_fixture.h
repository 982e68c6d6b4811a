// Shared helpers for the lib/pushdb tests: a state directory in a temporary
// directory, a fake clock, and job specs built from "site/server" strings.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "pushdb/state_db.h"
#include "support/test_util.h"

namespace cm::pushdb::test {

inline JobSpec Spec(const std::string& name, const std::vector<std::string>& pairs,
                    JobKind kind = JobKind::kPublish, std::vector<uint64_t> serials = {1}) {
  JobSpec s;
  s.name = name;
  s.kind = kind;
  s.serials = std::move(serials);
  for (const std::string& p : pairs) {
    auto slash = p.find('/');
    s.targets.push_back(Target{p.substr(0, slash), p.substr(slash + 1)});
  }
  return s;
}

class PushDbTest : public ::testing::Test {
 protected:
  // A clock that starts at 2024-05-01 12:00:00 UTC and moves only when told.
  std::shared_ptr<std::atomic<int64_t>> clock_ = std::make_shared<std::atomic<int64_t>>(1714564800000);

  StateDbOptions Options() {
    StateDbOptions o;
    auto c = clock_;
    o.now_ms = [c] { return c->load(); };
    o.busy_timeout = std::chrono::milliseconds(30'000);
    return o;
  }
  std::unique_ptr<StateDb> OpenDb(StateDbOptions o) {
    auto db = StateDb::Open(dir_.path(), std::move(o));
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    return db.ok() ? std::move(db).value() : nullptr;
  }
  std::unique_ptr<StateDb> OpenDb() { return OpenDb(Options()); }
  void Advance(int64_t ms) { *clock_ += ms; }

  cm::test::TempDir dir_;
};

}  // namespace cm::pushdb::test
