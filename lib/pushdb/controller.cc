#include "pushdb/controller.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "util/file_util.h"

namespace cm::pushdb {

Controller SelfController() {
  int64_t pid = getpid();
  return Controller{pid, ProcessStartTicks(pid)};
}

uint64_t ProcessStartTicks(int64_t pid) {
  if (pid <= 0) return 0;
  auto text = ReadFileToString("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok()) return 0;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
  // count fields from the last ')'. Field 3 (state) follows it; we want 22.
  auto close = text->rfind(')');
  if (close == std::string::npos) return 0;
  std::string_view rest(*text);
  rest.remove_prefix(close + 1);
  for (int field = 3; field <= 22; ++field) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    auto end = rest.find(' ');
    std::string_view tok = rest.substr(0, end);
    if (tok.empty()) return 0;
    if (field == 22) {
      uint64_t v = 0;
      auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      return r.ec == std::errc() ? v : 0;
    }
    if (end == std::string_view::npos) return 0;
    rest.remove_prefix(end);
  }
  return 0;
}

bool ControllerAlive(const Controller& c) {
  if (c.pid <= 0 || c.pid > INT32_MAX) return false;
  if (kill(static_cast<pid_t>(c.pid), 0) != 0 && errno == ESRCH) return false;
  if (c.start_ticks == 0) return true;
  uint64_t now = ProcessStartTicks(c.pid);
  return now == 0 || now == c.start_ticks;
}

}  // namespace cm::pushdb
