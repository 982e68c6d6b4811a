#include "util/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace cm {
namespace {
int g_passed = 0;
long CrashAt() {
  static const long at = [] {
    const char* v = std::getenv("CM_CRASH_AT");
    return v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  return at;
}
bool Trace() {
  static const bool t = std::getenv("CM_CRASH_TRACE") != nullptr;
  return t;
}
}  // namespace

void CrashPoint(const char* name) {
  ++g_passed;
  if (Trace()) std::fprintf(stderr, "crash-point %d %s\n", g_passed, name);
  if (CrashAt() > 0 && g_passed == CrashAt()) ::kill(::getpid(), SIGKILL);
}

int CrashPointsPassed() { return g_passed; }

}  // namespace cm
