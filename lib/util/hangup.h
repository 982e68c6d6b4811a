// SIGHUP for the long-running tools (cm-leader run, cm-mcast's daemons):
// never fatal. A closing terminal or a logrotate habit sends it; there is
// nothing to reload (restart to change settings), so it is noted and
// ignored. Process-wide: any thread may take the signal.
#pragma once

namespace cm {

// Installs the handler (SA_RESTART). Call once, from main's thread.
void IgnoreHangups();
// True once per SIGHUP received since the last call (async-signal-safe
// flag, read from a loop): the caller logs that it ignored it.
bool TakeHangup();

}  // namespace cm
