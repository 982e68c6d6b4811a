// Diagnostics discipline shared by the tools: stdout carries data only; every
// message goes to stderr as "<tool>: <level>: <text>", filtered by verbosity.
// Progress lines appear only when stderr is a terminal.
#pragma once

#include <string>

#include "util/status.h"

namespace cm::log {

// 0 = quiet (errors only), 1 = normal (warnings), 2 = verbose (info), 3 = debug.
void Init(const std::string& tool, int verbosity);
int Verbosity();
const std::string& Tool();

void Error(const std::string& msg);
void Error(const Status& st);
void Warn(const std::string& msg);
void Info(const std::string& msg);
void Debug(const std::string& msg);

// Progress: overwrites one line on a terminal's stderr; silent otherwise.
bool ProgressEnabled();
void Progress(const std::string& line);
void ProgressDone();

}  // namespace cm::log
