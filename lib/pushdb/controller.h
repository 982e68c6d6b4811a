// Is a job's controller process still alive? A job left `running` by a
// cm-push that was killed must not block the next one forever.
#pragma once

#include <cstdint>

#include "pushdb/job_types.h"

namespace cm::pushdb {

// This process: its pid and start time.
Controller SelfController();

// The start time of process `pid` in clock ticks since boot (field 22 of
// /proc/PID/stat); 0 when unknown (no /proc, no such process).
uint64_t ProcessStartTicks(int64_t pid);

// False when kill(pid, 0) fails with ESRCH, when pid <= 0, or when the pid is
// alive but started at another time than recorded (the pid was reused).
// True otherwise, including EPERM (alive, owned by another user).
bool ControllerAlive(const Controller& c);

}  // namespace cm::pushdb
