// Fault injection for crash tests. When the environment variable
// CM_CRASH_AT=N is set, the N-th call to CrashPoint() (counting from 1 over
// the process's life) kills the process with SIGKILL, exactly as `kill -9`
// would. CM_CRASH_TRACE=1 prints each point's name to stderr so a test can
// count them. With the variable unset a crash point costs one branch.
#pragma once

namespace cm {

void CrashPoint(const char* name);
// Number of crash points passed so far in this process.
int CrashPointsPassed();

}  // namespace cm
