// `cm-push relay`: the relay daemon's options, configuration file and
// signal handling (the daemon itself is lib/pushrun/relay.h).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "pushrun/relay.h"

namespace cm {

struct RelayCli {
  pushrun::RelayOptions r;  // cm_apply / cm_mcast preset by the caller
  std::string config;       // --config
  std::vector<std::string> job_hooks;  // --job-hook NAME=PROGRAM (job mode's "hook NAME" commands)
  CLI::App* cmd = nullptr;
};

// Adds the `relay` subcommand and its options to `app`.
CLI::App* AddRelayCommand(CLI::App& app, RelayCli* cli);
// Runs the daemon until SIGTERM/SIGINT; the process exit code.
int RunRelay(RelayCli& cli);

}  // namespace cm
