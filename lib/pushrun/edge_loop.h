// The executor a push core runs on (lib/push/relay_core.h, job_core.h): one
// thread that runs posted work in order and fires the core's single timer.
// Every event reaches the core on this thread, so the core needs no lock;
// HTTP handlers post the decoded request and wait only for the core's
// immediate Reply, never for an outgoing call (those run in CallRunner and
// come back as posted events).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "push/core_io.h"

namespace cm::pushrun {

using proto::Micros;

// Steady-clock microseconds: the `now` every event carries.
Micros SteadyNow();

class EdgeLoop {
 public:
  // `on_timer` runs on the loop thread at (or after) the time last given to
  // SetTimer.
  explicit EdgeLoop(std::function<void(Micros now)> on_timer);
  ~EdgeLoop();  // Stop()
  EdgeLoop(const EdgeLoop&) = delete;
  EdgeLoop& operator=(const EdgeLoop&) = delete;

  // Runs `fn` on the loop thread, after everything posted before. Thread-safe;
  // dropped after Stop().
  void Post(std::function<void()> fn);
  // Runs `fn` on the loop thread and returns its result (from another
  // thread; on the loop thread itself it runs at once). After Stop(): the
  // default value.
  template <typename F>
  auto Run(F fn) -> decltype(fn()) {
    using T = decltype(fn());
    if (std::this_thread::get_id() == thread_.get_id()) return fn();
    auto task = std::make_shared<std::packaged_task<T()>>(std::move(fn));
    auto fut = task->get_future();
    if (!TryPost([task] { (*task)(); })) return T{};
    return fut.get();
  }
  // The next timer call; proto::kNever for none. Thread-safe.
  void SetTimer(Micros at);
  // Ends the thread after the work running now; later posts are dropped.
  // Idempotent; must not be called from the loop thread.
  void Stop();
  bool on_loop_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  bool TryPost(std::function<void()> fn);
  void Loop();

  std::function<void(Micros)> on_timer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  Micros wake_at_ = proto::kNever;
  bool stopping_ = false;
  std::thread thread_;
};

// Runs a core's outgoing Calls over HTTP on a few worker threads (at most
// `workers` at once; the rest wait in order) and posts each CallResult back
// to the loop through `done`. Stop() waits for calls in flight (each bounded
// by its timeout) and drops the queued ones.
class AuthEdge;

class CallRunner {
 public:
  // `auth` (may be null; outlives the runner) stamps every call and checks
  // the CCM's signed answers (pushrun/auth_edge.h).
  CallRunner(EdgeLoop* loop, std::function<void(const push::CallResult&)> done, size_t workers = 8,
             const AuthEdge* auth = nullptr);
  ~CallRunner();  // Stop()
  void Start(push::Call call);  // thread-safe
  void Stop();

 private:
  void Work();
  EdgeLoop* loop_;
  std::function<void(const push::CallResult&)> done_;
  const AuthEdge* auth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<push::Call> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// One call, blocking (what CallRunner's workers run). An answer whose
// signature `auth` refuses comes back as not reached, with the reason.
push::CallResult RunCall(const push::Call& call, const AuthEdge* auth = nullptr);

}  // namespace cm::pushrun
