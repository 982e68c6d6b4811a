// `cm-push base` (job mode's base daemon) and `cm-push job ...` (its client),
// a draft of issue 17's job mode: see docs/protocol/jobs.md.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace cm {

struct JobCli {
  std::string sites_file;   // --to
  std::string state_dir;    // --state
  std::string sign_key;     // --sign-key (base)
  std::string group_key;    // --group-key (base)
  std::string listen;       // --listen (base; default [ccm] listen)
  std::string client = "cli";
  std::vector<std::string> servers;
  std::string job, file;
  std::string input = "-";           // job stream: '-' or a file/FIFO
  std::vector<std::string> command;  // job cmd: COMMAND [ARG]
  std::vector<std::string> hooks;    // base --hook
  std::string notify;                // base --notify
  double timeout_s = 3600;           // wait --timeout
  double job_timeout_s = 3600;       // open --timeout
  bool json = false;
  CLI::App* base = nullptr;
  CLI::App* job_cmd = nullptr;
  CLI::App *open = nullptr, *add = nullptr, *end = nullptr, *status = nullptr, *wait = nullptr, *stream = nullptr,
           *cmd = nullptr, *stream_top = nullptr;
};

// Adds `base` and `job` (open, add, cmd, stream, end, status, wait) to `app`.
void AddJobCommands(CLI::App& app, JobCli* cli);
// Runs whichever was parsed; -1 when none was.
int RunJobCommands(JobCli& cli);

}  // namespace cm
