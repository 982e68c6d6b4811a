// `cm-push --wait`: queue a job behind the jobs that hold its servers and
// start it when they finish. Time passes only through the sleep function, so
// tests run it without real time.
#pragma once

#include <chrono>
#include <functional>

#include "pushdb/state_db.h"
#include "util/status.h"

namespace cm::pushdb {

constexpr std::chrono::milliseconds kWaitForever = std::chrono::milliseconds::max();

struct WaitOptions {
  // How long to wait in all (the sum of the sleeps); kWaitForever for no limit.
  std::chrono::milliseconds budget = kWaitForever;
  // The pause between two tries.
  std::chrono::milliseconds poll{500};
  // Sleeps for the given time. Default: std::this_thread::sleep_for.
  std::function<void(std::chrono::milliseconds)> sleep;
  // Called with the kBusy status (naming the blocker) each time a try fails,
  // e.g. for a progress line. Optional.
  std::function<void(const Status& blocked)> on_blocked;
};

// Polls db->TryBegin(job) until the job runs, sleeping `poll` (less when the
// budget has less left) between tries.
//  - Ok: job->state == kRunning.
//  - kBusy: the budget ran out; the queued job has been finished as aborted
//    ("gave up waiting: <blocker>") and the status names the blocker.
//  - other codes: TryBegin's errors (the job is left as it was).
Status WaitToBegin(StateDb* db, JobHandle* job, const WaitOptions& opts);

// BeginJob in kWait mode, then WaitToBegin when the job was queued.
Result<JobHandle> BeginJobWaiting(StateDb* db, const JobSpec& spec, const WaitOptions& opts);

}  // namespace cm::pushdb
