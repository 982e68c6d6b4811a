#include "util/log.h"

#include <unistd.h>

#include <cstdio>

namespace cm::log {
namespace {
std::string g_tool = "cm";
int g_verbosity = 1;
bool g_progress_line = false;

void Emit(const char* level, const std::string& msg) {
  ProgressDone();
  std::fprintf(stderr, "%s: %s: %s\n", g_tool.c_str(), level, msg.c_str());
}
}  // namespace

void Init(const std::string& tool, int verbosity) {
  g_tool = tool;
  g_verbosity = verbosity;
}
int Verbosity() { return g_verbosity; }
const std::string& Tool() { return g_tool; }

void Error(const std::string& msg) { Emit("error", msg); }
void Error(const Status& st) { Emit("error", st.message()); }
void Warn(const std::string& msg) {
  if (g_verbosity >= 1) Emit("warning", msg);
}
void Info(const std::string& msg) {
  if (g_verbosity >= 2) Emit("info", msg);
}
void Debug(const std::string& msg) {
  if (g_verbosity >= 3) Emit("debug", msg);
}

bool ProgressEnabled() { return g_verbosity >= 1 && ::isatty(2) == 1; }

void Progress(const std::string& line) {
  if (!ProgressEnabled()) return;
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  g_progress_line = true;
}

void ProgressDone() {
  if (g_progress_line) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    g_progress_line = false;
  }
}

}  // namespace cm::log
