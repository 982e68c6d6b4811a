// `cm-push checkpoint list|create|prune|restore`: the CCM's checkpoint store
// (lib/ckpt/store.h) at STATE/checkpoints, from the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "pushrun/controller.h"

namespace cm {

struct CheckpointCli {
  std::string state_dir;  // --state
  std::string from, release, shadow;
  uint64_t serial = 0;
  size_t keep = 10;
  std::vector<std::string> pin;
  bool json = false, verify = false;
  pushrun::PushOptions push;  // restore: the push it makes (--to, keys, --only, --timeout)
  CLI::App *cmd = nullptr, *list = nullptr, *create = nullptr, *prune = nullptr, *restore = nullptr;
};

// Adds `checkpoint` and its subcommands to `app`.
CLI::App* AddCheckpointCommand(CLI::App& app, CheckpointCli* cli);
// Runs the parsed subcommand; the process exit code (errors logged).
// `defaults`: tool paths and verbosity for restore's push.
int RunCheckpoint(const CheckpointCli& cli, const pushrun::PushOptions& defaults);

}  // namespace cm
