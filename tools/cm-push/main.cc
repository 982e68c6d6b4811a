// cm-push: the push through the group-leader tree (controller on the CCM),
// the relay daemon on every server, and the CCM's job history. Options and
// configuration only: the work is in lib/pushrun.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "pushdb/render.h"
#include "pushdb/state_db.h"
#include "pushrun/controller.h"
#include "util/config_dir.h"
#include "util/exit_codes.h"
#include "util/log.h"
#include "ccm_cli.h"
#include "checkpoint_cli.h"
#include "pushrun/converge_run.h"
#include "job_cli.h"
#include "relay_cli.h"

namespace {

using namespace cm;

int Fail(const Status& st) {
  log::Error(st.message());
  return ExitCodeFor(st);
}

// Sibling tools: the copy installed beside cm-push, else PATH.
std::string ToolPath(const std::string& name) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string dir(self, static_cast<size_t>(n));
    dir.resize(dir.rfind('/') + 1);
    if (access((dir + name).c_str(), X_OK) == 0) return dir + name;
  }
  return name;
}

}  // namespace

struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

int main(int argc, char** argv) {
  pushrun::PushOptions p;
  p.cm_pack = ToolPath("cm-pack");
  p.cm_apply = ToolPath("cm-apply");
  std::string job;
  std::string wait_arg;
  bool quiet = false, no_commit = false, no_pipeline = false;
  int verbose = 0, limit = 20;
  CLI::App app{"cm-push: pushes an assignment through the tree of site leaders to every server, then commits.\n"
               "  cm-push ASSIGNMENT... --to sites.toml [--state DIR] [--require all|quorum|N%]\n"
               "  cm-push relay --config relay.toml        (on every server)\n"
               "  cm-push status [JOB] --state DIR [--json]\n"
               "  cm-push history --state DIR [--json]\n"
               "  cm-push checkpoint list|create|prune|restore --state DIR",
               "cm-push"};
  app.set_version_flag("--version", std::string("cm-push ") + CM_VERSION);
  app.add_flag("-q,--quiet", quiet, "Errors only");
  app.add_flag("-v,--verbose", verbose, "More messages (repeat for debug)");
  app.fallthrough();  // -q/-v also after a subcommand: cm-push relay -v ...
  app.add_option("assignments", p.assignments, "Assignment files of one job, in order (cm-pack output)");
  app.add_option("--to", p.sites_file, "Sites file (TOML): the CCM's address, the sites and their servers");
  app.add_option("--state", p.state_dir, "CCM state directory (SQLite job history and server status)");
  app.add_option("--require", p.require, "Commit only if this many servers staged: all (default), quorum, N% or N");
  app.add_flag("--no-commit", no_commit, "Stage only; do not send the commit");
  app.add_option("--commit-file", p.commit_file, "Use this commit assignment (default: made with cm-pack commit)");
  app.add_option("--sign-key", p.sign_key, "The CCM's key: seals every order, signs the commit (default CONF/ccm.key)");
  app.add_option("--group-key", p.group_key, "Group key: checks relays' reports (default CONF/group.key)");
  app.add_option("--serial-file", p.serial_file, "Serial file for the commit assignment (as given to cm-pack)");
  app.add_option("--on-fail", p.on_fail,
                 "Shell command run for each failed server (env CM_SERVER, CM_SITE, CM_JOB, CM_ERROR)");
  app.add_option("--wait", wait_arg, "Queue behind a running job that touches the same servers (seconds, default 3600)")
      ->expected(0, 1);
  app.add_flag("--json", p.json, "JSON events on stdout, one per line");
  app.add_option("--report", p.report_file, "Write the final report (JSON) to FILE");
  app.add_option("--listen", p.listen, "HTTP ADDR:PORT relays reach the CCM at (default: [ccm] listen)");
  app.add_option("--shadow", p.shadow, "Content root of the CCM's shadow copy, updated after a commit");
  app.add_option("--star-max", p.star_max,
                 "With at most this many sites, all fetch from the CCM (default: [ccm] uplink_mbit / fastest site, else 1)");
  app.add_option("--only", p.only, "Push only to these servers or sites: NAME[,NAME...] (from the sites file)")
      ->delimiter(',')
      ->allow_extra_args(false);
  app.add_option("--on-commit", p.on_commit,
                 "Shell command run for each committed server (env CM_SERVER, CM_SITE, CM_JOB, CM_RELEASE)");
  app.add_option("--metrics", p.metrics_file, "Write a node_exporter textfile with the job's outcome to FILE");
  app.add_flag("--no-pipeline", no_pipeline, "Store and forward: a leader serves others only once it holds all");
  app.add_flag("--sequential", p.sequential, "Baseline: send to every server in turn from the CCM (no tree)");
  app.add_option("--timeout", p.timeout_s, "Give up after this many seconds (default 3600)");
  app.add_option("--checkpoints", p.checkpoints, "Releases kept in STATE/checkpoints for catch-up and restore (default 10; 0 = none)");
  bool no_converge = false;
  app.add_flag("--no-converge", no_converge, "Do not first bring servers that run another tree to the job's base");
  app.add_option("--cm-pack", p.cm_pack, "cm-pack program (default: beside cm-push, else PATH)");
  app.add_option("--cm-apply", p.cm_apply, "cm-apply program for --shadow (default: beside cm-push, else PATH)");

  RelayCli relay_cli;
  relay_cli.r.cm_apply = p.cm_apply;
  relay_cli.r.cm_mcast = ToolPath("cm-mcast");
  CLI::App* relay = AddRelayCommand(app, &relay_cli);
  CheckpointCli ckpt_cli;
  CLI::App* checkpoint = AddCheckpointCommand(app, &ckpt_cli);
  JobCli job_cli;
  AddJobCommands(app, &job_cli);

  CLI::App* servers = app.add_subcommand("servers", "Every server: its live release, last seen, last error");
  servers->add_option("--state", p.state_dir, "CCM state directory")->required();
  servers->add_flag("--json", p.json, "One JSON object");
  CLI::App* retry = app.add_subcommand("retry", "Run a job again on its servers that did not reach its goal");
  retry->add_option("job", job, "Job id or name (default: the latest)");
  retry->add_option("--state", p.state_dir, "CCM state directory")->required();
  std::string to_release;
  TempDir rollback_tmp;  // the rollback assignment's directory: gone however main returns
  CLI::App* rollback = app.add_subcommand("rollback", "Switch every server back to one release, through the tree");
  rollback->add_option("--to-release", to_release, "Release name (s<serial>-<job>; default: the one before the current)");
  rollback->add_option("--to", p.sites_file, "Sites file")->required();
  rollback->add_option("--state", p.state_dir, "CCM state directory (records it; finds the previous release)");
  rollback->add_option("--sign-key", p.sign_key, "The CCM's key (default CONF/ccm.key)");
  rollback->add_option("--group-key", p.group_key, "Group key (default CONF/group.key)");
  rollback->add_option("--serial-file", p.serial_file, "Serial file (default STATE/serial)");
  rollback->add_option("--only", p.only, "Only these servers or sites: NAME[,NAME...]")->delimiter(',')->allow_extra_args(false);
  rollback->add_option("--timeout", p.timeout_s, "Give up after this many seconds (default 3600)");
  rollback->add_option("--report", p.report_file, "Write the final report (JSON) to FILE");
  rollback->add_option("--shadow", p.shadow, "Content root of the CCM's shadow copy, switched too");
  rollback->add_flag("--json", p.json, "JSON events on stdout, one per line");
  CLI::App* converge = app.add_subcommand("converge", "Bring every server that runs another tree to the CCM's newest release");
  converge->add_option("--to", p.sites_file, "Sites file")->required();
  converge->add_option("--state", p.state_dir, "CCM state directory")->required();
  converge->add_option("--shadow", p.shadow, "Content root of the CCM's shadow copy (default STATE/shadow)");
  converge->add_option("--only", p.only, "Only these servers or sites: NAME[,NAME...]")->delimiter(',')->allow_extra_args(false);
  converge->add_option("--timeout", p.timeout_s, "Give up on each catch-up job after this many seconds");
  converge->add_option("--sign-key", p.sign_key, "The CCM's key (default CONF/ccm.key)");
  converge->add_option("--group-key", p.group_key, "Group key (default CONF/group.key)");
  converge->add_option("--serial-file", p.serial_file, "Serial file (default STATE/serial)");
  CLI::App* status = app.add_subcommand("status", "Show a job's per-server status (default: active jobs and the latest)");
  status->add_option("job", job, "Job id or name");
  status->add_option("--state", p.state_dir, "CCM state directory")->required();
  status->add_flag("--json", p.json, "One JSON object");
  CLI::App* history = app.add_subcommand("history", "List recent jobs");
  history->add_option("--state", p.state_dir, "CCM state directory")->required();
  history->add_option("--limit", limit, "How many (default 20)");
  history->add_flag("--json", p.json, "One JSON array");
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    log::Init("cm-push", 1);
    log::Error(e.what());
    return kExitUsage;
  }
  log::Init("cm-push", quiet ? 0 : 1 + verbose);
  if (relay->parsed()) {
    relay_cli.r.verbose = verbose > 0;
    return RunRelay(relay_cli);
  }
  if (int rc = RunJobCommands(job_cli); rc >= 0) return rc;
  if (checkpoint->parsed()) {
    p.verbosity = quiet ? 0 : 1 + verbose;
    for (int i = 0; i < argc; ++i) p.command_line += (i ? " " : "") + std::string(argv[i]);
    return RunCheckpoint(ckpt_cli, p);
  }
  if (status->parsed()) return StatusCommand(p.state_dir, job, p.json);
  if (history->parsed()) return HistoryCommand(p.state_dir, limit, p.json);
  if (servers->parsed()) return ServersCommand(p.state_dir, p.json);
  if (retry->parsed()) return RetryCommand(p.state_dir, job);
  if (converge->parsed()) {
    p.verbosity = quiet ? 0 : 1 + verbose;
    p.sign_key = DefaultFile(p.sign_key, "ccm.key");
    p.group_key = DefaultFile(p.group_key, "group.key");
    if (p.shadow.empty()) p.shadow = p.state_dir + "/shadow";
    std::string release;
    auto sum = pushrun::ConvergeToShadow(p, &release);
    if (!sum.ok()) return Fail(sum.status());
    return pushrun::ConvergeOutcome("converge", release, *sum);
  }
  if (rollback->parsed()) {
    p.sign_key = DefaultFile(p.sign_key, "ccm.key");
    if (int rc = PrepareRollback(&p, to_release, &rollback_tmp.path); rc != 0) return rc;
  }

  if (p.assignments.empty()) return Fail(Error(Code::kUsage, "no assignment given (cm-push --help)"));
  if (p.sites_file.empty()) return Fail(Error(Code::kUsage, "--to SITES.toml is required"));
  p.commit = !no_commit;
  p.converge = !no_converge;
  p.pipeline = !no_pipeline;
  if (app.count("--wait")) {
    if (wait_arg.empty()) {
      p.wait_s = 3600;
    } else {
      char* end = nullptr;
      p.wait_s = std::strtod(wait_arg.c_str(), &end);
      if (end == wait_arg.c_str() || *end != '\0' || !(p.wait_s >= 0) || p.wait_s > 1e9)
        return Fail(Error(Code::kUsage, "--wait: not a number of seconds: " + wait_arg));
    }
  }
  p.verbosity = quiet ? 0 : 1 + verbose;
  p.live_view = !quiet && !p.json && isatty(2);
  p.sign_key = DefaultFile(p.sign_key, "ccm.key");
  p.group_key = DefaultFile(p.group_key, "group.key");
  for (int i = 0; i < argc; ++i) p.command_line += (i ? " " : "") + std::string(argv[i]);
  p.invocation = InvocationJson(argc, argv);
  auto out = pushrun::RunPush(p);
  if (!out.ok()) return Fail(out.status());
  return out->exit_code;
}
