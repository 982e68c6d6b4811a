// Diagnostics discipline shared by the tools: stdout carries data only; every
// message goes to stderr as "<tool>: <level>: <text>", filtered by verbosity.
// Progress lines appear only when stderr is a terminal.
//
// Line formats (chosen by Init from the environment, see LineFormat):
//   plain        cm-apply: error: a.cma: bad signature
//   timestamped  2025-03-01T09:12:45.123Z cm-push: warning: SIGHUP ignored ...
//   journal      <4>cm-push: warning: SIGHUP ignored ...
// A one-shot tool's lines stay plain (scripts and the relay match
// "TOOL: error: " at the start of a line); a daemon calls UseTimestamps(true)
// so its log says when; CM_LOG_TIMESTAMPS=1 (or 0) forces that for any tool,
// e.g. a cron job appending to a log file. When stderr is the systemd journal
// ($JOURNAL_STREAM names stderr's device and inode, as systemd sets it for a
// unit with StandardError=journal) lines carry a syslog priority prefix
// (sd-daemon(3): <3> error, <4> warning, <6> info, <7> debug) and no
// timestamp, since the journal stamps every line itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace cm::log {

enum class Level { kError, kWarning, kInfo, kDebug };
enum class LineFormat { kPlain, kTimestamped, kJournal };

// 0 = quiet (errors only), 1 = normal (warnings), 2 = verbose (info), 3 = debug.
// Also picks the line format: journal when stderr is the journal, else
// timestamped when CM_LOG_TIMESTAMPS=1, else plain.
void Init(const std::string& tool, int verbosity);
int Verbosity();
const std::string& Tool();

// For long-running processes (daemons): timestamps on every line unless
// stderr is the journal or CM_LOG_TIMESTAMPS=0. Call after Init.
void UseTimestamps(bool on);
LineFormat Format();

void Error(const std::string& msg);
void Error(const Status& st);
void Warn(const std::string& msg);
void Info(const std::string& msg);
void Debug(const std::string& msg);

// Progress: overwrites one line on a terminal's stderr; silent otherwise.
bool ProgressEnabled();
void Progress(const std::string& line);
void ProgressDone();

// The pure parts, for tests. FormatLine returns the text written for one
// message, ending in '\n'; `unix_ms` is the UTC time in milliseconds since the
// epoch (used by kTimestamped only). In kJournal every line of a multi-line
// message carries the prefix, so the journal files none of them at the
// default priority.
std::string FormatLine(LineFormat f, std::string_view tool, Level level, std::string_view msg, int64_t unix_ms);
// "2025-03-01T09:12:45.123Z" (RFC 3339, UTC, milliseconds).
std::string Rfc3339Utc(int64_t unix_ms);
// Whether $JOURNAL_STREAM's value `env` ("DEV:INODE", decimal; null or
// malformed = no) names the file with this device and inode.
bool JournalStreamIs(const char* env, uint64_t dev, uint64_t ino);

}  // namespace cm::log
