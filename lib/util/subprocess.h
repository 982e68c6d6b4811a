// Running another Content Mover tool (cm-apply, cm-mcast) as a child process:
// argv only (no shell), stdout captured, stderr passed through or captured,
// a time limit after which the child gets SIGTERM, then SIGKILL.
// A child of RunProcess dies with its parent: it is started with
// PR_SET_PDEATHSIG(SIGKILL) (and exits at once if the parent died before
// that took effect), so even a parent killed with -9 leaves no cm-mcast or
// cm-apply behind. Linux ties that signal to the parent *thread*; RunProcess
// blocks its calling thread until the child ends, so that is the same here.
// Thread-safe: each call owns its child; children are reaped before return.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "util/status.h"

namespace cm {

struct ProcessResult {
  int exit_code = -1;   // the child's exit status; 128+N when killed by signal N
  bool timed_out = false;
  std::string out;      // captured stdout
  std::string err;      // captured stderr (when capture_stderr)
};

struct ProcessOptions {
  std::chrono::milliseconds timeout{0};  // 0 = none
  bool capture_stderr = true;
  const std::atomic<bool>* cancel = nullptr;  // polled; true = terminate the child
  std::vector<std::string> env;               // extra NAME=VALUE entries
};

// Runs argv[0] (looked up in PATH when it has no '/'). An error Status only
// when the child could not be started; a failing child is a result with its
// exit code.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, const ProcessOptions& opts = {});

// The last non-empty line of a child's stderr, for one-line error reports.
std::string LastLine(const std::string& text);

}  // namespace cm

namespace cm {

// Starts argv (looked up in PATH) without waiting for it, for hooks that must
// not stall their caller: stdin is /dev/null, its stdout goes to our stderr
// (our stdout may carry data), its stderr is ours; `env` adds NAME=VALUE
// entries. Returns the child's pid, which the caller reaps with ReapExited.
Result<int> StartProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
// Reaps, without blocking, the children in *pids that have exited and
// removes them from it. Returns how many were reaped.
size_t ReapExited(std::vector<int>* pids);

}  // namespace cm
