#include "util/hangup.h"

#include <signal.h>

#include <atomic>

namespace cm {
namespace {

std::atomic<bool> g_hangup{false};

void OnHangup(int) { g_hangup.store(true, std::memory_order_relaxed); }

}  // namespace

void IgnoreHangups() {
  struct sigaction sa = {};
  sa.sa_handler = OnHangup;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, nullptr);
}

bool TakeHangup() { return g_hangup.exchange(false, std::memory_order_relaxed); }

}  // namespace cm
