#include "pushrun/edge_loop.h"

#include <chrono>

#include "http/client.h"
#include "pushrun/auth_edge.h"

namespace cm::pushrun {

Micros SteadyNow() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

EdgeLoop::EdgeLoop(std::function<void(Micros)> on_timer) : on_timer_(std::move(on_timer)) {
  thread_ = std::thread([this] { Loop(); });
}

EdgeLoop::~EdgeLoop() { Stop(); }

void EdgeLoop::Post(std::function<void()> fn) { TryPost(std::move(fn)); }

bool EdgeLoop::TryPost(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
  return true;
}

void EdgeLoop::SetTimer(Micros at) {
  {
    std::lock_guard<std::mutex> l(mu_);
    wake_at_ = at;
  }
  cv_.notify_one();
}

void EdgeLoop::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable() && !on_loop_thread()) thread_.join();
}

void EdgeLoop::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    if (!queue_.empty()) {
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      l.unlock();
      fn();
      l.lock();
      continue;
    }
    Micros now = SteadyNow();
    if (wake_at_ != proto::kNever && now >= wake_at_) {
      wake_at_ = proto::kNever;
      l.unlock();
      on_timer_(now);
      l.lock();
      continue;
    }
    if (wake_at_ == proto::kNever)
      cv_.wait(l);
    else
      cv_.wait_for(l, std::chrono::microseconds(wake_at_ - now));
  }
  queue_.clear();  // dropped: packaged tasks in it break their futures
}

push::CallResult RunCall(const push::Call& call, const AuthEdge* auth) {
  push::CallResult r;
  r.id = call.id;
  http::HeaderList headers;
  if (auth) headers = auth->Stamp(call);
  auto resp = http::Call(push::EndpointMethod(call.endpoint), call.base_url + push::EndpointPath(call.endpoint) + call.query,
                         call.body, std::chrono::milliseconds(std::max<Micros>(call.timeout / 1000, 1)),
                         "application/json", headers);
  if (!resp.ok()) {
    r.body = resp.status().message();
    return r;
  }
  if (auth && resp->status / 100 == 2) {
    std::string why = auth->CheckAnswer(call, resp->headers, resp->body);
    if (!why.empty()) {
      r.body = why;
      return r;
    }
  }
  r.reached = true;
  r.status = resp->status;
  r.body = std::move(resp->body);
  return r;
}

CallRunner::CallRunner(EdgeLoop* loop, std::function<void(const push::CallResult&)> done, size_t workers,
                       const AuthEdge* auth)
    : loop_(loop), done_(std::move(done)), auth_(auth) {
  for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
}

CallRunner::~CallRunner() { Stop(); }

void CallRunner::Start(push::Call call) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(call));
  }
  cv_.notify_one();
}

void CallRunner::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void CallRunner::Work() {
  for (;;) {
    push::Call call;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      call = std::move(queue_.front());
      queue_.pop_front();
    }
    push::CallResult r = RunCall(call, auth_);
    loop_->Post([this, r = std::move(r)] { done_(r); });
  }
}

}  // namespace cm::pushrun
