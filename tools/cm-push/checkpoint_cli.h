// `cm-push checkpoint list|create|prune`: the CCM's checkpoint store
// (lib/ckpt/store.h) at STATE/checkpoints, from the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace cm {

struct CheckpointCli {
  std::string state_dir;  // --state
  std::string from, release, shadow;
  uint64_t serial = 0;
  size_t keep = 10;
  std::vector<std::string> pin;
  bool json = false, verify = false;
  CLI::App *cmd = nullptr, *list = nullptr, *create = nullptr, *prune = nullptr;
};

// Adds `checkpoint` and its subcommands to `app`.
CLI::App* AddCheckpointCommand(CLI::App& app, CheckpointCli* cli);
// Runs the parsed subcommand; the process exit code (errors logged).
int RunCheckpoint(const CheckpointCli& cli);

}  // namespace cm
