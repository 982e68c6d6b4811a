// `cm-push relay`: the relay daemon's options, configuration file and
// signal handling (the daemon itself is lib/pushrun/relay.h).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "pushrun/relay.h"

namespace cm {

struct RelayCli {
  pushrun::RelayOptions r;  // cm_apply / cm_mcast preset by the caller
  std::string config;       // --config
  CLI::App* cmd = nullptr;
};

// Adds the `relay` subcommand and its options to `app`.
CLI::App* AddRelayCommand(CLI::App& app, RelayCli* cli);
// Runs the daemon until SIGTERM/SIGINT; the process exit code.
int RunRelay(RelayCli& cli);

}  // namespace cm
