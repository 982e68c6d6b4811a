#include "pushdb/wait.h"

#include <algorithm>
#include <thread>

namespace cm::pushdb {

Status WaitToBegin(StateDb* db, JobHandle* job, const WaitOptions& opts) {
  using std::chrono::milliseconds;
  const milliseconds poll = std::max(opts.poll, milliseconds(1));
  milliseconds waited{0};
  for (;;) {
    Status st = db->TryBegin(job);
    if (st.code() != Code::kBusy) return st;
    if (opts.on_blocked) opts.on_blocked(st);
    if (opts.budget != kWaitForever && waited >= opts.budget) {
      Status fin = db->FinishJob(job->id, JobState::kAborted, "gave up waiting: " + st.message());
      if (!fin.ok()) return fin;
      job->state = JobState::kAborted;
      return Error(Code::kBusy, "gave up waiting after " + std::to_string(waited.count()) + " ms: " + st.message());
    }
    milliseconds step = poll;
    if (opts.budget != kWaitForever) step = std::min(step, opts.budget - waited);
    if (opts.sleep) {
      opts.sleep(step);
    } else {
      std::this_thread::sleep_for(step);
    }
    waited += step;
  }
}

Result<JobHandle> BeginJobWaiting(StateDb* db, const JobSpec& spec, const WaitOptions& opts) {
  CM_ASSIGN_OR_RETURN(JobHandle job, db->BeginJob(spec, BeginMode::kWait));
  if (job.state == JobState::kQueued) CM_RETURN_IF_ERROR(WaitToBegin(db, &job, opts));
  return job;
}

}  // namespace cm::pushdb
