#include "util/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace cm::log {
namespace {
std::string g_tool = "cm";
int g_verbosity = 1;
bool g_progress_line = false;
LineFormat g_format = LineFormat::kPlain;
bool g_journal = false;  // stderr is the journal: the format stays kJournal

const char* LevelName(Level l) {
  switch (l) {
    case Level::kError: return "error";
    case Level::kWarning: return "warning";
    case Level::kInfo: return "info";
    case Level::kDebug: return "debug";
  }
  return "?";
}

// sd-daemon(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG.
char JournalPriority(Level l) {
  switch (l) {
    case Level::kError: return '3';
    case Level::kWarning: return '4';
    case Level::kInfo: return '6';
    case Level::kDebug: return '7';
  }
  return '6';
}

bool StderrIsJournal() {
  struct stat st;
  if (::fstat(2, &st) != 0) return false;
  return JournalStreamIs(std::getenv("JOURNAL_STREAM"), static_cast<uint64_t>(st.st_dev),
                         static_cast<uint64_t>(st.st_ino));
}

// CM_LOG_TIMESTAMPS: 1 = on, 0 = off, anything else (or unset) = not forced.
int ForcedTimestamps() {
  const char* v = std::getenv("CM_LOG_TIMESTAMPS");
  if (!v) return -1;
  std::string_view s(v);
  return s == "1" ? 1 : s == "0" ? 0 : -1;
}

int64_t NowUnixMs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void Emit(Level level, const std::string& msg) {
  ProgressDone();
  const std::string line =
      FormatLine(g_format, g_tool, level, msg, g_format == LineFormat::kTimestamped ? NowUnixMs() : 0);
  std::fwrite(line.data(), 1, line.size(), stderr);
}
}  // namespace

std::string Rfc3339Utc(int64_t unix_ms) {
  int64_t secs = unix_ms / 1000, ms = unix_ms % 1000;
  if (ms < 0) ms += 1000, secs -= 1;
  const time_t t = static_cast<time_t>(secs);
  struct tm tm;
  ::gmtime_r(&t, &tm);
  char buf[96];  // room for any int fields, so the compiler sees no truncation
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

std::string FormatLine(LineFormat f, std::string_view tool, Level level, std::string_view msg, int64_t unix_ms) {
  std::string head;
  head.append(tool).append(": ").append(LevelName(level)).append(": ");
  std::string out;
  if (f == LineFormat::kJournal) {
    const std::string prio = std::string("<") + JournalPriority(level) + ">";
    out = prio + head;
    for (char c : msg) {
      out += c;
      if (c == '\n') out += prio;
    }
  } else {
    if (f == LineFormat::kTimestamped) out = Rfc3339Utc(unix_ms) + " ";
    out.append(head).append(msg);
  }
  out += '\n';
  return out;
}

bool JournalStreamIs(const char* env, uint64_t dev, uint64_t ino) {
  if (!env) return false;
  std::string_view s(env);
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  uint64_t d = 0, i = 0;
  auto parse = [](std::string_view part, uint64_t* v) {
    auto r = std::from_chars(part.data(), part.data() + part.size(), *v);
    return !part.empty() && r.ec == std::errc() && r.ptr == part.data() + part.size();
  };
  return parse(s.substr(0, colon), &d) && parse(s.substr(colon + 1), &i) && d == dev && i == ino;
}

void Init(const std::string& tool, int verbosity) {
  g_tool = tool;
  g_verbosity = verbosity;
  g_journal = StderrIsJournal();
  g_format = g_journal ? LineFormat::kJournal : ForcedTimestamps() == 1 ? LineFormat::kTimestamped : LineFormat::kPlain;
}
int Verbosity() { return g_verbosity; }
const std::string& Tool() { return g_tool; }

void UseTimestamps(bool on) {
  if (g_journal) return;
  const int forced = ForcedTimestamps();
  if (forced >= 0) on = forced == 1;
  g_format = on ? LineFormat::kTimestamped : LineFormat::kPlain;
}
LineFormat Format() { return g_format; }

void Error(const std::string& msg) { Emit(Level::kError, msg); }
void Error(const Status& st) { Emit(Level::kError, st.message()); }
void Warn(const std::string& msg) {
  if (g_verbosity >= 1) Emit(Level::kWarning, msg);
}
void Info(const std::string& msg) {
  if (g_verbosity >= 2) Emit(Level::kInfo, msg);
}
void Debug(const std::string& msg) {
  if (g_verbosity >= 3) Emit(Level::kDebug, msg);
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
